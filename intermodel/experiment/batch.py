"""Running an experiment: every entry once, a bounded number at a time, resumable as a whole.

Finished entries are skipped; entries whose runs crashed, were interrupted or ended in an error are
resumed from their transcripts; the rest are started. Runs share the experiment's provider limits.
A run waiting out a backoff gives its place back (`intermodel.experiment.slots`), and a provider's
`streams` limit bounds how many of its runs are in progress, so one provider that is down cannot
hold up the runs on the others.
A stop request (Ctrl-C) stops every running run gracefully — each transcript gets its final
record — and starts no more, so running the command again carries on where it stopped.

Every running entry serves its own control socket (`intermodel say`, `control` and `status` reach
it as they reach any run), and the batch serves one of its own (`intermodel.experiment.control`):
`snapshot` says where the whole batch stands, for that socket and the dashboard alike; `pause`,
`resume` and `stop` steer every entry at once.
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import anyio

from intermodel.config.experiment import Experiment
from intermodel.config.model import Panel, RunSpec
from intermodel.control.server import ControlServer
from intermodel.engine.events import Retrying, TextChunk, TurnCompleted
from intermodel.engine.prepare import ProviderFactory, Run, prepared_run
from intermodel.engine.session import Session, new_run_id
from intermodel.errors import IntermodelError
from intermodel.experiment.control import BatchServer
from intermodel.experiment.counts import CountedProvider, ProviderCounts
from intermodel.experiment.limits import Limiters
from intermodel.experiment.manifest import EntryState, Status, scan, status_for, write_manifest
from intermodel.experiment.plan import Entry, plan
from intermodel.experiment.slots import RunSlot, SlotProvider
from intermodel.lineage.resume import prepared_resume
from intermodel.lineage.trust import Vouchers, seats_of
from intermodel.providers.registry import make_provider
from intermodel.records import Retry
from intermodel.security.secrets import redact

__all__ = ["LAST_LINE", "Batch", "BatchReport", "entry_state_name"]

Listener = Callable[[Entry, EntryState], None]
LAST_LINE = 200  # characters of an entry's last line in a snapshot
# What a person calls each status.
_STATE_NAMES = {"pending": "queued", "finished": "done"}


def entry_state_name(status: Status) -> str:
    return _STATE_NAMES.get(status, status)


@dataclass
class BatchReport:
    total: int
    skipped: int  # finished before this invocation
    states: dict[str, EntryState] = field(default_factory=dict)
    seconds: float = 0.0

    def count(self, status: Status) -> int:
        return sum(1 for s in self.states.values() if s.status == status)


class Batch:
    def __init__(self, experiment: Experiment, *, environ: Mapping[str, str] | None = None,
                 provider_factory: ProviderFactory = make_provider,
                 listener: Listener | None = None, serve: bool = True) -> None:
        self.experiment = experiment
        self.id = new_run_id()  # the batch's own, for its socket and the registry
        self.entries = plan(experiment)
        self.runs_dir = experiment.out / "runs"
        self._environ = environ
        self._limiters = Limiters(experiment.limits)
        self._factory = provider_factory
        self._listener = listener
        self._serve = serve  # sockets for the batch and its entries
        self._stopping = False
        self._stopping_now = False
        self._paused = False
        self._unpaused: anyio.Event | None = None  # made on the event loop, by `pause`
        self._finished = False
        self._ended: float | None = None  # when run() returned: the clock stops
        self._live: dict[str, Session[RunSpec]] = {}
        self.states: dict[str, EntryState] = {}
        self._last: dict[str, str] = {}  # entry id -> the last line said
        self._started: dict[str, float] = {}  # entry id -> when this process started it
        self._took: list[float] = []  # how long each entry finished here took
        self.counts = ProviderCounts()
        self._skipped = 0
        self._began = time.monotonic()

    # -- steering (safe to call from synchronous code on the event loop) ------------------------

    def stop(self, *, now: bool = True, reason: str = "interrupted") -> None:
        """Start no more runs, and stop the running ones: at once (each gets its final record),
        or after their streaming turns (`now` False; a panel's one round is let finish)."""
        self._stopping = True
        self._stopping_now = self._stopping_now or now
        for session in self._live.values():
            if now:
                session.controls.stop(now=True, reason="stopped" if reason == "stopped"
                                      else "interrupted")
            elif session.spec.kind != "panel":
                session.controls.stop(now=False, reason="stopped")
        self._release()

    def pause(self) -> None:
        """No new turns: every running dialogue pauses after its streaming turn, and no new entry
        starts until `resume` (a panel's one round cannot pause: it finishes)."""
        if self._stopping or self._paused:
            return
        self._paused = True
        self._unpaused = anyio.Event()
        for session in self._live.values():
            if session.spec.kind != "panel":
                session.controls.pause()

    def resume(self) -> None:
        if not self._paused:
            return
        for session in self._live.values():
            if session.spec.kind != "panel":
                session.controls.resume()
        self._release()

    def _release(self) -> None:
        """Let entries waiting for a resume go on (to start, or to see the batch stopping)."""
        self._paused = False
        if self._unpaused is not None:
            self._unpaused.set()

    @property
    def state(self) -> str:
        if self._finished:
            return "finished"
        if self._stopping:
            return "stopping now" if self._stopping_now else "stopping after running turns"
        return "paused" if self._paused else "running"

    # -- where it stands -----------------------------------------------------------------------

    def snapshot(self) -> dict[str, Any]:
        """The whole batch now, as plain JSON-ready data: its socket's `status`, the dashboard
        and `intermodel status` all show this. Model text in it (each entry's last line) is cut
        short and cleaned of secrets, but still untrusted: whoever shows it makes it inert."""
        statuses = [s.status for s in self.states.values()]
        done, failed = statuses.count("finished"), statuses.count("failed")
        left = len(self.entries) - done - failed
        eta = None
        if self._took and left and not self._stopping:
            eta = round(statistics.median(self._took) * left / self.experiment.concurrency)
        return {
            "kind": "batch",
            "batch_id": self.id,
            "experiment": self.experiment.name,
            "file": str(self.experiment.source),
            "out": str(self.experiment.out),
            "pid": os.getpid(),
            "state": self.state,
            "elapsed": round((self._ended or time.monotonic()) - self._began, 1),
            "eta": eta,
            "total": len(self.entries),
            "done": done,
            "failed": failed,
            "running": statuses.count("running"),
            "retrying": statuses.count("retrying"),
            "queued": statuses.count("pending") + statuses.count("interrupted"),
            "entries": [self._entry_snapshot(entry) for entry in self.entries],
            "providers": self.counts.as_json(),
        }

    def _entry_snapshot(self, entry: Entry) -> dict[str, Any]:
        state = self.states.get(entry.id) or EntryState()
        turns, max_turns = state.turns, entry.pairing.max_turns
        activity = ""
        session = self._live.get(entry.id)
        if session is not None:
            live = session.snapshot()  # the run's own count: ahead of the events followed
            turns = int(live["turns"])  # type: ignore[call-overload]
            max_turns = int(live["max_turns"])  # type: ignore[call-overload]
            activity = str(live["state"])
        return {
            "key": entry.id,
            "kind": state.kind,
            "state": entry_state_name(state.status),
            "activity": activity,  # what a running run is doing: "streaming ada", "paused"
            "waiting": state.waiting,  # why it is retrying
            "turns": turns,
            "max_turns": max_turns,
            "last": self._last.get(entry.id, ""),
            "transcript": state.transcript,
            "run_id": state.run_id,
            "end_reason": state.end_reason,
            "detail": state.detail,
        }

    async def run(self) -> BatchReport:
        self._began = time.monotonic()
        self.runs_dir.mkdir(parents=True, exist_ok=True)
        found = scan(self.runs_dir)
        self.states = {e.id: found.get(e.id) or EntryState(
            kind="panel" if isinstance(e.pairing, Panel) else "pairing") for e in self.entries}
        todo = [e for e in self.entries if self.states[e.id].status != "finished"]
        self._skipped = len(self.entries) - len(todo)
        self._save()
        slots = anyio.CapacityLimiter(self.experiment.concurrency)
        try:
            async with anyio.create_task_group() as sockets:
                if self._serve:
                    await sockets.start(BatchServer(self).serve)
                async with anyio.create_task_group() as tg:
                    for entry in todo:
                        tg.start_soon(self._run_entry, entry, slots)
                sockets.cancel_scope.cancel()
        finally:
            self._finished = True
            self._ended = time.monotonic()
        return self.report()

    def report(self) -> BatchReport:
        """Where the batch stands now (also when it was cut short)."""
        return BatchReport(len(self.entries), self._skipped, self.states,
                           time.monotonic() - self._began)

    async def _run_entry(self, entry: Entry, places: anyio.CapacityLimiter) -> None:
        async with AsyncExitStack() as stack:
            # The provider's share first: a run waiting for it holds no place.
            for share in self._limiters.shares_for(entry.pairing.agents):
                await stack.enter_async_context(share.runs)
            slot = RunSlot(places, on_take=lambda: self._resumed_work(entry))
            await slot.take()
            stack.callback(slot.give_back)
            while self._paused and self._unpaused is not None:
                await self._unpaused.wait()  # paused before it started: it waits, holding a place
            if self._stopping:
                return
            state = self.states[entry.id]
            try:
                async with self._open(entry, state, slot) as run:
                    state.transcript = str(run.transcript) if run.transcript else None
                    state.run_id = run.session.run_id
                    state.attempts += 1
                    self._live[entry.id] = run.session
                    try:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(self._follow, entry, run)
                            server = None
                            if self._serve and run.transcript is not None:
                                server = ControlServer(run.session, run.transcript)
                            async with anyio.create_task_group() as socket:
                                if server is not None:
                                    # So `say`, `control`, `status` and `attach` reach the
                                    # entry, from before it is shown running.
                                    await socket.start(server.serve)
                                self._started[entry.id] = time.monotonic()
                                self._update(entry, "running")
                                self._steer_as_the_batch(run.session)
                                try:
                                    end = await run.session.run()
                                finally:
                                    if server is not None:  # attached viewers see the end
                                        with anyio.CancelScope(shield=True), \
                                                anyio.move_on_after(5):
                                            await server.let_viewers_finish()
                                socket.cancel_scope.cancel()
                    finally:
                        del self._live[entry.id]
                state.end_reason, state.detail = end.reason, end.detail
                status = status_for(end.reason)
                if status == "finished":
                    self._took.append(time.monotonic() - self._started[entry.id])
                self._update(entry, status)
            except IntermodelError as exc:
                # A run that cannot even start (missing key, unreadable transcript) fails alone.
                state.detail = redact(str(exc).partition("\n")[0])  # shown, and in the manifest
                self._update(entry, "failed")

    def _steer_as_the_batch(self, session: Session[RunSpec]) -> None:
        """A run that starts while the batch is paused or stopping does as the others did."""
        if session.spec.kind == "panel":
            if self._stopping_now:
                session.controls.stop(now=True, reason="stopped")
        elif self._stopping:
            session.controls.stop(now=self._stopping_now, reason="stopped")
        elif self._paused:
            session.controls.pause()

    def _open(self, entry: Entry, state: EntryState,
              slot: RunSlot) -> AbstractAsyncContextManager[Run]:
        def factory(agent, partner, credentials):  # type: ignore[no-untyped-def]
            # Counted innermost: a stream counts while it streams, not while it waits its turn.
            counted = CountedProvider(self._factory(agent, partner, credentials),
                                      self.counts.of(agent.provider))
            limited = self._limiters.wrap(agent, counted)
            return SlotProvider(limited, slot, self._limiters.for_agent(agent))

        if state.transcript is not None:
            # The experiment's own pairing for this entry vouches for the transcript's seats; a
            # transcript in the runs folder that names others is refused (the entry fails).
            vouchers = Vouchers(seats_of(entry.pairing), "the experiment's pairing "
                                f"{entry.pairing_label!r}")
            return prepared_resume(state.transcript, environ=self._environ,
                                   provider_factory=factory, vouchers=vouchers)
        return prepared_run(entry.pairing, out_dir=self.runs_dir, environ=self._environ,
                            provider_factory=factory, origin=entry.origin(self.experiment))

    async def _follow(self, entry: Entry, run: Run) -> None:
        """Keep the entry's status (running / retrying, turns or answers done) current."""
        answers = 0  # a panel's answers complete in any order: they are counted
        async for event in run.session.subscribe():
            state = self.states[entry.id]
            if isinstance(event, Retrying):
                self.counts.retried(entry.pairing.agent(event.retry.agent).provider, event.retry)
                why = self._retry_reason(entry, event.retry)
                if state.status != "retrying" or state.waiting != why:
                    state.waiting = why
                    self._update(entry, "retrying")
            elif isinstance(event, TextChunk) and state.status == "retrying":
                self._resumed_work(entry)
            elif isinstance(event, TurnCompleted):
                self._last[entry.id] = _last_line(event.turn.text)
                answers += 1
                state.turns = answers if state.kind == "panel" else event.turn.index
                self._notify(entry)

    def _resumed_work(self, entry: Entry) -> None:
        """The entry holds a place again after a backoff."""
        if self.states[entry.id].status == "retrying":
            self.states[entry.id].waiting = ""
            self._update(entry, "running")

    @staticmethod
    def _retry_reason(entry: Entry, retry: Retry) -> str:
        """Which provider the entry is waiting for, and why: `openai 127.0.0.1:8080: rate
        limited 429`."""
        agent = entry.pairing.agent(retry.agent)
        where: str = agent.provider
        server = retry.endpoint or agent.base_url  # a pool's record names the server that failed
        if server:
            where += f" {urlsplit(server).netloc or server}"
        why = retry.error.replace("_", " ") + (f" {retry.status}" if retry.status else "")
        return redact(f"{where}: {why}")

    def _update(self, entry: Entry, status: Status) -> None:
        """A change of status: saved in the manifest (turn counts only go to the listener)."""
        self.states[entry.id].status = status
        self._save()
        self._notify(entry)

    def _notify(self, entry: Entry) -> None:
        if self._listener is not None:
            self._listener(entry, self.states[entry.id])

    def _save(self) -> None:
        write_manifest(self.experiment, self.entries, self.states)


def _last_line(text: str) -> str:
    """The last line with words in it, cut short and without secrets (still untrusted)."""
    lines = [line.strip() for line in redact(text).split("\n") if line.strip()]
    line = lines[-1] if lines else ""
    return line if len(line) <= LAST_LINE else line[: LAST_LINE - 1] + "…"
