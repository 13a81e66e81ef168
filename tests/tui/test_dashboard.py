"""The batch dashboard under Pilot: a batch run in the app's worker (rows appear and change state,
keys pause and stop it), a remote dashboard over the socket of a batch in another process, and
untrusted text shown as text."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import pytest
from textual.widgets import DataTable, Static

from intermodel.config.experiment import load_experiment
from intermodel.control.client import find_batch
from intermodel.control.registry import registered
from intermodel.experiment.batch import Batch
from intermodel.records import Discard
from intermodel.transcript.reader import read_transcript
from intermodel.tui import dashboard as dashboard_module
from intermodel.tui.dashboard import (
    BatchDashboard,
    Confirm,
    LocalLink,
    RemoteLink,
    attach_command,
    run_dashboard_remote,
)
from tests.experiment.test_batch import REPO
from tests.experiment.test_batch_control import slow_experiment
from tests.tui_support import until

pytestmark = pytest.mark.anyio
INJECTION = "[bold red]loud[/] [link=https://example.com]x[/link] \x1b[2J\x1b]0;pwned\x07 end"


class Recording(BatchDashboard):
    """Keeps every state an entry was shown in."""

    CSS_PATH = str(Path(dashboard_module.__file__).with_name(BatchDashboard.CSS_PATH))
    seen: set[str]

    def refresh_view(self) -> None:
        super().refresh_view()
        self.seen = getattr(self, "seen", set()) | set(states(self).values())


def dashboard(batch: Batch) -> Recording:
    return Recording(LocalLink(batch), refresh=0.05)


def states(app: BatchDashboard) -> dict[str, str]:
    return {key: app.entry_state(key) for key in app._shown}


def line(app: BatchDashboard, selector: str) -> str:
    return str(app.query_one(selector, Static).content)


async def test_rows_appear_and_change_state_as_the_batch_runs(tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path, delay=0.03, turns=4)))
    app = dashboard(batch)
    async with app.run_test(size=(160, 30)) as pilot:
        table = app.query_one(DataTable)
        await until(pilot, lambda: table.row_count == 4)
        keys = [e.id for e in batch.entries]
        assert [str(k.value) for k in table.rows] == keys
        await until(pilot, lambda: set(states(app).values()) == {"done"}, timeout=60)
        assert {"queued", "running", "done"} <= app.seen
        await until(pilot, lambda: "finished" in line(app, "#title"))
        assert line(app, "#progress").startswith("[####################] 4/4 done · 0 running")
        assert "scripted: 0 streaming · 0 retries · 0 × 429" in line(app, "#providers")
        row = table.get_row(keys[0])
        assert [str(cell) for cell in row[1:4]] == ["done", "turn 4/4", "bo two"]
        assert str(row[4]).endswith(".jsonl")
        # Nothing changes any more: the screen is left alone.
        redraws = app.redraws
        await pilot.pause(0.3)
        assert app.redraws == redraws
        await pilot.press("q")  # a finished batch: no question
    assert app.return_value == 0
    assert not registered()


async def test_keys_pause_resume_and_stop_after_the_running_turns(tmp_path: Path) -> None:
    # Runs long enough to be running still when the keys have been heard, on a busy machine.
    batch = Batch(load_experiment(slow_experiment(tmp_path, delay=0.02, turns=400)))
    app = dashboard(batch)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: list(states(app).values()).count("running") == 2)
        await pilot.press("p")
        await until(pilot, lambda: "· paused" in line(app, "#title"))
        await until(pilot, lambda: all(e["activity"] == "paused" for e in app._shown.values()
                                       if e["state"] == "running"))
        table = app.query_one(DataTable)
        assert [str(table.get_row(k)[1]) for k, e in app._shown.items()
                if e["state"] == "running"] == ["paused", "paused"]
        turns = [e["turns"] for e in batch.snapshot()["entries"]]
        await pilot.pause(0.2)
        assert [e["turns"] for e in batch.snapshot()["entries"]] == turns  # no new turn
        await pilot.press("p")  # the same key resumes
        await until(pilot, lambda: "· running" in line(app, "#title"))
        await until(pilot, lambda: any(e["turns"] > t for e, t in zip(
            batch.snapshot()["entries"], turns, strict=True)))
        await pilot.press("s")
        assert batch.state in ("stopping after running turns", "finished")
        await until(pilot, lambda: app.served, timeout=30)
        await until(pilot, lambda: "finished" in line(app, "#title"))
        assert sorted(states(app).values()) == ["interrupted", "interrupted", "queued",
                                                "queued"]
        await pilot.press("q")
    for state in batch.states.values():
        if state.transcript:
            transcript = read_transcript(state.transcript)
            assert transcript.end is not None and transcript.end.reason == "stopped"
            assert not [r for r in transcript.records if isinstance(r, Discard)]


async def test_stop_now_asks_first_and_quit_says_the_batch_stops(tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path, delay=0.05, turns=50)))
    app = dashboard(batch)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: list(states(app).values()).count("running") == 2)
        await pilot.press("x")
        assert isinstance(app.screen, Confirm)
        await pilot.press("n")  # changed their mind: nothing happens
        assert batch.state == "running"
        await pilot.press("q")
        assert isinstance(app.screen, Confirm)
        said = " ".join(str(label.content) for label in app.screen.query("Label"))
        assert "Quitting stops it" in said
        await pilot.press("escape")
        await pilot.press("x", "y")
        await until(pilot, lambda: app.served, timeout=30)
        await until(pilot, lambda: "finished" in line(app, "#title"))
    ended = [read_transcript(s.transcript) for s in batch.states.values() if s.transcript]
    assert len(ended) == 2
    assert all(t.end is not None and t.end.reason == "stopped" for t in ended)


async def test_enter_on_an_entry_says_when_it_cannot_attach(tmp_path: Path) -> None:
    batch = Batch(load_experiment(slow_experiment(tmp_path, delay=0.05, turns=50)))
    app = dashboard(batch)
    async with app.run_test(size=(160, 30)) as pilot:
        await until(pilot, lambda: list(states(app).values()).count("running") == 2)
        await pilot.press("enter")  # the first row: running
        await until(pilot, lambda: app._notifications)
        [note] = list(app._notifications)
        run_id = batch.states[batch.entries[0].id].run_id
        assert f"intermodel attach {run_id}" in note.message
        app.clear_notifications()
        await pilot.press("down", "down", "enter")  # a queued entry
        await until(pilot, lambda: app._notifications)
        [note] = list(app._notifications)
        assert "is not running" in note.message
        batch.stop(now=True)
        await until(pilot, lambda: app.served, timeout=30)


def test_the_attach_command_runs_this_python_on_the_entrys_run() -> None:
    assert attach_command("0123456789ab") == [sys.executable, "-m", "intermodel", "attach",
                                              "--back", "0123456789ab"]


async def test_untrusted_text_is_shown_as_text(tmp_path: Path) -> None:
    slow_experiment(tmp_path, delay=0.0, turns=2)
    for name in ("pair.toml", "other.toml"):
        config = tmp_path / name
        config.write_text(config.read_text().replace('"bo one"', json.dumps(INJECTION)))
    batch = Batch(load_experiment(tmp_path / "exp.toml"))
    app = dashboard(batch)
    async with app.run_test(size=(200, 30)) as pilot:
        await until(pilot, lambda: set(states(app).values()) == {"done"}, timeout=60)
        cell = app.query_one(DataTable).get_row(batch.entries[0].id)[3]
        assert str(cell) == ("[bold red]loud[/] [link=https://example.com]x[/link] "
                             "␛[2J␛]0;pwned␇ end")
        assert not cell.spans  # no style came from the text
        await pilot.press("q")


def start_batch(path: Path) -> subprocess.Popen[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    return subprocess.Popen([sys.executable, "-m", "intermodel", "batch", str(path), "--yes",
                             "--headless"], cwd=REPO, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)


def wait_for_batch(proc: subprocess.Popen[str], target: str) -> Any:
    deadline = time.monotonic() + 60  # a bound for a hang, not for speed
    while (found := find_batch(target)) is None:
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "the batch never listened"
        time.sleep(0.1)
    return found


async def test_a_remote_dashboard_follows_and_steers_a_batch_in_another_process(
        tmp_path: Path) -> None:
    path = slow_experiment(tmp_path, delay=0.05, turns=40)
    proc = start_batch(path)
    try:
        found = await anyio.to_thread.run_sync(wait_for_batch, proc, str(path))
        app = BatchDashboard(RemoteLink(found.socket, poll=0.1), refresh=0.05)
        async with app.run_test(size=(160, 30)) as pilot:
            await until(pilot, lambda: list(states(app).values()).count("running") == 2,
                        timeout=60)
            assert "batch trial (in another process) · running" in line(app, "#title")
            await pilot.press("p")
            await until(pilot, lambda: "· paused" in line(app, "#title"), timeout=30)
            await pilot.press("p")
            await until(pilot, lambda: "· running" in line(app, "#title"), timeout=30)
            await pilot.press("s")
            # Seen stopping, unless the batch ended between two polls.
            await until(pilot, lambda: "stopping after running turns" in line(app, "#title")
                        or app.link.gone, timeout=30)
            await pilot.press("q")  # detaches at once, without a question
        assert app.return_value == 0
        out, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=60))
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 130, err  # stopped: the same command carries on
    assert "2 interrupted" in out


async def test_a_remote_dashboard_detaches_and_the_batch_goes_on(tmp_path: Path) -> None:
    path = slow_experiment(tmp_path, delay=0.05, turns=6)
    proc = start_batch(path)
    try:
        found = await anyio.to_thread.run_sync(wait_for_batch, proc, "trial")  # by name
        link = RemoteLink(found.socket, poll=0.1)
        app = BatchDashboard(link, refresh=0.05)
        async with app.run_test(size=(160, 30)) as pilot:
            await until(pilot, lambda: app._shown, timeout=60)
            await pilot.press("q")
        out, err = await anyio.to_thread.run_sync(lambda: proc.communicate(timeout=120))
    finally:
        proc.kill()
        proc.communicate()
    assert proc.returncode == 0, err
    assert "4 of 4 runs finished" in out


def test_attaching_to_no_batch_is_one_clear_error() -> None:
    from intermodel.errors import UsageError

    refused = re.escape("no batch of 'experiments/none.toml' is running")
    with pytest.raises(UsageError, match=refused):
        run_dashboard_remote("experiments/none.toml")
