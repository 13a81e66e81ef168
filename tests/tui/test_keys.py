"""The footer offers the keys that do something now: those the source can serve (a replay seeks,
a live run takes interjections) in the run's present state (paused or not, ended or not)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Footer
from textual.widgets._footer import FooterKey

from intermodel.tui.app import IntermodelApp, replay_app
from tests.conftest import PairingFactory
from tests.fakes import Gate, gated_scripted
from tests.transcripts import finished, turn, write_transcript
from tests.tui_support import frozen_clock, make_app, until

pytestmark = pytest.mark.anyio

LIVE = {"pause", "step", "interject", "thinking", "more turns", "live", "stop", "quit"}


def footer_keys(app: IntermodelApp) -> set[str]:
    return {key.description for key in app.query_one(Footer).query(FooterKey)}


async def test_a_live_run_offers_steering_until_it_ends(make_pairing: PairingFactory) -> None:
    gate = Gate()  # the first turn streams until the keys have been checked
    app = make_app(make_pairing(), provider_factory=gated_scripted(gate))
    async with app.run_test(size=(160, 24)) as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await until(pilot, lambda: footer_keys(app) == LIVE)
        await pilot.press("space")
        await until(pilot, lambda: app.model.paused)
        await until(pilot, lambda: footer_keys(app) == LIVE - {"pause"} | {"resume"})
        await pilot.press("space")
        gate.open()
        await until(pilot, app.served.is_set)
        await until(pilot, lambda: footer_keys(app) == {"thinking", "live", "quit"})


async def test_a_replay_offers_seeking_and_speed_but_no_steering(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    pairing = make_pairing()
    records = [turn(1, "ada", "ada says hello.", done_at=1.0),
               turn(2, "bo", "bo says hello back.", done_at=2.0)]
    path = write_transcript(tmp_path / "run.jsonl", pairing, [*records, finished(records)])
    app = replay_app(path, clock=frozen_clock, blink=False)
    async with app.run_test(size=(160, 24)) as pilot:
        await until(pilot, lambda: app.model.spec is not None)
        expected = {"pause", "thinking", "prev", "next", "go to", "slower", "faster", "live",
                    "quit"}
        await until(pilot, lambda: footer_keys(app) == expected)
        await pilot.press("q")
    assert app.return_value == 0
