"""The terminal UI attached to a run in another process (`intermodel attach`): the history, the
live stream, the controls acting on that run, and detaching, which leaves it going."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import anyio
import pytest
from textual.widgets import Input

from intermodel.config.experiment import load_experiment
from intermodel.control.client import find_socket
from intermodel.control.server import ControlServer
from intermodel.engine.events import ThinkingChunk
from intermodel.engine.prepare import prepared_run
from intermodel.experiment.batch import Batch
from intermodel.lineage.audit import rebuild_request
from intermodel.records import Interjection, Turn
from intermodel.transcript.reader import read_transcript
from intermodel.tui.app import IntermodelApp, attach_app
from intermodel.tui.model import HumanEntry
from intermodel.tui.quit import ConfirmQuit
from tests.conftest import PairingFactory
from tests.control.test_control import SlowRun
from tests.experiment.test_batch_control import slow_experiment, wait_for
from tests.fakes import Gate, gated_scripted
from tests.tui.test_tui import SLOW, type_text
from tests.tui_support import frozen_clock, pane_text, until

pytestmark = pytest.mark.anyio


def _attached(run: SlowRun, folder: Path) -> tuple[IntermodelApp, Path]:
    run.wait_for_status()
    [transcript] = folder.glob("*.jsonl")
    run_id = json.loads(transcript.read_text().splitlines()[0])["run_id"]
    socket = find_socket(transcript, run_id)
    return attach_app(socket, str(transcript), clock=frozen_clock, blink=False), transcript


def _humans(app: IntermodelApp, index: int) -> list[HumanEntry]:
    """The interjections a pane shows."""
    return [v.entry for v in app.panes[index].views
            if isinstance(v.entry, HumanEntry) and not v.entry.opener]


async def test_an_interjection_from_the_attached_screen_reaches_the_agent(tmp_path: Path) -> None:
    run = SlowRun(tmp_path)
    try:
        app, transcript = _attached(run, tmp_path)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: app.model.in_flight is not None, timeout=60)
            assert "intermodel attached" in str(app.query_one("#header").content)
            await pilot.press("i")
            assert isinstance(app.focused, Input)
            await pilot.press("tab")  # both → ada
            await type_text(pilot, "name one doubt")
            await pilot.press("enter")
            # Shown once the run has taken it: it came back over the socket.
            await until(pilot, lambda: _humans(app, 0), timeout=30)
            assert not _humans(app, 1)
            asked = app.model.current_turn
            await until(pilot, lambda: app.model.last_turn >= asked + 2, timeout=60)
            await pilot.press("s")  # stop after the streaming turn: the run's, not the screen's
            await until(pilot, app.served.is_set, timeout=60)
            assert app.source.end is not None and app.source.end.reason == "stopped"
            assert "human → ada: name one doubt" in pane_text(app, 0)
        run.proc.communicate(timeout=30)
    finally:
        run.end()
    assert run.proc.returncode == 0
    records = read_transcript(transcript).records
    [said] = [r for r in records if isinstance(r, Interjection)]
    assert said.to == ("ada",) and said.text == "name one doubt"
    # ada's next request carried the message, and its recorded hash is that request's.
    turn = next(r for r in records if isinstance(r, Turn) and r.agent == "ada"
                and r.index >= said.before_turn)
    rebuilt = rebuild_request(read_transcript(transcript), turn.index)
    assert rebuilt.matches
    assert any("[Human]: name one doubt" in m.content for m in rebuilt.request.messages)


async def test_two_screens_see_the_same_and_quitting_one_leaves_the_run_going(
        tmp_path: Path) -> None:
    run = SlowRun(tmp_path)
    try:
        first, transcript = _attached(run, tmp_path)
        second, _ = _attached(run, tmp_path)
        async with first.run_test(size=(160, 48)) as one, \
                second.run_test(size=(160, 48)) as two:
            await until(one, lambda: first.model.last_turn >= 2, timeout=60)
            await until(two, lambda: second.model.last_turn >= 2, timeout=60)
            turns = min(first.model.last_turn, second.model.last_turn)
            for index in (0, 1):
                a, b = pane_text(first, index), pane_text(second, index)
                # Both show every completed turn alike (one may be a few words further on).
                assert a.split("streaming")[0][:200] == b.split("streaming")[0][:200]
            assert turns >= 2
            footer = first.screen.active_bindings
            assert "detach" in {b.binding.description for b in footer.values()}
            assert "quit" not in {b.binding.description for b in footer.values()}
            await one.press("q")
            assert isinstance(first.screen, ConfirmQuit)
            assert "The run goes on in its own process" in \
                "\n".join(str(label.content) for label in first.screen.query("Label"))
            await one.press("y")
            await until(one, first.served.is_set, timeout=30)
            assert first.source.end is None  # detached: the run did not end
            assert run.proc.poll() is None
            last = second.model.last_turn
            await until(two, lambda: second.model.last_turn > last, timeout=60)
        assert run.proc.poll() is None
        assert run.cli("control", str(transcript), "stop", "--now").returncode == 0
        run.proc.communicate(timeout=30)
    finally:
        run.end()
    assert run.proc.returncode == 0


async def test_attaching_in_the_middle_of_a_turn_shows_what_it_has_said_so_far(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    gate = Gate()  # ada's first turn thinks three pieces, then waits until the screen has them
    pairing = make_pairing(SLOW)
    async with prepared_run(pairing, out_dir=tmp_path,
                            provider_factory=gated_scripted(gate, "ada", opening=3)) as run:
        assert run.transcript is not None
        server = ControlServer(run.session, run.transcript)
        own = run.session.subscribe()
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            tg.start_soon(run.session.run)
            async for event in own:  # the turn's start and its first pieces come in one batch
                if isinstance(event, ThinkingChunk):
                    break
            app = attach_app(server.path, str(run.transcript), clock=frozen_clock, blink=False)
            async with app.run_test(size=(160, 48)) as pilot:
                await until(pilot, lambda: "ada ponders" in pane_text(app, 0))
                gate.open()
                await until(pilot, lambda: app.model.last_turn >= 2)
                assert "ada speaks in ten small words" in pane_text(app, 0)
                await pilot.press("s")
                await until(pilot, app.served.is_set, timeout=30)
            tg.cancel_scope.cancel()


async def test_attaching_to_a_batch_entry_and_interjecting_from_the_screen(
        tmp_path: Path) -> None:
    experiment = load_experiment(slow_experiment(tmp_path, delay=0.05, turns=4))
    batch = Batch(experiment)
    key = batch.entries[0].id

    def entry() -> dict[str, Any] | None:
        found = [e for e in batch.snapshot()["entries"] if e["key"] == key]
        return found[0] if found and found[0]["state"] == "running" else None

    async def watch() -> None:
        await wait_for(lambda: entry() is not None and batch.states[key].turns >= 1)
        batch.pause()  # so the message lands before bo's next turn at any speed
        found = entry()
        assert found is not None
        app = attach_app(find_socket(found["transcript"], found["run_id"]), found["transcript"],
                         clock=frozen_clock, blink=False)
        async with app.run_test(size=(160, 48)) as pilot:
            await until(pilot, lambda: app.model.last_turn >= 1, timeout=30)
            await pilot.press("i")
            await pilot.press("tab", "tab")  # both → ada → bo
            await type_text(pilot, "a word from the screen")
            await pilot.press("enter")
            await until(pilot, lambda: _humans(app, 1), timeout=30)
            batch.resume()
            await until(pilot, app.served.is_set, timeout=60)
            assert app.source.end is not None
        sent.append(found["transcript"])

    sent: list[str] = []
    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        report = await batch.run()
    assert report.count("finished") == 4
    transcript = read_transcript(sent[0])
    [said] = [r for r in transcript.records if isinstance(r, Interjection)]
    assert said.to == ("bo",) and said.text == "a word from the screen"
    turn = next(r for r in transcript.records if isinstance(r, Turn) and r.agent == "bo"
                and r.index >= said.before_turn)
    rebuilt = rebuild_request(transcript, turn.index)
    assert rebuilt.matches
    assert any("[Human]: a word from the screen" in m.content for m in rebuilt.request.messages)
