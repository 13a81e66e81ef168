"""`intermodel batch EXPERIMENT.toml`: plan, estimate, confirm, run, report.

On a terminal (stdin and stdout) the batch runs under the dashboard (`intermodel.tui.dashboard`);
with `--headless`, or in a log, it writes the progress log of `intermodel.console.progress`.
"""

from __future__ import annotations

import os
import sys
from collections import Counter

import anyio

from intermodel.config.credentials import resolve_credentials
from intermodel.config.experiment import load_experiment
from intermodel.console.progress import ProgressView
from intermodel.console.render import use_color
from intermodel.engine.signals import stop_on_signals
from intermodel.experiment.batch import Batch, BatchReport
from intermodel.experiment.manifest import MANIFEST
from intermodel.experiment.plan import cost_bound
from intermodel.security.text import terminal_safe

__all__ = ["run_batch_command"]


def run_batch_command(path: str, *, yes: bool, dry_run: bool, color: str,
                      headless: bool = False) -> int:
    experiment = load_experiment(path)
    dashboard = not headless and sys.stdin.isatty() and sys.stdout.isatty()
    view = ProgressView(sys.stdout, color=use_color(sys.stdout, color),
                        live=sys.stdout.isatty())
    # The dashboard owns the screen: the log's lines would write over it.
    batch = Batch(experiment, listener=None if dashboard else view.on_change)
    view.attach(batch)
    for pairing in experiment.pairings.values():
        resolve_credentials(pairing, os.environ)  # every missing key, before anything runs
    shape = (f"{len(experiment.pairings)} pairings x {len(experiment.openers)} openers x "
             f"{experiment.replicates} replicates")
    print(terminal_safe(f"experiment {experiment.name}: {len(batch.entries)} runs ({shape}) "
                        f"in {experiment.out}"))
    print(f"cost: {cost_bound(batch.entries).describe()}")
    if dry_run:
        for entry in batch.entries:
            print(terminal_safe(f"  {entry.id}  seed={entry.seed}"))
        return 0
    if not yes and sys.stdin.isatty() and input("start? [y/N] ").strip().lower() not in ("y",
                                                                                         "yes"):
        print("not started")
        return 0
    if dashboard:
        from intermodel.tui.dashboard import run_dashboard_local

        report = run_dashboard_local(batch)
    else:
        report = anyio.run(_run, batch, view)
    counts = Counter(state.status for state in report.states.values())
    print(f"\n{counts['finished']} of {report.total} runs finished "
          f"({report.skipped} before this session), {counts['failed']} failed, "
          f"{counts['interrupted']} interrupted; manifest: {experiment.out / MANIFEST}")
    if counts["interrupted"] or counts["pending"]:
        print("run the same command again to carry on")
        return 130
    return 1 if counts["failed"] else 0


async def _run(batch: Batch, view: ProgressView) -> BatchReport:
    async with anyio.create_task_group() as tg:
        tg.start_soon(view.tick)
        await tg.start(stop_on_signals, batch.stop, tg.cancel_scope.cancel)
        await batch.run()
        tg.cancel_scope.cancel()
    view.show_status()
    return batch.report()  # also after a second Ctrl-C cut the batch short

