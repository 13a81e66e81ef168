"""The terminal UI following a transcript as it is written (`intermodel replay --follow`): a real
transcript writer appends records while Pilot watches the screen."""

from __future__ import annotations

from pathlib import Path

import pytest

from intermodel.config import Panel, load_config
from intermodel.lineage.follow import Follow
from intermodel.records import Resumption
from intermodel.transcript.reader import GrowingTranscript
from intermodel.transcript.writer import TranscriptWriter
from intermodel.tui.app import IntermodelApp, replay_app
from intermodel.tui.sources import FollowSource
from tests.conftest import PairingFactory
from tests.lineage.follow_support import Appender, turns_of
from tests.transcripts import at, finished, turn
from tests.tui_support import frozen_clock, pane_text, status_text, until

pytestmark = pytest.mark.anyio


def following(path: Path) -> IntermodelApp:
    growing = GrowingTranscript(path)
    follow = Follow(growing, poll_min=0.02, poll_max=0.1, pace=0.1)
    return IntermodelApp(FollowSource(growing, follow=follow), clock=frozen_clock, blink=False)


async def test_new_turns_appear_as_they_are_written_then_the_end(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = tmp_path / "run.jsonl"
    appender = Appender(path, make_pairing())
    await appender.header()
    await appender.add(*turns_of(2))
    app = replay_app(path, follow=GrowingTranscript(path), clock=frozen_clock, blink=False)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.model.last_turn == 2)
        assert "bo says line 2." in pane_text(app, 1)
        status = status_text(app)
        assert "◌ following: waiting for turn 3 · last record" in status
        assert status.count("following") == 1
        assert not any(app.check_action(key, ()) for key in ("seek", "speed", "interject"))
        await appender.add(*turns_of(1, first=3))
        await until(pilot, lambda: app.model.last_turn == 3)
        assert "ada says line 3." in pane_text(app, 0)
        assert "waiting for turn 4" in status_text(app)
        await appender.add(*turns_of(1, first=4), finished(turns_of(4)))
        appender.close()
        await until(pilot, lambda: app.model.end is not None)
        assert "bo says line 4." in pane_text(app, 1)
        assert "■ finished: turn budget reached │ following │" in status_text(app)
        await pilot.press("q")
    assert app.return_value == 0


async def test_pause_holds_new_turns_and_resume_shows_them(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = tmp_path / "run.jsonl"
    appender = Appender(path, make_pairing())
    await appender.header()
    await appender.add(*turns_of(1))
    app = following(path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.model.last_turn == 1)
        await pilot.press("space")
        await until(pilot, lambda: app.model.paused)
        assert "‖ paused" in status_text(app)
        await appender.add(*turns_of(2, first=2))
        await pilot.pause(0.3)
        assert app.model.last_turn == 1
        await pilot.press("space")
        await until(pilot, lambda: app.model.last_turn == 3)
        assert "ada says line 3." in pane_text(app, 0)


async def test_a_resumed_run_goes_on_after_its_end(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = tmp_path / "run.jsonl"
    appender = Appender(path, make_pairing())
    await appender.header()
    await appender.add(*turns_of(2), finished(turns_of(2), reason="interrupted"))
    appender.close()
    app = following(path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.model.end is not None)
        assert "finished: interrupted" in status_text(app)
        writer, _ = TranscriptWriter.reopen(path)
        await writer.record(Resumption("feedc0ffee00", after_turn=2, max_turns=4, at=at(60)))
        await until(pilot, lambda: app.model.end is None)
        assert "waiting for turn 3" in status_text(app)
        await writer.record(turns_of(1, first=3)[0])
        await until(pilot, lambda: app.model.last_turn == 3)
        writer.close()
        assert "ada says line 1." in pane_text(app, 0)  # the history stayed, shown once
        assert pane_text(app, 0).count("ada says line 1.") == 1


async def test_a_garbage_line_stops_following_and_says_why(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = tmp_path / "run.jsonl"
    appender = Appender(path, make_pairing())
    await appender.header()
    await appender.add(*turns_of(2))
    app = following(path)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: app.model.last_turn == 2)
        appender.raw(b'{"kind": "turn", "index": 3, \x1b[2J}\n')
        await until(pilot, app.served.is_set)
        status = status_text(app)
        assert f"following stopped: {path}:4: not valid JSON" in status
        assert "\x1b" not in status
        source = app.source
        assert isinstance(source, FollowSource) and source.failure is not None
        assert "bo says line 2." in pane_text(app, 1)  # what came before stays on screen


async def test_a_panel_is_followed_in_its_columns(tmp_path: Path) -> None:
    config = tmp_path / "panel.toml"
    config.write_text('name = "voices"\n[panel]\nprompt = "What now?"\n'
                      '[agents.ann]\nprovider = "scripted"\n[agents.ann.script]\nreplies = ["a"]\n'
                      '[agents.ben]\nprovider = "scripted"\n[agents.ben.script]\nreplies = ["b"]\n')
    panel = load_config(config)
    assert isinstance(panel, Panel)
    path = tmp_path / "panel.jsonl"
    appender = Appender(path, panel)
    await appender.header()
    app = following(path)
    async with app.run_test(size=(120, 30)) as pilot:
        await until(pilot, lambda: app.model.panel)
        assert "following: 0 of 2 answered" in status_text(app)
        ben = turn(2, "ben", "ben answers at length.", done_at=3.0)
        await appender.add(ben)
        await until(pilot, lambda: app.model.answered == 1)
        assert "ben answers at length." in pane_text(app, 1)
        ann = turn(1, "ann", "ann answers briefly.", done_at=4.0)
        await appender.add(ann, finished([ben, ann], reason="complete"))
        await until(pilot, lambda: app.model.end is not None)
        assert "ann answers briefly." in pane_text(app, 0)
        assert "finished: every agent answered" in status_text(app)
