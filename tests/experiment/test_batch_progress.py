"""The batch's progress as a log (not a terminal): a status line only when it changes."""

from __future__ import annotations

import io
from pathlib import Path

from intermodel.config.experiment import load_experiment
from intermodel.console.progress import ProgressView
from intermodel.experiment.batch import Batch
from intermodel.experiment.manifest import EntryState
from tests.experiment.test_batch import write_experiment


def test_a_log_gets_a_status_line_only_when_something_changes(tmp_path: Path) -> None:
    batch = Batch(load_experiment(write_experiment(tmp_path, replicates=1)))
    batch.states = {entry.id: EntryState() for entry in batch.entries}
    log = io.StringIO()
    view = ProgressView(log, color=False, live=False)
    view.attach(batch)
    for _ in range(3):  # ticks with nothing new
        view.show_status()
    assert log.getvalue().splitlines() == ["0/4 done · 0 running · 0 retrying · 0 failed · 4 to go"]
    first = batch.entries[0]
    batch.states[first.id].status = "running"
    view.on_change(first, batch.states[first.id])
    view.show_status()
    view.show_status()
    assert log.getvalue().splitlines()[1:] == [
        "0/4 done · 1 running · 0 retrying · 0 failed · 4 to go"]


def test_a_terminal_status_line_is_rewritten_every_tick(tmp_path: Path) -> None:
    batch = Batch(load_experiment(write_experiment(tmp_path, replicates=1)))
    batch.states = {entry.id: EntryState() for entry in batch.entries}
    screen = io.StringIO()
    view = ProgressView(screen, color=False, live=True)
    view.attach(batch)
    view.show_status()
    view.show_status()  # the clock of the estimate moves: a terminal line is cheap to redraw
    assert screen.getvalue().count("\r\x1b[2K") == 2
