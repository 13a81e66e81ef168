"""The conversation as the screen shows it: events in, per-agent entries and run status out.

This is the UI's own copy of the whole history, kept as plain data; the panes mount widgets for its
newest entries only and rebuild older ones from here when a person scrolls back. Applying events
costs no rendering: a batch of events (a few frames' worth of chunks, or a replay's instant history
of hundreds of turns) updates the model, then each pane catches up once.

A panel has one answer per agent, all under way at once: `under_way` holds every turn that is
waiting or streaming (in a dialogue, at most the one `in_flight`). Its message is not an entry of
any column: the screen shows it once, above them.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from itertools import count
from typing import Literal, cast

from intermodel.config.model import Pairing, RunSpec
from intermodel.engine.events import (
    BudgetExtended,
    Event,
    Flagged,
    Interjected,
    Notice,
    Paused,
    Resumed,
    Retrying,
    RunFinished,
    RunStarted,
    TextChunk,
    ThinkingChunk,
    Trimmed,
    TurnCompleted,
    TurnDiscarded,
    TurnStarted,
)
from intermodel.records import Retry, RunEnd, Turn, epoch_of

__all__ = ["ConversationModel", "Entry", "HumanEntry", "NoteEntry", "TurnEntry", "TurnState"]

TurnState = Literal["waiting", "streaming", "done", "discarded", "retrying"]
MAX_AGE = 366 * 24 * 3600.0  # seconds: no run has been going longer than this
_ids = count(1)


@dataclass(eq=False)
class TurnEntry:
    """One turn of one agent. Text arrives as pieces, which become the record's one text once
    the turn is complete; a pane's lines keep how far they have taken them."""

    turn: int
    agent: str
    attempt: int = 1
    state: TurnState = "waiting"
    # Pieces as they stream in; once the turn is complete, the record's text alone, in a tuple
    # (a tuple of strings is not tracked by the garbage collector: a run's finished turns are
    # not walked by its full collections).
    thinking: list[str] | tuple[str, ...] = field(default_factory=list)
    text: list[str] | tuple[str, ...] = field(default_factory=list)
    record: Turn | None = None
    note: str = ""  # why it was discarded, or the failed attempt's error
    revision: int = 0  # bumped when shown pieces became stale (a retry restarted the turn)
    answer: bool = False  # a panel's answer (not a turn of a conversation)
    key: int = field(default_factory=lambda: next(_ids))

    @property
    def chars(self) -> int:
        return sum(map(len, self.text)) + sum(map(len, self.thinking))


@dataclass(eq=False)
class HumanEntry:
    """A message from the person: the opener or an interjection, shown to its addressees."""

    text: str
    to: tuple[str, ...]
    before_turn: int
    opener: bool = False
    key: int = field(default_factory=lambda: next(_ids))

    @property
    def chars(self) -> int:
        return len(self.text)


@dataclass(eq=False)
class NoteEntry:
    """Something the run did to one agent: its context trimmed, a detector's flag."""

    text: str
    warning: bool = False
    key: int = field(default_factory=lambda: next(_ids))

    @property
    def chars(self) -> int:
        return len(self.text)


Entry = TurnEntry | HumanEntry | NoteEntry


