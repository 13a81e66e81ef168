"""The batch's progress as a log (not a terminal): a status line only when it changes."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest

from intermodel.config.experiment import load_experiment
from intermodel.console.progress import ProgressView
from intermodel.experiment.batch import Batch
from intermodel.experiment.manifest import MANIFEST, EntryState
from intermodel.transcript.reader import read_transcript
from tests.analysis.support import panel_trial
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


@pytest.mark.anyio
async def test_a_panel_reports_its_answers_not_its_last_turn_number(tmp_path: Path) -> None:
    # The panel's first agent answers last: its answer is turn 1, the last to complete.
    log = io.StringIO()
    view = ProgressView(log, color=False, live=False)
    batch = Batch(load_experiment(panel_trial(tmp_path, replicates=1)),
                  listener=view.on_change)
    view.attach(batch)
    report = await batch.run()
    [state] = report.states.values()
    assert [t.agent for t in read_transcript(state.transcript or "").turns][-1] == "ann"
    [line] = [line for line in log.getvalue().splitlines() if line.startswith("✓")]
    assert line.startswith("✓ voices/news/r1 · 3 answers · complete · ")
    assert (state.kind, state.turns) == ("panel", 3)
    manifest = json.loads((tmp_path / MANIFEST).read_text(encoding="utf-8"))
    entry = manifest["entries"]["voices/news/r1"]
    assert (entry["kind"], entry["answers"], "turns" in entry) == ("panel", 3, False)
    # Read back from the transcripts (a batch run again) it is the same.
    again = await Batch(load_experiment(panel_trial(tmp_path, replicates=1))).run()
    assert (again.skipped, again.states["voices/news/r1"].done) == (1, "3 answers")


def test_a_pairing_counts_turns_in_its_own_words() -> None:
    assert EntryState(turns=1).done == "1 turn"
    assert EntryState(turns=7).done == "7 turns"
    assert EntryState(kind="panel", turns=1).done == "1 answer"
    assert EntryState(kind="panel", turns=4).as_json()["answers"] == 4
    assert "answers" not in EntryState(turns=4).as_json()
