"""The batch's progress on a terminal (or in a log): a line per run that ends, and a status line
— done / running / retrying / failed / to go, and an estimate of the time left. On a terminal the
status line is redrawn in place; in a log a new one is written only when it changes."""

from __future__ import annotations

import statistics
import time
from collections import Counter
from typing import TextIO

import anyio

from intermodel.console.render import Style
from intermodel.experiment.batch import Batch
from intermodel.experiment.manifest import EntryState
from intermodel.experiment.plan import Entry
from intermodel.security.text import safe_line

__all__ = ["ProgressView"]


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


class ProgressView:
    def __init__(self, stream: TextIO, *, color: bool, live: bool) -> None:
        self.stream = stream
        self.style = Style(color)
        self.live = live  # a terminal: one status line, rewritten in place
        self.batch: Batch | None = None
        self._began: dict[str, float] = {}
        self._took: list[float] = []
        self._status_shown = False
        self._logged = ""  # the last status line written to a log

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
        self._print(f"{mark} " + safe_line(f"{entry.id} · {state.turns} turns · {why}{detail} · "
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

    async def tick(self) -> None:
        """Refresh the status line: every second on a terminal, every 30 s in a log (where it
        is written only when it says something new)."""
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
            self._logged = line
            self.stream.write(line + "\n")
        self.stream.flush()

    def _print(self, line: str) -> None:
        if self.live and self._status_shown:
            self.stream.write("\r\x1b[2K")
        self.stream.write(line + "\n")
        if self.live:
            self.show_status()
        else:
            self.stream.flush()
