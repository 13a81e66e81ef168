"""Branching: a new run from another run's state after turn N, linked both ways."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from intermodel.engine.prepare import prepared_run
from intermodel.errors import TranscriptError, UsageError
from intermodel.lineage.audit import verify_transcript
from intermodel.lineage.branch import plan_branch, prepared_branch
from intermodel.records import Branch, Interjection
from intermodel.transcript.reader import read_transcript
from intermodel.transcript.writer import TranscriptWriter
from tests.conftest import SCRIPTED, PairingFactory

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]
PAIR = SCRIPTED.replace("max_turns = 4", "max_turns = 6").replace(
    '"ada three"]', '"ada three"]\nthinking = ["a thought"]')


async def parent_run(make_pairing: PairingFactory, tmp_path: Path) -> Path:
    async with prepared_run(make_pairing(PAIR), out_dir=tmp_path) as run:
        run.session.controls.interject("an early note", to="bo")
        await run.session.run()
    assert run.transcript is not None
    return run.transcript


async def test_a_branch_inherits_turns_then_goes_its_own_way(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    parent_path = await parent_run(make_pairing, tmp_path)
    async with prepared_branch(parent_path, 3, say="New direction, please.", to="b") as run:
        providers = run.providers
        end = await run.session.run()
    assert end.reason == "max_turns"
    assert run.transcript is not None
    child, parent = read_transcript(run.transcript), read_transcript(parent_path)
    # Turns 1-3 are the parent's, word for word; 4-6 are new.
    assert [t.text for t in child.turns[:3]] == [t.text for t in parent.turns[:3]]
    assert [t.index for t in child.turns] == [1, 2, 3, 4, 5, 6]
    assert any(isinstance(r, Interjection) and r.text == "an early note" for r in child.records)
    bo_first = providers["bo"].requests[0]  # type: ignore[attr-defined]
    assert bo_first.messages[-1].content.endswith("[Human]: New direction, please.")
    # Linked both ways.
    assert child.header["parent"]["run_id"] == parent.run_id
    assert child.header["parent"]["after_turn"] == 3
    [link] = [r for r in parent.records if isinstance(r, Branch)]
    assert (link.run_id, link.after_turn) == (child.run_id, 3)
    assert Path(link.transcript) == run.transcript
    assert all(r.matches for r in verify_transcript(child))
    assert all(r.matches for r in verify_transcript(parent))  # the link changed nothing


async def test_another_model_in_a_seat_is_recorded_and_checkable(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    parent_path = await parent_run(make_pairing, tmp_path)
    async with prepared_branch(parent_path, 2, models={"ada": "scripted-v2"}) as run:
        await run.session.run()
    assert run.transcript is not None
    child = read_transcript(run.transcript)
    assert child.header["config"]["agents"]["ada"]["model"] == "scripted-v2"
    assert child.header["parent"]["config"]["agents"]["ada"]["model"] == "scripted"
    assert [t.model for t in child.turns] == ["scripted", "scripted", "scripted-v2",
                                             "scripted", "scripted-v2", "scripted"]
    # Inherited turns are checked against the parent's config, new ones against the child's.
    assert all(r.matches for r in verify_transcript(child))


async def test_a_seat_taken_by_another_pairing_files_agent(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text(SCRIPTED.replace('replies = ["bo one", "bo two", "bo three"]',
                                      'replies = ["a stranger speaks"]'))
    parent_path = await parent_run(make_pairing, tmp_path)
    async with prepared_branch(parent_path, 2, swap={"bo": f"{other}:bo"}, turns=4) as run:
        await run.session.run()
    assert run.transcript is not None
    assert read_transcript(run.transcript).turns[3].text == "a stranger speaks"


async def test_refusals(make_pairing: PairingFactory, tmp_path: Path) -> None:
    parent_path = await parent_run(make_pairing, tmp_path)
    parent = read_transcript(parent_path)
    with pytest.raises(UsageError, match="--turn must be in 0-6"):
        plan_branch(parent, 7)
    with pytest.raises(UsageError, match="no agent 'carol'"):
        plan_branch(parent, 2, models={"carol": "x"})
    with pytest.raises(UsageError, match="no such addressee: use a, b, both, ada or bo"):
        plan_branch(parent, 2, say="hi", to="carol")
    holder, _ = TranscriptWriter.reopen(parent_path)  # as if the parent were still running
    try:
        with pytest.raises(TranscriptError, match="run in progress"):
            async with prepared_branch(parent_path, 2):
                pass
    finally:
        holder.close()


def test_the_branch_command(tmp_path: Path) -> None:
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(tmp_path), "NO_COLOR": "1"}
    config = tmp_path / "pair.toml"
    config.write_text(PAIR)

    def cli(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60, check=False)

    assert cli("run", str(config), "--headless").returncode == 0
    [parent] = tmp_path.glob("*.jsonl")
    result = cli("branch", str(parent), "--turn", "2", "--say", "Go on.", "--to", "a",
                 "--turns", "4", "--headless")
    assert result.returncode == 0, result.stderr
    assert "✎ human → ada (from turn 3): Go on." in result.stdout
    assert "── ada · turn 1 (earlier) " in result.stdout  # inherited turns are shown whole
    assert len(list(tmp_path.glob("*.jsonl"))) == 2
    bad = cli("branch", str(parent), "--turn", "2", "--model", "ada", "--headless")
    assert bad.returncode == 2 and "expected NAME=VALUE" in bad.stderr
