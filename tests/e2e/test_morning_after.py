"""The morning after: every command a researcher reads runs with, on every kind of run.

A night's folder is made for real, by `intermodel` processes and the scripted provider: a
conversation, a panel, a run that was resumed and a run branched from another. Then `stats`,
`index`, `export` (Markdown and HTML), `inspect`, `replay` (in the terminal UI, under Textual's
Pilot) and `branch` (where it applies) each run on each of them (through the real entry point, in
this process, to keep the test quick), and what they print or write must show that run's own
content, not merely succeed. A new kind of run that one of the tools drops,
or reads as something it is not, fails here.
"""

from __future__ import annotations

import contextlib
import io
import os
import sqlite3
import subprocess
import sys
import textwrap
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path

import pytest

from intermodel.cli import main
from intermodel.transcript.reader import read_transcript
from tests.analysis.support import PANEL_TRIAL

REPO = Path(__file__).resolve().parents[2]
KINDS = ("pairing", "panel", "resumed", "branched")


@dataclass(frozen=True)
class Run:
    path: Path
    prompt: str  # the opener, or the panel's message
    reply: str  # words only this run's own turns or answers hold
    agents: tuple[str, ...]


@dataclass(frozen=True)
class Night:
    folder: Path
    runs: dict[str, Run]
    killed: Path  # a run killed while its header was being written: no run in it