@dataclass
class ConversationModel:
    """Everything the screen shows, rebuilt from events alone. `clock` dates the run's start."""

    clock: Callable[[], float]
    live: bool = True  # a live run pauses between turns; a replay pauses at once
    # The run began before this screen saw it (an attached viewer): its elapsed time counts from
    # the run's recorded start, not from when the screen joined.
    joined: bool = False
    spec: RunSpec | None = None
    run_id: str = ""
    transcript: str | None = None
    started: float | None = None
    finished: float | None = None  # by `clock`, like `started`
    generation: int = 0  # bumped when the whole history was replaced (a new run or a seek)
    entries: dict[str, list[Entry]] = field(default_factory=dict)
    changed: set[int] = field(default_factory=set)  # keys of entries changed since last taken
    max_turns: int = 0
    in_flight: TurnEntry | None = None  # the turn started last of those under way
    under_way: dict[str, TurnEntry] = field(default_factory=dict)  # waiting or streaming, by agent
    last_turn: int = 0
    paused: bool = False
    stepping: bool = False
    stopping: bool = False  # the person asked to stop after the streaming turn
    retry: tuple[Retry, float] | None = None  # the failed attempt and when we heard of it
    end: RunEnd | None = None
    output_tokens: dict[str, int] = field(default_factory=dict)
    notices: list[str] = field(default_factory=list)
    _turns: dict[tuple[str, int], TurnEntry] = field(default_factory=dict)

    @property
    def names(self) -> tuple[str, ...]:
        return self.spec.agent_names if self.spec else ()

    @property
    def panel(self) -> bool:
        return self.spec is not None and self.spec.kind == "panel"

    @property
    def answered(self) -> int:
        """Turns completed (a panel's progress)."""
        return sum(1 for entry in self._turns.values() if entry.state == "done")

    @property
    def current_turn(self) -> int:
        if self.in_flight is not None:
            return self.in_flight.turn
        return self.retry[0].turn if self.retry is not None else self.last_turn

    def take_changed(self) -> set[int]:
        changed, self.changed = self.changed, set()
        return changed

    def take_notices(self) -> list[str]:
        notices, self.notices = self.notices, []
        return notices

    def apply(self, events: Iterable[Event]) -> None:
        for event in events:
            self._apply(event)

    def _apply(self, event: Event) -> None:
        match event:
            case TextChunk() | ThinkingChunk():
                entry = self.in_flight
                if entry is None or entry.turn != event.turn or entry.agent != event.agent:
                    entry = self.under_way.get(event.agent)  # another of a panel's answers
                    if entry is None or entry.turn != event.turn:
                        entry = self._start_turn(event.turn, event.agent, 1)
                # (An entry under way: its pieces are a list until the record settles them.)
                pieces = cast(list[str], entry.text if isinstance(event, TextChunk)
                              else entry.thinking)
                pieces.append(event.text)
                entry.state = "streaming"
                self.changed.add(entry.key)
            case TurnStarted():
                self.max_turns = event.max_turns
                if self.retry is None or self.retry[0].agent == event.agent:
                    self.retry = None  # (a panel's other agents go on while one waits to retry)
                self._start_turn(event.turn, event.agent, event.attempt)
            case TurnCompleted(turn=turn):
                self._complete(turn)
            case TurnDiscarded(discard=d):
                entry = self._entry_for(d.turn, d.agent)
                if not entry.chars and (d.text or d.thinking):
                    entry.text, entry.thinking = [d.text], [d.thinking]
                self._finish(entry, "discarded", f"discarded ({d.reason.words})")
            case Retrying(retry=r):
                entry = self._entry_for(r.turn, r.agent)
                status = f" {r.status}" if r.status else ""
                self._finish(entry, "retrying", f"attempt {r.attempt} failed: "
                                                f"{r.error.words}{status}")
                self.retry = (r, self.clock())
            case Interjected(interjection=i):
                self._add_human(HumanEntry(i.text, i.to, i.before_turn))
            case Paused():
                self.paused, self.stepping = True, False
            case Resumed(step=step):
                self.paused = self.stepping = step
            case BudgetExtended(change=change):
                self.max_turns = change.max_turns
            case Notice(message=message):
                self.notices.append(message)
            case Trimmed(trim=t):
                span = f"{t.dropped[0]}-{t.dropped[-1]}" if len(t.dropped) > 1 else \
                    "".join(map(str, t.dropped))
                self._add_note(t.agent, NoteEntry(f"✂ turns {span} dropped from {t.agent}'s "
                                                  f"view to fit {t.window} tokens"))
            case Flagged(flag=f):
                note = NoteEntry(f"⚑ {f.detector}: {f.detail}", warning=f.action != "mark")
                self._add_note(f.agent, note)
                if note.warning:
                    self.notices.append(note.text)
            case RunFinished(end=end):
                self.end, self.finished = end, self.clock()
                self.retry = None
                for entry in list(self.under_way.values()):
                    self._finish(entry, "discarded", "not completed")
            case RunStarted():
                self._start_run(event)

    def _start_run(self, event: RunStarted) -> None:
        if event.resumed and event.run_id == self.run_id:
            self.end = self.finished = None  # the same run goes on: keep its history
            return
        spec = event.spec
        self.spec, self.run_id, self.transcript = spec, event.run_id, event.transcript
        self.started, self.finished = self.clock() - self._age(event.started_at), None
        self.generation += 1
        self.entries = {name: [] for name in spec.agent_names}
        self._turns = {}
        self.changed.clear()
        self.in_flight, self.last_turn, self.retry, self.end = None, 0, None, None
        self.under_way = {}
        self.paused = self.stepping = self.stopping = False
        self.output_tokens = dict.fromkeys(spec.agent_names, 0)
        self.max_turns = spec.max_turns
        if isinstance(spec, Pairing):  # a panel's message is shown once, above its columns
            d = spec.dialogue
            to = spec.agent_names if d.opener_shared else (d.opener_to,)
            self._add_human(HumanEntry(d.opener, to, 1, opener=True))

    def _age(self, started_at: str) -> float:
        """How long a joined run had been going by now (the time comes from the run: untrusted,
        so bounded)."""
        began = epoch_of(started_at) if self.joined else None
        return 0.0 if began is None else min(max(0.0, time.time() - began), MAX_AGE)

    def _start_turn(self, turn: int, agent: str, attempt: int) -> TurnEntry:
        entry = self._turns.get((agent, turn))
        if entry is None:
            entry = self._turns[agent, turn] = TurnEntry(turn, agent, attempt, answer=self.panel)
            self.entries.setdefault(agent, []).append(entry)
        else:  # another attempt at the same turn starts from nothing
            entry.attempt, entry.note, entry.record = attempt, "", None
            entry.text, entry.thinking = [], []
            entry.revision += 1
        entry.state = "waiting"
        self.in_flight = self.under_way[agent] = entry
        self.changed.add(entry.key)
        return entry

    def _complete(self, turn: Turn) -> None:
        entry = self._entry_for(turn.index, turn.agent)
        # The record is the truth: shown pieces that differ from it are stale. Either way the
        # pieces become the record's texts: a reply streamed as a thousand pieces would otherwise
        # be a thousand references for every full garbage collection to visit, for the rest of
        # the run.
        if "".join(entry.text) != turn.text or "".join(entry.thinking) != turn.thinking:
            entry.revision += 1
        entry.text = (turn.text,) if turn.text else ()
        entry.thinking = (turn.thinking,) if turn.thinking else ()
        entry.record = turn
        self.last_turn = max(self.last_turn, turn.index)
        self.output_tokens[turn.agent] = (self.output_tokens.get(turn.agent, 0)
                                          + (turn.usage.output_tokens or 0))
        if self.stepping:
            self.stepping = False  # the step's turn is done; the run waits again
        self._finish(entry, "done", "")

    def _finish(self, entry: TurnEntry, state: TurnState, note: str) -> None:
        entry.state, entry.note = state, note
        if self.under_way.get(entry.agent) is entry:
            del self.under_way[entry.agent]
        if self.in_flight is entry:
            self.in_flight = next(reversed(self.under_way.values()), None)
        self.changed.add(entry.key)

    def _entry_for(self, turn: int, agent: str) -> TurnEntry:
        entry = self._turns.get((agent, turn))
        return entry if entry is not None else self._start_turn(turn, agent, 1)

    def _add_note(self, agent: str, entry: NoteEntry) -> None:
        self.entries.setdefault(agent, []).append(entry)

    def _add_human(self, entry: HumanEntry) -> None:
        for name in entry.to:
            self.entries.setdefault(name, []).append(entry)
