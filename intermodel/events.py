"""Events a running dialogue publishes, in order. Consumers `match` on the class.

Records that end up in the transcript (turns, interjections, retries, ...) travel inside events, so
every consumer — transcript writer, headless console, the Textual UI — sees the same values.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from intermodel.config.model import Pairing, Panel
from intermodel.records import (
    BudgetChange,
    Discard,
    Flag,
    Interjection,
    Note,
    Record,
    Resumption,
    Retry,
    RunEnd,
    Trim,
    Turn,
)

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
]


@dataclass(frozen=True, slots=True)
class RunStarted:
    run_id: str
    pairing: Pairing | Panel  # a panel has no dialogue: check which before using one
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
# Events whose content belongs in the transcript; the writer gets them before anyone else.
RECORDED = (RunStarted, TurnCompleted, TurnDiscarded, Retrying, Interjected, BudgetExtended,
            Trimmed, Flagged, Notice, RunFinished)


def event_for(record: Record) -> Event | None:
    """The event that carries `record` — what the run published when it was written. None for
    the records no event carries (a resume marker, a link to a branch)."""
    if isinstance(record, Turn):
        return TurnCompleted(record)
    if isinstance(record, Interjection):
        return Interjected(record)
    if isinstance(record, Retry):
        return Retrying(record)
    if isinstance(record, Discard):
        return TurnDiscarded(record)
    if isinstance(record, Trim):
        return Trimmed(record)
    if isinstance(record, Flag):
        return Flagged(record)
    if isinstance(record, Note):
        return Notice(record.message)
    if isinstance(record, BudgetChange):
        return BudgetExtended(record)
    if isinstance(record, RunEnd):
        return RunFinished(record)
    return None

