"""A run with viewers attached: does watching slow it down, and how soon do viewers see it?

Two scripted agents each stream about 100 tokens per second (a 10 ms delay per one-word chunk)
in a recorded headless-style run (transcript, control socket) inside one process. Viewers are
other processes, each subscribed to the run's control socket as `intermodel attach` is, decoding
every line with the viewer's checks. Scenarios: no viewer, 1, 10, and 1 viewer stopped with
SIGSTOP right after it attached. Each scenario runs in a fresh process; median of `--rounds`.

Figures:
- run tok/s: tokens over the run's wall time (first request to the end record);
- × none: that against the no-viewer scenario of the same round;
- first chunk p50/max: per turn, from the run publishing the turn's first text chunk to a viewer
  having read and decoded it (CLOCK_MONOTONIC, shared by processes), over all viewers;
- RSS growth: the run process's peak RSS during the run, above its RSS before it;
- dropped: viewers the run cut off (a stopped one is, once it stalls or lags).

    python bench/attach.py [--turns 8] [--words 150] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

from intermodel.config import parse_pairing
from intermodel.control.server import ControlServer
from intermodel.control.watch import Watch
from intermodel.engine.events import Event, TextChunk
from intermodel.engine.prepare import prepared_run

SCENARIOS = {"none": (0, False), "1 viewer": (1, False), "10 viewers": (10, False),
             "1 stopped": (0, True)}


def pairing_text(turns: int, words: int) -> str:
    text = " ".join(f"w{i % 97}" for i in range(words))
    agent = """
[agents.{name}]
provider = "scripted"
prompt = "You are {{name}}."
[agents.{name}.script]
replies = ["{text}"]
chunk_words = 1
delay = 0.01
"""
    return (f'name = "bench-attach"\n[dialogue]\nopener = "Go."\nmax_turns = {turns}\n'
            + agent.format(name="ada", text=text) + agent.format(name="bo", text=text))


def _rss_kib() -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


# -- a viewer: its own process ----------------------------------------------------------------


async def viewer(socket: str) -> dict[int, float]:
    """When each turn's first text chunk was read and decoded here."""
    firsts: dict[int, float] = {}

    def publish(event: Event) -> None:
        if type(event) is TextChunk and event.turn not in firsts:
            firsts[event.turn] = time.monotonic()

    await Watch(Path(socket)).serve(publish)
    return firsts


# -- one scenario: its own process ------------------------------------------------------------


async def scenario(name: str, turns: int, words: int) -> dict[str, Any]:
    viewers, stopped = SCENARIOS[name]
    folder = Path(tempfile.mkdtemp(prefix="bench-attach-"))
    pairing = parse_pairing(pairing_text(turns, words), source="bench.toml")
    produced: dict[int, float] = {}

    class FirstChunks:
        def push(self, event: Event) -> None:
            if type(event) is TextChunk and event.turn not in produced:
                produced[event.turn] = time.monotonic()

        def close(self) -> None:
            pass

    async with prepared_run(pairing, out_dir=folder) as run:
        assert run.transcript is not None
        server = ControlServer(run.session, run.transcript)
        run.session.bus.add(FirstChunks())
        outs = [folder / f"viewer{i}.json" for i in range(viewers + stopped)]
        async with anyio.create_task_group() as tg:
            await tg.start(server.serve)
            procs = [await anyio.open_process([sys.executable, __file__, "--viewer",
                                               str(server.path), str(out)],
                                              stdout=None, stderr=None) for out in outs]
            for _ in range(6000):  # until every viewer has subscribed (a bound for a hang)
                if server.viewers == len(procs):
                    break
                await anyio.sleep(0.01)
            sleeper = procs.pop() if stopped else None
            if sleeper is not None:
                outs.pop()
                os.kill(sleeper.pid, signal.SIGSTOP)
            before = _rss_kib()
            start = time.monotonic()
            end = await run.session.run()
            wall = time.monotonic() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
            await server.let_viewers_finish()
            tg.cancel_scope.cancel()
        for proc in procs:
            with anyio.fail_after(60):
                await proc.wait()
        if sleeper is not None:
            os.kill(sleeper.pid, signal.SIGCONT)
            sleeper.kill()
            await sleeper.wait()
    delays = []
    for out in outs:
        seen = {int(k): v for k, v in json.loads(out.read_text()).items()}
        delays += [(seen[turn] - at) * 1000 for turn, at in produced.items() if turn in seen]
    tokens = sum(u.output_tokens for u in end.usage.values())
    return {"scenario": name, "wall": wall, "tok_s": tokens / wall,
            "first_p50": statistics.median(delays) if delays else None,
            "first_max": max(delays) if delays else None,
            "rss_growth_mib": max(0, peak - before) / 1024, "dropped": server.dropped}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--turns", type=int, default=8)
    parser.add_argument("--words", type=int, default=150)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--viewer", nargs=2, help=argparse.SUPPRESS)
    parser.add_argument("--scenario", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.viewer:
        socket, out = args.viewer
        Path(out).write_text(json.dumps(anyio.run(viewer, socket)))
        return
    if args.scenario:
        print(json.dumps(anyio.run(scenario, args.scenario, args.turns, args.words)))
        return
    rows: dict[str, list[dict[str, Any]]] = {name: [] for name in SCENARIOS}
    for _ in range(args.rounds):
        for name in SCENARIOS:
            done = subprocess.run([sys.executable, __file__, "--scenario", name, "--turns",
                                   str(args.turns), "--words", str(args.words)],
                                  capture_output=True, text=True, check=True)
            rows[name].append(json.loads(done.stdout.splitlines()[-1]))
    base = statistics.median(r["tok_s"] for r in rows["none"])
    print(f"{args.turns} turns of {args.words} words, 2 agents at ~100 tok/s each; median of "
          f"{args.rounds} rounds; load average {os.getloadavg()[0]:.1f}\n")
    print("| scenario | run tok/s | × none | first chunk p50 ms | max ms | RSS growth MiB | "
          "dropped |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    for name, found in rows.items():
        tok = statistics.median(r["tok_s"] for r in found)
        firsts = [r["first_p50"] for r in found if r["first_p50"] is not None]
        maxes = [r["first_max"] for r in found if r["first_max"] is not None]
        first = f"{statistics.median(firsts):.1f}" if firsts else "—"
        worst = f"{max(maxes):.1f}" if maxes else "—"
        rss = statistics.median(r["rss_growth_mib"] for r in found)
        dropped = max(r["dropped"] for r in found)
        print(f"| {name} | {tok:.1f} | {tok / base:.3f} | {first} | {worst} | {rss:.1f} | "
              f"{dropped} |")


if __name__ == "__main__":
    main()
