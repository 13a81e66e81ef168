"""Running an experiment: every entry once, a bounded number at a time, resumable as a whole.

Finished entries are skipped; entries whose runs crashed, were interrupted or ended in an error are
resumed from their transcripts; the rest are started. Runs share the experiment's provider limits.
A run waiting out a backoff gives its place back (`intermodel.experiment.slots`), and a provider's
`streams` limit bounds how many of its runs are in progress, so one provider that is down cannot
hold up the runs on the others.
A stop request (Ctrl-C) stops every running run gracefully — each transcript gets its final
record — and starts no more, so running the command again carries on where it stopped.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack
from dataclasses import dataclass, field
from urllib.parse import urlsplit

import anyio

from intermodel.config.experiment import Experiment
from intermodel.config.model import Panel, RunSpec
from intermodel.engine.events import Retrying, TextChunk, TurnCompleted
from intermodel.engine.prepare import ProviderFactory, Run, prepared_run
from intermodel.engine.session import Session
from intermodel.errors import IntermodelError
from intermodel.experiment.limits import Limiters
from intermodel.experiment.manifest import EntryState, Status, scan, status_for, write_manifest
from intermodel.experiment.plan import Entry, plan
from intermodel.experiment.slots import RunSlot, SlotProvider
from intermodel.lineage.resume import prepared_resume
from intermodel.lineage.trust import Vouchers, seats_of
from intermodel.providers.registry import make_provider
from intermodel.records import Retry
from intermodel.security.secrets import redact

__all__ = ["Batch", "BatchReport"]

Listener = Callable[[Entry, EntryState], None]


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
                 listener: Listener | None = None) -> None:
        self.experiment = experiment
        self.entries = plan(experiment)
        self.runs_dir = experiment.out / "runs"
        self._environ = environ
        self._limiters = Limiters(experiment.limits)
        self._factory = provider_factory
        self._listener = listener
        self._stopping = False
        self._live: dict[str, Session[RunSpec]] = {}
        self.states: dict[str, EntryState] = {}
        self._skipped = 0
        self._began = time.monotonic()

    def stop(self) -> None:
        """Stop every running run (each gets its final record) and start no more."""
        self._stopping = True
        for dialogue in self._live.values():
            dialogue.controls.stop(now=True, reason="interrupted")

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
        async with anyio.create_task_group() as tg:
            for entry in todo:
                tg.start_soon(self._run_entry, entry, slots)
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
            if self._stopping:
                return
            state = self.states[entry.id]
            try:
                async with self._open(entry, state, slot) as run:
                    state.transcript = str(run.transcript) if run.transcript else None
                    state.run_id = run.session.run_id
                    state.attempts += 1
                    self._update(entry, "running")
                    self._live[entry.id] = run.session
                    try:
                        async with anyio.create_task_group() as tg:
                            tg.start_soon(self._follow, entry, run)
                            end = await run.session.run()
                    finally:
                        del self._live[entry.id]
                state.end_reason, state.detail = end.reason, end.detail
                self._update(entry, status_for(end.reason))
            except IntermodelError as exc:
                # A run that cannot even start (missing key, unreadable transcript) fails alone.
                state.detail = redact(str(exc).partition("\n")[0])  # shown, and in the manifest
                self._update(entry, "failed")

    def _open(self, entry: Entry, state: EntryState,
              slot: RunSlot) -> AbstractAsyncContextManager[Run]:
        def factory(agent, partner, credentials):  # type: ignore[no-untyped-def]
            limited = self._limiters.wrap(agent, self._factory(agent, partner, credentials))
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
                why = self._retry_reason(entry, event.retry)
                if state.status != "retrying" or state.waiting != why:
                    state.waiting = why
                    self._update(entry, "retrying")
            elif isinstance(event, TextChunk) and state.status == "retrying":
                self._resumed_work(entry)
            elif isinstance(event, TurnCompleted):
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
