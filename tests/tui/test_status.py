"""The status bar's words for how a run ended: every reason gets a phrase, with its detail where
the detail says something, and the detail is made safe for the screen."""

from __future__ import annotations

import pytest

from intermodel.records import EndReason, RunEnd
from intermodel.tui.status import describe_end


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
