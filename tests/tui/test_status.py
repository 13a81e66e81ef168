"""The status bar's words for how a run ended: every reason gets a phrase, with its detail where
the detail says something, and the detail is made safe for the screen. And its clock: an attached
screen counts a run's time from the run's start."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from intermodel.config import parse_pairing
from intermodel.engine.events import RunStarted
from intermodel.records import EndReason, RunEnd
from intermodel.tui.model import MAX_AGE, ConversationModel
from intermodel.tui.status import describe_end
from tests.conftest import SCRIPTED


@pytest.mark.parametrize(("reason", "detail", "shown"), [
    ("max_turns", "6 turns", "turn budget reached (6 turns)"),
    ("stop_phrase", "", "ended by a stop phrase"),
    ("token_budget", "1200 of 1000 tokens", "token budget reached"),
    ("cost_budget", "$1.2000 spent, budget $1", "cost budget reached ($1.2000 spent, budget $1)"),
    ("context_full", "ada's opener does not fit",
     "context window full (ada's opener does not fit)"),
    ("degenerate", "repetition: same reply", "stopped by a detector (repetition: same reply)"),
    ("error", "ada: openai 401 authentication failed: no",
     "error: ada: openai 401 authentication failed: no"),
    ("complete", "", "every agent answered"),
    ("incomplete", "", "transcript ends without a final record"),
    ("unknown", "a detail", "ended for a reason this version does not know (a detail)"),
])
def test_each_reason_has_its_phrase(reason: str, detail: str, shown: str) -> None:
    assert describe_end(RunEnd(reason, detail)) == shown


def test_a_stop_names_who_stopped_it() -> None:
    assert describe_end(RunEnd(EndReason.STOPPED)) == "stopped by you"
    assert describe_end(RunEnd(EndReason.STOPPED), live=False) == "stopped by the person watching"


def test_the_detail_is_made_safe() -> None:
    shown = describe_end(RunEnd(EndReason.UNKNOWN, "\x1b[2Jgone"))
    assert "\x1b" not in shown and "gone" in shown


def _started(started_at: str, *, joined: bool) -> float | None:
    model = ConversationModel(lambda: 1000.0, live=True, joined=joined)
    model.apply([RunStarted("r1", parse_pairing(SCRIPTED, source="p.toml"), None, started_at)])
    return model.started


def test_an_attached_screen_counts_the_run_from_its_start_not_from_attaching() -> None:
    an_hour_ago = (datetime.now(UTC) - timedelta(hours=1)).isoformat().replace("+00:00", "Z")
    started = _started(an_hour_ago, joined=True)
    assert started is not None and 3590 < 1000.0 - started < 3660  # (a minute's slack)
    assert _started(an_hour_ago, joined=False) == 1000.0  # a run this screen started: from now


@pytest.mark.parametrize("started_at", ["", "yesterday", "2026-13-45T00:00:00Z",
                                        "1900-01-01T00:00:00Z", "2999-01-01T00:00:00Z"])
def test_a_start_time_from_the_socket_that_makes_no_sense_is_bounded(started_at: str) -> None:
    started = _started(started_at, joined=True)
    assert started is not None and 0.0 <= 1000.0 - started <= MAX_AGE
