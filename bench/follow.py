"""Following a growing transcript (`intermodel replay --follow`): what an idle follow costs, how
soon a written record is shown, and how fast the history comes in.

1. Idle: CPU seconds per minute of a follow whose file does not grow, polling at a fixed 0.1 s
   against backing off from 0.1 s to 1 s (what `Follow` does). Alternating runs, median.
2. Latency: a real transcript writer appends a turn every GAP seconds (fsynced, as a run writes);
   the time from its write returning to the follow publishing that turn's start (the moment the
   screen can show it). Median, 95th percentile and worst, over all turns.
3. History: a transcript of N turns, read whole by `read_transcript` (the replay's reader)
   against a `GrowingTranscript`'s first poll, and against a `Follow` publishing it all to a
   subscriber. Median of rounds.

    python bench/follow.py [--idle 10] [--runs 3] [--turns 10] [--history 5000]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from intermodel.config import parse_pairing  # noqa: E402
from intermodel.engine.events import RunFinished, TurnStarted  # noqa: E402
from intermodel.lineage.follow import POLL_MAX, POLL_MIN, Follow  # noqa: E402
from intermodel.records import Header, RunEnd, Turn, Usage  # noqa: E402
from intermodel.transcript.reader import GrowingTranscript, read_transcript  # noqa: E402
from intermodel.transcript.writer import TranscriptWriter  # noqa: E402

PAIRING = """
name = "bench-follow"
[dialogue]
opener = "Go on."
max_turns = 1000000
[agents.ada]
provider = "scripted"
script = { rule = "count" }
[agents.bo]
provider = "scripted"
script = { rule = "count" }
"""
WORDS = ["the", "light", "moves", "across", "the", "wall", "and", "the", "room", "keeps", "its",
         "quiet", "while", "we", "talk", "about", "what", "we", "notice", "first"]


def make_turn(index: int) -> Turn:
    text = " ".join(WORDS[(index + i) % len(WORDS)] for i in range(120))
    return Turn(index, "ada" if index % 2 else "bo", text, "", usage=Usage(100, 160),
                latency=1.0, ttft=0.1, stop_reason="end_turn", model="scripted",
                at=f"2026-01-02T03:{(index // 60) % 60:02d}:{index % 60:02d}.000Z")


async def open_transcript(path: Path) -> TranscriptWriter:
    pairing = parse_pairing(PAIRING, source="bench.toml")
    writer = TranscriptWriter(path)
    writer.open(new=True)
    await writer.record(Header("feedc0ffee00", "2026-01-02T03:00:00.000Z", pairing.name,
                               pairing.source, pairing.resolved))
    return writer


async def idle_cpu(folder: Path, seconds: float, poll_max: float) -> float:
    """CPU seconds per minute of following a file that does not grow."""
    path = folder / f"idle-{poll_max}.jsonl"
    path.unlink(missing_ok=True)
    writer = await open_transcript(path)
    await writer.record(make_turn(1))
    follow = Follow(GrowingTranscript(path), poll_min=POLL_MIN, poll_max=poll_max)
    subscription = follow.subscribe()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow.run)
        while follow.turns < 1:
            await subscription.wait()
            subscription.drain()
        started = time.process_time()
        await anyio.sleep(seconds)
        used = time.process_time() - started
        follow.close()
    writer.close()
    return used * 60 / seconds


async def latency(folder: Path, gap: float, turns: int) -> list[float]:
    """Seconds from each turn's write returning to the follow publishing its start."""
    path = folder / f"latency-{gap}.jsonl"
    path.unlink(missing_ok=True)
    writer = await open_transcript(path)
    follow = Follow(GrowingTranscript(path), until_end=True)
    written: dict[int, float] = {}
    delays: list[float] = []
    subscription = follow.subscribe()

    async def write() -> None:
        await anyio.sleep(0.5)
        for index in range(1, turns + 1):
            await anyio.sleep(gap)
            await writer.record(make_turn(index))
            written[index] = time.perf_counter()
        await writer.record(RunEnd("max_turns", "", turns=turns))
        writer.close()

    async with anyio.create_task_group() as tg:
        tg.start_soon(follow.run)
        tg.start_soon(write)
        async for event in subscription:
            if isinstance(event, TurnStarted):
                delays.append(time.perf_counter() - written[event.turn])
            elif isinstance(event, RunFinished):
                break
    return delays


async def write_history(path: Path, turns: int) -> None:
    writer = await open_transcript(path)
    for index in range(1, turns + 1):
        await writer.record(make_turn(index))
    writer.close()


async def follow_history(path: Path, turns: int) -> float:
    started = time.perf_counter()
    follow = Follow(GrowingTranscript(path))
    subscription = follow.subscribe()
    async with anyio.create_task_group() as tg:
        tg.start_soon(follow.run)
        while follow.turns < turns:
            await subscription.wait()
            subscription.drain()
        elapsed = time.perf_counter() - started
        follow.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--idle", type=float, default=10.0, help="seconds of each idle run")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--turns", type=int, default=10, help="turns written per latency run")
    parser.add_argument("--history", type=int, default=5000, help="turns in the history file")
    args = parser.parse_args()
    print(f"load average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the start")
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)

        fixed: list[float] = []
        backoff: list[float] = []
        for _ in range(args.runs):  # alternating, so a change in load hits both alike
            fixed.append(anyio.run(idle_cpu, folder, args.idle, POLL_MIN))
            backoff.append(anyio.run(idle_cpu, folder, args.idle, POLL_MAX))
        print("\n| idle follow | polls per minute | CPU ms per minute (median) | runs |")
        print("|---|---:|---:|---:|")
        print(f"| fixed {POLL_MIN:g} s | {60 / POLL_MIN:.0f} | "
              f"{statistics.median(fixed) * 1000:.1f} | {args.runs} |")
        print(f"| back-off {POLL_MIN:g} → {POLL_MAX:g} s | ~{60 / POLL_MAX:.0f} | "
              f"{statistics.median(backoff) * 1000:.1f} | {args.runs} |")

        print("\n| a turn written every | turns | median ms | p95 ms | worst ms |")
        print("|---|---:|---:|---:|---:|")
        for gap in (0.2, 2.0):
            delays = sorted(anyio.run(latency, folder, gap, args.turns))
            p95 = delays[min(len(delays) - 1, round(0.95 * (len(delays) - 1)))]
            print(f"| {gap:g} s | {len(delays)} | {statistics.median(delays) * 1000:.0f} | "
                  f"{p95 * 1000:.0f} | {delays[-1] * 1000:.0f} |")

        path = folder / "history.jsonl"
        anyio.run(write_history, path, args.history)
        size = path.stat().st_size
        whole, first, follow = [], [], []
        for _ in range(args.runs):
            started = time.perf_counter()
            read_transcript(path)
            whole.append(time.perf_counter() - started)
            started = time.perf_counter()
            GrowingTranscript(path).poll()
            first.append(time.perf_counter() - started)
            follow.append(anyio.run(follow_history, path, args.history))
        print(f"\n| history: {args.history:,} turns, {size / 1e6:.1f} MB | seconds (median) |")
        print("|---|---:|")
        print(f"| read_transcript (replay) | {statistics.median(whole):.3f} |")
        print(f"| GrowingTranscript, first poll | {statistics.median(first):.3f} |")
        print(f"| Follow, all published | {statistics.median(follow):.3f} |")
    print(f"\nload average {os.getloadavg()[0]:.2f} {os.getloadavg()[1]:.2f} at the end")


if __name__ == "__main__":
    main()