def intermodel(*args: str | Path, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "NO_COLOR": "1"}
    env.pop("INTERMODEL_TRANSCRIPTS", None)
    return subprocess.run([sys.executable, "-m", "intermodel", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL)


def ok(*args: str | Path) -> subprocess.CompletedProcess[str]:
    """`intermodel ARGS` in this process; it must succeed."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        code = main([str(a) for a in args])
    result = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    assert code == 0, (args, result.stdout, result.stderr)
    return result


def new_run(folder: Path, *args: str | Path) -> Path:
    """Run `intermodel ARGS` as a process; the transcript it wrote in `folder`."""
    before = set(folder.glob("*.jsonl"))
    made = intermodel(*args)
    assert made.returncode == 0, (args, made.stdout, made.stderr)
    [made] = set(folder.glob("*.jsonl")) - before
    return made


@pytest.fixture(scope="module")
def night(tmp_path_factory: pytest.TempPathFactory) -> Night:
    folder = tmp_path_factory.mktemp("night")
    runs = folder / "runs"
    runs.mkdir()
    chat = new_run(runs, "run", "configs/scripted.toml", "--headless", "--out", runs)
    panel_file = folder / "voices.toml"
    panel_file.write_text(textwrap.dedent(PANEL_TRIAL), encoding="utf-8")
    panel = new_run(runs, "run", panel_file, "--headless", "--out", runs)
    # Stopped at its budget after two turns, then taken up again for two more.
    resumed = new_run(runs, "run", "configs/scripted.toml", "--headless", "--turns", "2",
                      "--out", runs)
    again = intermodel("resume", resumed, "--turns", "4", "--headless")
    assert again.returncode == 0, again.stderr
    branched = new_run(runs, "branch", chat, "--turn", "2", "--say",
                       "Talk about the sea now, please.", "--to", "ada", "--turns", "4",
                       "--headless")
    killed = runs / "killed.jsonl"
    killed.write_bytes(panel.read_bytes()[:80])  # a header cut short, no newline
    question = "what do you notice first when you read a message?"
    return Night(folder, {
        "pairing": Run(chat, "meeting for the first time",
                       "That seems a good place to stop.", ("ada", "bo")),
        "panel": Run(panel, "Say something.", "cy answers at once", ("ann", "ben", "cy")),
        # Turn 3 is made only after the resume.
        "resumed": Run(resumed, "meeting for the first time", question, ("ada", "bo")),
        "branched": Run(branched, "meeting for the first time",
                        "Talk about the sea now, please.", ("ada", "bo")),
    }, killed)


def test_the_night_is_what_it_says(night: Night) -> None:
    runs = {kind: read_transcript(run.path) for kind, run in night.runs.items()}
    assert runs["panel"].is_panel and [t.agent for t in runs["panel"].turns] == [
        "cy", "ben", "ann"]  # completion order, not the agents' order
    assert len(runs["resumed"].resumes) == 1 and runs["resumed"].turns[2].text.endswith(
        night.runs["resumed"].reply)
    assert runs["branched"].header["parent"]["run_id"] == runs["pairing"].run_id


# -- one run at a time -------------------------------------------------------------------------


@pytest.mark.parametrize("kind", KINDS)
def test_stats(night: Night, kind: str) -> None:
    run = night.runs[kind]
    table = ok("stats", run.path).stdout
    rid = read_transcript(run.path).run_id
    assert rid in table and all(f"  {agent} " in table for agent in run.agents)
    csv = ok("stats", run.path, "--format", "csv").stdout.splitlines()
    assert len(csv) == 1 + len(run.agents) and all(rid in line for line in csv[1:])


@pytest.mark.parametrize("kind", KINDS)
def test_export_markdown(night: Night, kind: str) -> None:
    run = night.runs[kind]
    text = ok("export", run.path, "--format", "md", "-o", "-").stdout
    assert run.prompt in text and run.reply in text
    if kind == "panel":
        assert [line for line in text.splitlines() if line.startswith("### ")] == [
            "### Answer 1 · ann", "### Answer 2 · ben", "### Answer 3 · cy"]


@pytest.mark.parametrize("kind", KINDS)
def test_export_html(night: Night, kind: str, tmp_path: Path) -> None:
    run = night.runs[kind]
    target = tmp_path / "page.html"
    ok("export", run.path, "--format", "html", "-o", target)
    page = target.read_text(encoding="utf-8")
    assert run.prompt in page and run.reply in page
    if kind == "panel":
        answers = page[page.index("<h2>Answers"):]
        assert [answers.index(f'<span class="who">{agent}</span>') for agent in run.agents] \
            == sorted(answers.index(f'<span class="who">{agent}</span>') for agent in run.agents)
    else:
        assert "<h2>Conversation</h2>" in page


@pytest.mark.parametrize("kind", KINDS)
def test_inspect(night: Night, kind: str) -> None:
    run = night.runs[kind]
    turns = len(read_transcript(run.path).turns)
    result = ok("inspect", run.path)
    noun = "answers" if kind == "panel" else "turns"
    assert f"{turns} of {turns} {noun} match their recorded request hash" in result.stdout
    one = ok("inspect", run.path, "--turn", "1").stdout
    assert run.prompt in one  # the request rebuilt: the opener or the panel's message is in it


@pytest.mark.anyio
@pytest.mark.parametrize("kind", KINDS)
async def test_replay_under_pilot(night: Night, kind: str) -> None:
    from intermodel.tui.app import replay_app
    from tests.tui_support import status_text, until

    run = night.runs[kind]
    app = replay_app(run.path, speed=1000, blink=False)
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, lambda: app.model.end is not None, timeout=30)
        assert [pane.agent for pane in app.panes] == list(run.agents)
        # (Joined with spaces: a reply wraps at the pane's width, at a space.)
        shown = " ".join(line for pane in app.panes for line in pane.text_lines())
        assert run.reply in shown
        assert "finished" in status_text(app)
        await pilot.press("q")
    assert app.return_value == 0


@pytest.mark.parametrize("kind", KINDS)
def test_branch_where_it_applies(night: Night, kind: str, tmp_path: Path) -> None:
    run = night.runs[kind]
    result = intermodel("branch", run.path, "--turn", "1", "--say", "One more thing.",
                        "--out", tmp_path, "--headless")
    if kind == "panel":  # one message, one answer each: there is nothing to go on from
        assert result.returncode == 2 and "Traceback" not in result.stderr
        assert result.stderr.strip() == (f"intermodel: {run.path}: it records a panel, not a "
                                         "conversation")
        return
    assert result.returncode == 0, result.stderr
    [child] = tmp_path.glob("*.jsonl")
    branch = read_transcript(child)
    assert branch.header["parent"]["run_id"] == read_transcript(run.path).run_id
    assert any(t.agent == run.agents[0] for t in branch.turns)


# -- the whole folder --------------------------------------------------------------------------


def skipped_killed(night: Night, stderr: str) -> None:
    """The file with no run in it is named, with why; nothing else is skipped."""
    named, count = [line for line in stderr.splitlines() if "skipped" in line]
    assert named.startswith(f"intermodel: skipped {night.killed}: ")
    assert count == "intermodel: 1 file skipped"


def test_stats_of_the_folder(night: Night) -> None:
    result = ok("stats", night.folder)
    for run in night.runs.values():
        assert read_transcript(run.path).run_id in result.stdout
    skipped_killed(night, result.stderr)


def test_index_of_the_folder(night: Night, tmp_path: Path) -> None:
    db = tmp_path / "night.sqlite"
    result = ok("index", night.folder, "--db", db)
    assert "4 added" in result.stdout and "1 skipped" in result.stdout
    skipped_killed(night, result.stderr)
    with closing(sqlite3.connect(db)) as conn:
        for kind, run in night.runs.items():
            rid = read_transcript(run.path).run_id
            [(stored_kind, prompt)] = conn.execute(
                "SELECT kind, prompt FROM runs WHERE run_id = ?", (rid,)).fetchall()
            assert stored_kind == ("panel" if kind == "panel" else "pairing")
            texts = [text for (text,) in conn.execute(
                "SELECT text FROM turns WHERE run_id = ? UNION ALL "
                "SELECT text FROM interjections WHERE run_id = ?", (rid, rid))]
            assert any(run.reply in text for text in texts), kind
            if kind == "panel":
                assert prompt == run.prompt
                assert conn.execute("SELECT agent, model FROM answers WHERE run_id = ? "
                                    "ORDER BY slot", (rid,)).fetchall() == [
                    ("ann", "alpha-1"), ("ben", "beta-2"), ("cy", "gamma-3")]


def test_html_of_the_folder(night: Night) -> None:
    result = ok("export", night.folder, "--format", "html")
    skipped_killed(night, result.stderr)
    index = (night.folder / "index.html").read_text(encoding="utf-8")
    for kind, run in night.runs.items():
        assert read_transcript(run.path).run_id in index
        page = run.path.with_suffix(".html").read_text(encoding="utf-8")
        assert run.reply in page, kind
    panels = index[index.index("<h2>Panels"):]
    assert night.runs["panel"].prompt in panels
