from __future__ import annotations

import json
from pathlib import Path

import anyio
import pytest

from intermodel.engine.dialogue import Dialogue
from intermodel.engine.events import Event, TurnStarted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import TranscriptError, UsageError
from intermodel.lineage.audit import verify_transcript
from intermodel.lineage.resume import plan_resume, prepared_resume
from intermodel.records import Discard, Resumption, RunEnd
from intermodel.transcript.reader import read_transcript
from intermodel.transcript.writer import TranscriptWriter
from tests.conftest import SCRIPTED, PairingFactory

pytestmark = pytest.mark.anyio

# Small delays keep a turn streaming long enough for a stop to land inside it.
LONG = SCRIPTED.replace("max_turns = 4", "max_turns = 8").replace(
    '"ada three"]', '"ada three", "ada four"]\nthinking = ["a-t1", "a-t2"]\ndelay = 0.01').replace(
    '"bo three"]', '"bo three"]\ndelay = 0.01')


async def run_to_end(pairing, tmp_path: Path, stop_at: int | None = None) -> Path:  # type: ignore[no-untyped-def]
    async with prepared_run(pairing, out_dir=tmp_path) as run:
        subscription = run.session.subscribe()

        async def stopper(dialogue: Dialogue) -> None:
            event: Event
            async for event in subscription:
                if isinstance(event, TurnStarted) and event.turn == stop_at:
                    dialogue.controls.stop(now=True, reason="interrupted")

        async with anyio.create_task_group() as tg:
            tg.start_soon(stopper, run.session)
            await run.session.run()
    assert run.transcript is not None
    return run.transcript


async def resume(path: Path, turns: int | None = None) -> RunEnd:
    async with prepared_resume(path, turns=turns) as run:
        return await run.session.run()


def texts(path: Path) -> list[tuple[int, str, str]]:
    return [(t.index, t.agent, t.text) for t in read_transcript(path).turns]


async def test_an_interrupted_run_resumes_into_one_seamless_transcript(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    pairing = make_pairing(LONG)
    whole = await run_to_end(pairing, tmp_path / "whole")
    cut = await run_to_end(pairing, tmp_path / "cut", stop_at=4)
    assert [t[0] for t in texts(cut)] == [1, 2, 3]
    end = await resume(cut)
    assert end.reason == "max_turns"
    assert texts(cut) == texts(whole)
    transcript = read_transcript(cut)
    kinds = [type(r).__name__ for r in transcript.records]
    assert kinds.count("Resumption") == 1
    assert kinds[kinds.index("Resumption") - 2:kinds.index("Resumption")] == ["Discard", "RunEnd"]
    assert transcript.run_id == read_transcript(cut).header["run_id"]
    marker = transcript.resumes[0]
    assert (marker.after_turn, marker.max_turns, marker.torn_bytes) == (3, 8, 0)
    assert transcript.end is not None and transcript.end.turns == 8
    # Every request after the seam is exactly what an uninterrupted run sent.
    assert all(r.matches for r in verify_transcript(transcript))
    assert [t.request_hash for t in transcript.turns] == \
        [t.request_hash for t in read_transcript(whole).turns]


async def test_a_torn_last_record_is_cut_off_and_noted(make_pairing: PairingFactory,
                                                       tmp_path: Path) -> None:
    pairing = make_pairing(LONG)
    path = await run_to_end(pairing, tmp_path, stop_at=5)
    lines = path.read_bytes().splitlines(keepends=True)
    # A crash in the middle of writing turn 4's record: drop the ending, keep half of turn 4.
    turn4 = next(i for i, line in enumerate(lines) if b'"index":4' in line)
    path.write_bytes(b"".join(lines[:turn4]) + lines[turn4][:40])
    assert read_transcript(path).torn_bytes == 40
    await resume(path)
    transcript = read_transcript(path)
    assert transcript.torn is None
    assert transcript.resumes[0].torn_bytes == 40
    assert [t.index for t in transcript.turns] == list(range(1, 9))
    assert all(json.loads(line) for line in path.read_text().splitlines())


async def test_a_finished_run_needs_a_bigger_budget(make_pairing: PairingFactory,
                                                    tmp_path: Path) -> None:
    path = await run_to_end(make_pairing(), tmp_path)
    with pytest.raises(UsageError, match=r"reached its budget of 4 turns\. Continue it with"):
        plan_resume(read_transcript(path))
    with pytest.raises(UsageError, match="already has 4 turns"):
        plan_resume(read_transcript(path), turns=4)
    end = await resume(path, turns=6)
    assert end.reason == "max_turns"
    assert [t.index for t in read_transcript(path).turns] == [1, 2, 3, 4, 5, 6]
    assert read_transcript(path).max_turns == 6


async def test_pending_interjections_survive_a_crash(make_pairing: PairingFactory,
                                                     tmp_path: Path) -> None:
    pairing = make_pairing(LONG)
    async with prepared_run(pairing, out_dir=tmp_path) as run:
        subscription = run.session.subscribe()

        async def drive() -> None:
            async for event in subscription:
                if isinstance(event, TurnStarted) and event.turn == 3:
                    run.session.controls.interject("a note for bo", to="bo")
                    run.session.controls.stop(now=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(drive)
            await run.session.run()
    assert run.transcript is not None
    async with prepared_resume(run.transcript) as resumed:
        providers = resumed.providers
        await resumed.session.run()
    bo_requests = providers["bo"].requests  # type: ignore[attr-defined]
    assert "[Human]: a note for bo" in bo_requests[0].messages[-1].content


async def test_a_live_run_cannot_be_resumed_twice(make_pairing: PairingFactory,
                                                  tmp_path: Path) -> None:
    path = await run_to_end(make_pairing(LONG), tmp_path, stop_at=3)
    holder, _ = TranscriptWriter.reopen(path)
    try:
        with pytest.raises(TranscriptError, match="belongs to a run in progress"):
            await resume(path)
    finally:
        holder.close()
    await resume(path)  # the lock went with its holder


async def test_resume_records_are_readable_by_every_export(make_pairing: PairingFactory,
                                                           tmp_path: Path) -> None:
    from intermodel.analysis.markdown import to_markdown

    path = await run_to_end(make_pairing(LONG), tmp_path, stop_at=3)
    await resume(path)
    markdown = to_markdown(read_transcript(path))
    assert "⟳ **resumed** after turn 2" in markdown
    records = read_transcript(path).records
    assert isinstance(records[2], Discard)
    assert any(isinstance(r, Resumption) for r in records)
