"""Progress on a terminal (or in a log): a line per item that ends, and a status line rewritten
in place (in a log, a new one is written only when it changes). The batch's: a line per run, and
done / running / retrying / failed / to go with an estimate of the time left. The judge's: a bar
of targets coded, and the same counts."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import TextIO

import anyio

from intermodel.console.render import Style
from intermodel.experiment.batch import Batch
from intermodel.experiment.judging import Job, Judging
from intermodel.experiment.manifest import EntryState
from intermodel.experiment.plan import Entry
from intermodel.security.text import safe_line

__all__ = ["JudgeProgress", "ProgressView", "StatusLine"]


def _clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"


def _waiting(states: list[EntryState]) -> str:
    """Who the retrying runs wait for, and why: ` (openai: rate limited 429 ×2)`."""
    reasons = Counter(s.waiting for s in states if s.status == "retrying" and s.waiting)
    if not reasons:
        return ""
    return " (" + "; ".join(why + (f" ×{n}" if n > 1 else "")
                            for why, n in sorted(reasons.items())) + ")"


class StatusLine:
    """Lines that stay, above a status line rewritten in place on a terminal (printed every
    30 s in a log, where it is written only when it says something new)."""

    def __init__(self, stream: TextIO, *, color: bool, live: bool) -> None:
        self.stream = stream
        self.style = Style(color)
        self.live = live  # a terminal: one status line, rewritten in place
        self._status_shown = False
        self._logged = ""  # the last status line written to a log

    def status_line(self) -> str:
        raise NotImplementedError

    async def tick(self) -> None:
        """Refresh the status line: every second on a terminal, every 30 s in a log."""
        while True:
            await anyio.sleep(1 if self.live else 30)
            self.show_status()

    def show_status(self) -> None:
        line = self.style.dim(self.status_line())
        if self.live:
            self.stream.write("\r\x1b[2K" + line)
            self._status_shown = True
        elif line == self._logged:
            return  # a log of identical lines hides the ones that matter
        else:
            self.stream.write(line + "\n")
            self._logged = line
        self.stream.flush()

    def _print(self, line: str) -> None:
        if self.live and self._status_shown:
            self.stream.write("\r\x1b[2K")
        self.stream.write(line + "\n")
        if self.live:
            self.show_status()
        else:
            self.stream.flush()


class ProgressView(StatusLine):
    def __init__(self, stream: TextIO, *, color: bool, live: bool) -> None:
        super().__init__(stream, color=color, live=live)
        self.batch: Batch | None = None
        self._began: dict[str, float] = {}
        self._took: list[float] = []

    def attach(self, batch: Batch) -> None:
        self.batch = batch

    def on_change(self, entry: Entry, state: EntryState) -> None:
        if state.status in ("running", "retrying"):
            self._began.setdefault(entry.id, time.monotonic())
            return
        if entry.id not in self._began:
            return
        took = time.monotonic() - self._began.pop(entry.id)
        s = self.style
        if state.status == "finished":
            self._took.append(took)
            mark = s("✓", "32")
        else:
            mark = s("✗", "31")
        why = state.end_reason or state.status
        detail = f" ({state.detail})" if state.detail and state.status != "finished" else ""
        self._print(f"{mark} " + safe_line(f"{entry.id} · {state.done} · {why}{detail} · "
                                           f"{_clock(took)}"))

    def status_line(self) -> str:
        assert self.batch is not None
        states = list(self.batch.states.values())
        count = {k: sum(1 for s in states if s.status == k)
                 for k in ("finished", "running", "retrying", "failed", "interrupted", "pending")}
        left = count["pending"] + count["running"] + count["retrying"] + count["interrupted"]
        eta = ""
        if self._took and left:
            per_run = statistics.median(self._took)
            eta = f" · about {_clock(per_run * left / self.batch.experiment.concurrency)} left"
        return (f"{count['finished']}/{len(states)} done · {count['running']} running · "
                f"{count['retrying']} retrying{_waiting(states)} · {count['failed']} failed · "
                f"{left} to go{eta}")


class JudgeProgress(StatusLine):
    """A line per target that ends without a label (unlabelled, failed), and a bar:
    `[#####---------------] 34/120 coded · 2 running · 0 retrying · 1 unlabelled · 0 failed`."""

    BAR = 20

    def __init__(self, stream: TextIO, *, color: bool, live: bool) -> None:
        super().__init__(stream, color=color, live=live)
        self.judging: Judging | None = None
        self._took: list[float] = []
        self._began: dict[int, float] = {}

    def attach(self, judging: Judging) -> None:
        self.judging = judging

    def on_change(self, job: Job) -> None:
        if job.status in ("running", "retrying"):
            self._began.setdefault(id(job), time.monotonic())
            return
        began = self._began.pop(id(job), None)
        if began is not None and job.status in ("coded", "unlabelled"):
            self._took.append(time.monotonic() - began)
        if job.status in ("unlabelled", "failed"):
            mark = self.style("✗", "31") if job.status == "failed" else self.style("?", "33")
            self._print(f"{mark} " + safe_line(f"{job.name} · {job.status}: {job.detail}"))

    def status_line(self) -> str:
        assert self.judging is not None
        jobs = self.judging.jobs
        count = {k: sum(1 for j in jobs if j.status == k)
                 for k in ("coded", "unlabelled", "running", "retrying", "failed")}
        done = count["coded"] + count["unlabelled"]
        filled = self.BAR * done // len(jobs) if jobs else self.BAR
        bar = "[" + "#" * filled + "-" * (self.BAR - filled) + "]"
        left = len(jobs) - done - count["failed"]
        eta = ""
        if self._took and left:
            per_target = statistics.median(self._took)
            eta = f" · about {_clock(per_target * left / self.judging.concurrency)} left"
        return (f"{bar} {done}/{len(jobs)} coded · {count['running']} running · "
                f"{count['retrying']} retrying · {count['unlabelled']} unlabelled · "
                f"{count['failed']} failed{eta}")
