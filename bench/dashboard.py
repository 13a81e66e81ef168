"""The batch dashboard's cost: a whole batch's snapshot, and the screen kept up to date with it.

(a) `Batch.snapshot()` of a batch of N entries (what the dashboard, the batch socket and
    `intermodel status` read): microseconds per snapshot.
(b) The dashboard left open on a batch where nothing changes (a paused or waiting batch, the
    usual overnight sight): CPU per second of wall time, under `App.run_test`, headless, 160×48,
    refreshing twice a second. "cells" is the dashboard as it is (only the cells that changed are
    touched); "full" redraws every row and line at every refresh, the naive way, for comparison.
(c) The same with every entry changing at every refresh (its last line): the most a refresh can
    cost. "rows" rewrites every cell of a row that changed (the dashboard's first version).

Runs alternate A/B/A/B in fresh processes; the table shows medians.

    python bench/dashboard.py [--entries 20,500] [--seconds 10] [--runs 4]
"""

from __future__ import annotations

import argparse
import atexit
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

PAIR = """
name = "bench"
[dialogue]
opener = "Hi."
max_turns = 30
[agents.ada]
provider = "scripted"
[agents.ada.script]
rule = "count"
[agents.bo]
provider = "scripted"
[agents.bo.script]
rule = "count"
"""


def make_batch(entries: int) -> Any:
    from intermodel.config.experiment import load_experiment
    from intermodel.experiment.batch import Batch
    from intermodel.experiment.manifest import EntryState

    folder = Path(tempfile.mkdtemp(prefix="bench-dash-"))
    atexit.register(shutil.rmtree, folder, ignore_errors=True)
    (folder / "pair.toml").write_text(PAIR)
    (folder / "exp.toml").write_text(f"""
name = "bench"
out = "{folder / 'out'}"
replicates = {entries}
concurrency = 4
[[pairings]]
file = "pair.toml"
label = "p"
""")
    batch = Batch(load_experiment(folder / "exp.toml"), serve=False)
    statuses = ["finished", "running", "retrying", "pending", "failed"]
    for i, entry in enumerate(batch.entries):
        status = statuses[i % len(statuses)]
        batch.states[entry.id] = EntryState(
            status=status, transcript=str(folder / f"runs/{i:06d}.jsonl"), run_id=f"{i:012x}",
            turns=i % 30, waiting="openai 127.0.0.1:8080: rate limited 429"
            if status == "retrying" else "")
        batch._last[entry.id] = f"entry {i} said something rather long about the weather " * 2
    return batch


def snapshot_cost(entries: int) -> float:
    batch = make_batch(entries)
    rounds = max(20, 20_000 // entries)
    began = time.perf_counter()
    for _ in range(rounds):
        batch.snapshot()
    return (time.perf_counter() - began) / rounds * 1e6


class StaticLink:
    """A batch that stands still (or, `busy`, whose every entry says something new each
    time it is asked)."""

    remote = False
    gone = False

    def __init__(self, batch: Any, busy: bool) -> None:
        self.batch = batch
        self.busy = busy
        self.asked = 0

    def snapshot(self) -> dict[str, Any]:
        self.asked += 1
        if self.busy:
            for entry in self.batch.entries:
                self.batch._last[entry.id] = f"line {self.asked} of {entry.id}"
        return self.batch.snapshot()

    async def serve(self) -> None:
        await anyio.sleep_forever()

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self, *, now: bool) -> None: ...


def screen_cost(entries: int, mode: str, busy: bool, seconds: float) -> dict[str, float]:
    from rich.text import Text

    from intermodel.tui import dashboard
    from intermodel.tui.dashboard import COLUMNS, BatchDashboard

    class Diffed(BatchDashboard):
        CSS_PATH = str(Path(dashboard.__file__).with_name(BatchDashboard.CSS_PATH))

    class Rows(Diffed):
        def refresh_view(self) -> None:
            stale = (Text("\0"),) * len(COLUMNS)  # every cell of a changed row is rewritten
            self._cells = {key: stale for key in self._cells}
            super().refresh_view()

    class Full(Diffed):
        def refresh_view(self) -> None:
            self._shown.clear()  # every row looks new...
            self._cells.clear()
            self._lines.clear()
            table = self.query("DataTable")
            if table:
                table.first().clear()  # ...and is added again
            super().refresh_view()

    link = StaticLink(make_batch(entries), busy)
    app = {"cells": Diffed, "rows": Rows, "full": Full}[mode](link)

    async def main() -> dict[str, float]:
        async with app.run_test(size=(160, 48)) as pilot:
            await pilot.pause(1.0)  # settled: the first full draw is not measured
            cpu, wall = time.process_time(), time.perf_counter()
            await anyio.sleep(seconds)
            cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
            return {"cpu_per_s": cpu / wall, "refreshes": link.asked}

    return anyio.run(main, backend="asyncio")


def child(args: argparse.Namespace) -> None:
    runtime = tempfile.mkdtemp(prefix="im-")  # nothing is served; kept apart all the same
    atexit.register(shutil.rmtree, runtime, ignore_errors=True)
    os.environ["XDG_RUNTIME_DIR"] = runtime
    if args.child == "snapshot":
        print(json.dumps({"us": snapshot_cost(args.n)}))
    else:
        print(json.dumps(screen_cost(args.n, args.child, args.busy, args.seconds)))


def run_child(*extra: str) -> dict[str, float]:
    done = subprocess.run([sys.executable, __file__, *extra], capture_output=True, text=True,
                          check=True)
    result: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--entries", default="20,500")
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--runs", type=int, default=4)
    parser.add_argument("--child", choices=["snapshot", "cells", "rows", "full"])
    parser.add_argument("--n", type=int, default=0)
    parser.add_argument("--busy", action="store_true")
    args = parser.parse_args()
    if args.child:
        child(args)
        return
    sizes = [int(n) for n in args.entries.split(",")]
    print(f"load average at start: {os.getloadavg()[0]:.2f}")
    print("| entries | snapshot µs | idle cells CPU % | idle full CPU % | busy rows CPU % "
          "| busy cells CPU % | busy full CPU % |")
    print("|---:|---:|---:|---:|---:|---:|---:|")
    for n in sizes:
        snap = statistics.median(run_child("--child", "snapshot", "--n", str(n))["us"]
                                 for _ in range(3))
        cells = []
        for busy, modes in ((False, ("cells", "full")), (True, ("rows", "cells", "full"))):
            found: dict[str, list[float]] = {mode: [] for mode in modes}
            for _ in range(args.runs):  # A, B, (C,) A, B, (C)...
                for mode in modes:
                    options = ["--child", mode, "--n", str(n), "--seconds", str(args.seconds)]
                    result = run_child(*options, *(["--busy"] if busy else []))
                    found[mode].append(result["cpu_per_s"] * 100)
            cells += [statistics.median(found[mode]) for mode in modes]
        print(f"| {n} | {snap:,.0f} | " + " | ".join(f"{c:.1f}" for c in cells) + " |")
    print(f"load average at end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
