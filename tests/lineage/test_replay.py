from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import anyio
import pytest

from intermodel.engine.events import (
    Event,
    Interjected,
    Notice,
    Paused,
    Resumed,
    RunFinished,
    RunStarted,
    TextChunk,
    ThinkingChunk,
    TurnCompleted,
    TurnStarted,
)
from intermodel.lineage.replay import INCOMPLETE, MAX_SPEED, Replay
from intermodel.records import Record
from intermodel.transcript.reader import read_transcript
from tests.conftest import PairingFactory
from tests.transcripts import finished, interjection, turn, write_transcript

pytestmark = pytest.mark.anyio


def three_turns(with_end: bool = True) -> list[Record]:
    records: list[Record] = [
        turn(1, "ada", "one two three four", done_at=1.0, latency=0.8, ttft=0.2,
             thinking="hm"),
        interjection(3, ("ada",), "slower, please", sent_at=1.5),  # sent while turn 2 streamed
        turn(2, "bo", "five six seven", done_at=2.0, latency=0.8),
        turn(3, "ada", "eight nine", done_at=3600.0, latency=0.5),  # an hour later
    ]
    return [*records, finished(records)] if with_end else records


def replay_of(tmp_path: Path, make_pairing: PairingFactory, records: list[Record], *,
              speed: float = 1000, torn: str = "") -> Replay:
    path = write_transcript(tmp_path / "run.jsonl", make_pairing(), records, torn=torn)
    return Replay(read_transcript(path), speed=speed, max_gap=0.5)


async def collect(replay: Replay, until: Callable[[Event], bool] = lambda e: isinstance(
        e, RunFinished), timeout: float = 10) -> list[Event]:
    """Run the replay and gather its events until `until` holds, then close it."""
    subscription = replay.subscribe()
    seen: list[Event] = []
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(replay.run)
            async for event in subscription:
                seen.append(event)
                if until(event):
                    replay.close()
    return seen


async def test_a_replay_publishes_the_run_as_it_happened(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    events = await collect(replay_of(tmp_path, make_pairing, three_turns()))
    assert isinstance(events[0], RunStarted) and events[0].transcript.endswith("run.jsonl")
    turns = [e.turn for e in events if isinstance(e, TurnCompleted)]
    assert [(t.index, t.agent) for t in turns] == [(1, "ada"), (2, "bo"), (3, "ada")]
    for t in turns:
        text = "".join(e.text for e in events if isinstance(e, TextChunk) and e.turn == t.index)
        thinking = "".join(e.text for e in events
                           if isinstance(e, ThinkingChunk) and e.turn == t.index)
        assert (text, thinking) == (t.text, t.thinking)
    starts = [e for e in events if isinstance(e, TurnStarted)]
    assert [s.max_turns for s in starts] == [4, 4, 4]
    assert isinstance(events[-1], RunFinished) and events[-1].end.reason == "max_turns"


async def test_an_interjection_sent_mid_turn_appears_mid_turn(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    events = await collect(replay_of(tmp_path, make_pairing, three_turns(), speed=4))
    events = [e for e in events if not isinstance(e, ThinkingChunk)]
    position = next(i for i, e in enumerate(events) if isinstance(e, Interjected))
    before, after = events[position - 1], events[position + 1]
    assert isinstance(before, TextChunk) and isinstance(after, TextChunk)
    assert before.turn == after.turn == 2


async def test_pacing_follows_the_record_divided_by_speed_with_gaps_capped(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    started = anyio.current_time()
    await collect(replay_of(tmp_path, make_pairing, three_turns(), speed=2))
    # turns stream 0.8 + 0.8 + 0.5 s; quiet gaps: 0.2 before turn 2, then an hour capped at 0.5
    elapsed = anyio.current_time() - started
    assert 1.2 < elapsed < 2.5


async def test_pause_holds_playback_and_resume_goes_on(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    replay = replay_of(tmp_path, make_pairing, three_turns(), speed=1)
    subscription = replay.subscribe()
    seen: list[Event] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(replay.run)
            async for event in subscription:
                seen.append(event)
                if isinstance(event, TextChunk) and not replay.paused and not any(
                        isinstance(e, Paused) for e in seen):
                    replay.pause()
                    await anyio.sleep(0.4)
                    pending = subscription.drain()
                    held = pending[[type(e) for e in pending].index(Paused) + 1:]
                    assert not any(isinstance(e, TextChunk) for e in held)
                    seen.extend(pending)
                    replay.set_speed(50)
                    replay.resume()
                if isinstance(event, RunFinished):
                    replay.close()
    kinds = [type(e) for e in seen]
    assert kinds.index(Paused) < kinds.index(Resumed)
    assert replay.speed == 50


async def test_seek_starts_over_with_the_history_before_the_turn_at_once(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    replay = replay_of(tmp_path, make_pairing, three_turns(), speed=1)
    subscription = replay.subscribe()
    seen: list[Event] = []
    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(replay.run)
            async for event in subscription:
                seen.append(event)
                if isinstance(event, TurnStarted) and sum(isinstance(e, RunStarted)
                                                          for e in seen) == 1:
                    assert replay.seek(3) == 3
                if isinstance(event, RunFinished):
                    replay.close()
    starts = [i for i, e in enumerate(seen) if isinstance(e, RunStarted)]
    assert len(starts) == 2
    restart = starts[1]
    after = seen[restart:]
    first_chunk = next(i for i, e in enumerate(after) if isinstance(e, TextChunk))
    instant = after[:first_chunk]
    assert [e.turn.index for e in instant if isinstance(e, TurnCompleted)] == [1, 2]
    assert any(isinstance(e, Interjected) for e in instant)
    assert not any(isinstance(e, TextChunk) and e.turn < 3 for e in after)
    assert {e.turn for e in after if isinstance(e, TextChunk)} == {3}
    assert replay.seek(99) == 4  # clamped: just past the last recorded turn


async def test_a_crashed_transcript_plays_what_it_has_and_says_so(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    replay = replay_of(tmp_path, make_pairing, three_turns(with_end=False), torn='{"kind":"tu')
    events = await collect(replay)
    assert sum(isinstance(e, TurnCompleted) for e in events) == 3
    assert any(isinstance(e, Notice) and "cut off" in e.message for e in events)
    end = events[-1]
    assert isinstance(end, RunFinished)
    assert (end.end.reason, end.end.detail, end.end.turns) == ("incomplete", INCOMPLETE, 3)


async def test_speed_is_clamped(tmp_path: Path, make_pairing: PairingFactory) -> None:
    replay = replay_of(tmp_path, make_pairing, three_turns())
    assert replay.set_speed(1e9) == MAX_SPEED
    assert replay.set_speed(0) > 0
