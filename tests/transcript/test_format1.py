"""Transcripts of format 1 written by intermodel 0.1.0 (see format1/README.md) stay readable:
every later version reads, inspects, renders, replays and resumes them as they are."""

from __future__ import annotations

import shutil
from collections import Counter
from pathlib import Path

import anyio
import pytest

from intermodel.analysis import run_stats
from intermodel.analysis.html import run_html
from intermodel.analysis.markdown import to_markdown
from intermodel.cli import main
from intermodel.config.model import Panel
from intermodel.engine.events import RunFinished
from intermodel.lineage.audit import verify_config, verify_transcript
from intermodel.lineage.replay import Replay
from intermodel.lineage.resume import prepared_resume
from intermodel.records import Resumption, RunEnd
from intermodel.transcript.reader import read_transcript

FIXTURES = Path(__file__).parent / "format1"
ALL = ("dialogue.jsonl", "branch.jsonl", "panel.jsonl")


def kinds(name: str) -> Counter[str]:
    return Counter(type(r).__name__ for r in read_transcript(FIXTURES / name).records)


def test_every_record_kind_reads_back() -> None:
    assert kinds("dialogue.jsonl") == Counter(
        Turn=6, Interjection=1, BudgetChange=1, Retry=1, Note=2, Trim=1, Flag=1, RunEnd=2,
        Resumption=1, Branch=1)
    assert kinds("branch.jsonl") == Counter(Turn=3, Interjection=1, Note=1, Discard=1, RunEnd=1)
    assert kinds("panel.jsonl") == Counter(Turn=3, RunEnd=1)
    for name in ALL:
        transcript = read_transcript(FIXTURES / name)
        assert (transcript.torn, transcript.unknown) == (None, 0)
        assert transcript.end is not None


def test_every_request_and_config_hash_still_matches() -> None:
    for name in ALL:
        transcript = read_transcript(FIXTURES / name)
        assert verify_config(transcript).matches, name
        results = verify_transcript(transcript)
        assert results and all(r.matches for r in results), name


def test_inspect_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    for name in ALL:
        assert main(["inspect", str(FIXTURES / name)]) == 0
    assert main(["inspect", str(FIXTURES / "dialogue.jsonl"), "--turn", "5"]) == 0
    assert "matches the recorded hash" in capsys.readouterr().out


def test_they_render_as_before() -> None:
    dialogue = read_transcript(FIXTURES / "dialogue.jsonl")
    markdown = to_markdown(dialogue)
    assert "### Turn 6 · bo" in markdown and "**resumed** after turn 5" in markdown
    assert "attempt 1 failed: rate_limited 429: slow down" in markdown
    assert "Turn 6" not in to_markdown(read_transcript(FIXTURES / "branch.jsonl"))
    assert "## Message (to every agent)" in to_markdown(read_transcript(FIXTURES / "panel.jsonl"))
    assert "Four." in run_html(dialogue)
    stats = run_stats(dialogue)
    assert (stats.turns, stats.end_reason, stats.retries) == (6, "max_turns", 1)
    assert run_stats(read_transcript(FIXTURES / "branch.jsonl")).inherited_turns == 2


async def played(replay: Replay) -> list[RunEnd]:
    """The ends a replay publishes, played at top speed until the first one."""
    subscription = replay.subscribe()
    ends: list[RunEnd] = []

    async def watch() -> None:
        async for event in subscription:
            if isinstance(event, RunFinished):
                ends.append(event.end)
                replay.close()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            await replay.run()
    return ends


@pytest.mark.anyio
async def test_they_replay_to_their_recorded_end() -> None:
    for name in ALL:
        transcript = read_transcript(FIXTURES / name)
        replay = Replay(transcript, speed=1000)
        assert transcript.end is not None
        assert [end.reason for end in await played(replay)] == [transcript.end.reason]
        assert isinstance(replay.spec, Panel) == (name == "panel.jsonl")


@pytest.mark.anyio
async def test_a_finished_dialogue_resumes_with_a_bigger_budget(tmp_path: Path) -> None:
    path = tmp_path / "dialogue.jsonl"
    shutil.copyfile(FIXTURES / "dialogue.jsonl", path)
    async with prepared_resume(path, turns=8) as run:
        end = await run.session.run()
    assert (end.reason, end.turns) == ("max_turns", 8)
    transcript = read_transcript(path)
    assert [t.agent for t in transcript.turns[-2:]] == ["ada", "bo"]
    assert [r.after_turn for r in transcript.records if isinstance(r, Resumption)] == [5, 6]
    assert all(r.matches for r in verify_transcript(transcript))


@pytest.mark.anyio
async def test_a_stopped_branch_resumes_where_it_stopped(tmp_path: Path) -> None:
    path = tmp_path / "branch.jsonl"
    shutil.copyfile(FIXTURES / "branch.jsonl", path)
    async with prepared_resume(path) as run:
        end = await run.session.run()
    # bo's turn 4 again, from the start; then ada's turn 5 no longer fits its window of 256.
    assert (end.reason, end.turns) == ("context_full", 4)
    assert "ada's request for turn 5" in end.detail
    transcript = read_transcript(path)
    assert [t.index for t in transcript.turns] == [1, 2, 3, 4]
    assert all(r.matches for r in verify_transcript(transcript))
