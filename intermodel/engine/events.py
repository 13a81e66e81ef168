"""Events a running session publishes, in order. Consumers `match` on the class.

Records that end up in the transcript (turns, interjections, retries, ...) travel inside events, so
every consumer — transcript writer, headless console, the Textual UI — sees the same values. The
one mapping between the two is here: `record_of` gives what the transcript keeps of an event (the
session hands it to its recorder), `event_for` the event that carries a record (replays and
branches publish recorded history with it). What a run emits passes through `redacted` first (the
event bus does it), so no secret reaches any of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field, fields, is_dataclass, replace
from typing import TYPE_CHECKING, Any, TypeVar, cast

from intermodel.config.model import RunSpec
from intermodel.records import (
    Branch,
    BudgetChange,
    Discard,
    Flag,
    Header,
    Interjection,
    Note,
    Record,
    Resumption,
    Retry,
    RunEnd,
    Trim,
    Turn,
    Usage,
    now_iso,
)

if TYPE_CHECKING:
    from intermodel.security.secrets import Redactor

__all__ = [
    "BudgetExtended",
    "Event",
    "Flagged",
    "Interjected",
    "Notice",
    "Paused",
    "Resumed",
    "Retrying",
    "RunFinished",
    "RunStarted",
    "TextChunk",
    "ThinkingChunk",
    "Trimmed",
    "TurnCompleted",
    "TurnDiscarded",
    "TurnStarted",
    "event_for",
    "record_of",
    "redacted",
]


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    spec: RunSpec  # a pairing or a panel (`spec.kind`): only a pairing has a dialogue
    transcript: str | None  # path of the transcript file, when one is written
    started_at: str
    resume: Resumption | None = None  # set when this process continues an earlier run
    # Where the run comes from, stored in the transcript header: {"experiment": {...}} for a
    # batch entry, {"parent": {...}} for a branch.
    origin: Mapping[str, Any] = field(default_factory=dict)

    @property
    def resumed(self) -> bool:
        return self.resume is not None


@dataclass(frozen=True, slots=True)
class TurnStarted:
    turn: int
    agent: str
    attempt: int
    max_turns: int


# Chunk events are created once per token: plain slotted classes, a third of the cost of frozen
# ones. Treat them as immutable like every other event.
@dataclass(slots=True)
class TextChunk:
    turn: int
    agent: str
    text: str


@dataclass(slots=True)
class ThinkingChunk:
    turn: int
    agent: str
    text: str


@dataclass(frozen=True, slots=True)
class TurnCompleted:
    turn: Turn


@dataclass(frozen=True, slots=True)
class TurnDiscarded:
    discard: Discard


@dataclass(frozen=True, slots=True)
class Retrying:
    retry: Retry


@dataclass(frozen=True, slots=True)
class Interjected:
    interjection: Interjection


@dataclass(frozen=True, slots=True)
class Paused:
    pass


@dataclass(frozen=True, slots=True)
class Resumed:
    step: bool = False  # True when resumed for a single turn


@dataclass(frozen=True, slots=True)
class BudgetExtended:
    change: BudgetChange


@dataclass(frozen=True, slots=True)
class Trimmed:
    trim: Trim


@dataclass(frozen=True, slots=True)
class Flagged:
    flag: Flag


@dataclass(frozen=True, slots=True)
class Notice:
    """Something a person should know that is not an error (e.g. a server's real context size);
    recorded in the transcript as a `note`."""

    message: str


@dataclass(frozen=True, slots=True)
class RunFinished:
    end: RunEnd


Event = (
    RunStarted | TurnStarted | TextChunk | ThinkingChunk | TurnCompleted | TurnDiscarded
    | Retrying | Interjected | Paused | Resumed | BudgetExtended | Trimmed | Flagged | Notice
    | RunFinished
)


def event_for(record: Record) -> Event | None:
    """The event that carries `record`: what the run published when it was written. None for
    the records no event carries (a resume marker, a link to a branch)."""
    match record:
        case Turn():
            return TurnCompleted(record)
        case Interjection():
            return Interjected(record)
        case Retry():
            return Retrying(record)
        case Discard():
            return TurnDiscarded(record)
        case Trim():
            return Trimmed(record)
        case Flag():
            return Flagged(record)
        case Note(message=message):
            return Notice(message)
        case BudgetChange():
            return BudgetExtended(record)
        case RunEnd():
            return RunFinished(record)
        case Resumption() | Branch():
            return None


def record_of(event: Event) -> Header | Record | None:
    """What the transcript keeps of `event`; None for what it does not keep (the stream of a
    turn, pauses). A run's start is its header, or the `resume` record of the run it continues;
    a notice is a note, stamped now."""
    match event:
        case RunStarted(resume=Resumption() as marker):
            return marker
        case RunStarted(spec=spec):
            return Header(event.run_id, event.started_at, spec.name, spec.source,
                          spec.resolved, event.origin)
        case TurnCompleted(turn=record) | TurnDiscarded(discard=record) \
                | Retrying(retry=record) | Interjected(interjection=record) \
                | BudgetExtended(change=record) | Trimmed(trim=record) | Flagged(flag=record) \
                | RunFinished(end=record):
            return record
        case Notice(message=message):
            return Note(message, now_iso())
        case TurnStarted() | TextChunk() | ThinkingChunk() | Paused() | Resumed():
            return None


E = TypeVar("E", bound=Event)
# What a model or a person wrote: kept verbatim but for known secrets (a model inventing an `sk-...`
# string is data). Opaque values handed back to a provider byte for byte are left alone.
_VERBATIM_FIELDS = frozenset({"text", "thinking", "summary", "content"})
_OPAQUE_FIELDS = frozenset({"signature", "request_hash", "encrypted_content", "id"})


def redacted(event: E, redact: Redactor) -> E:
    """`event` as it may be shown or written: every string in it, and in the record it carries,
    passed through `redact` (model and human text lose only known secrets).

    Not `RunStarted`: it carries the spec (the user's own file, refused at load when it holds
    anything key-shaped) and paths that must stay usable. (The bus leaves chunks to the turn
    producer, which redacts them as they stream: a secret split across two chunks needs the
    stream's context.)"""
    if isinstance(event, RunStarted):
        return event
    return cast("E", _redacted(event, redact))


def _redacted(value: Any, redact: Redactor) -> Any:
    changes: dict[str, Any] = {}
    for item in fields(value):
        current = getattr(value, item.name)
        cleaned: Any
        if isinstance(current, str):
            if item.name in _OPAQUE_FIELDS:
                continue
            cleaned = redact.known(current) if item.name in _VERBATIM_FIELDS else redact(current)
        elif isinstance(current, tuple) and all(isinstance(x, str) for x in current):
            clean = redact.known if item.name in _VERBATIM_FIELDS else redact
            cleaned = tuple(clean(x) for x in current)
        elif isinstance(current, tuple) and current and all(is_dataclass(x) for x in current):
            cleaned = tuple(_redacted(x, redact) for x in current)  # a turn's reasoning items
        elif is_dataclass(current) and not isinstance(current, type | Usage):
            cleaned = _redacted(current, redact)
        else:
            continue
        if cleaned is not current and cleaned != current:
            changes[item.name] = cleaned
    return replace(value, **changes) if changes else value
