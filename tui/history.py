"""The history a resumed run continues, as events, so the screen shows it before the new turns.

A resumed run's `RunStarted` carries only the transcript's path; the turns before it are in the
transcript. They are shown as completed turns (no streaming), with the interjections, trims and
flags between them.
"""

from __future__ import annotations

from collections.abc import Iterable

from intermodel.errors import IntermodelError
from intermodel.events import (
    BudgetExtended,
    Event,
    Flagged,
    Interjected,
    Trimmed,
    TurnCompleted,
    TurnStarted,
)
from intermodel.records import BudgetChange, Flag, Interjection, Record, Trim, Turn
from intermodel.transcript.reader import read_transcript

__all__ = ["history_events", "recorded_history"]


def history_events(records: Iterable[Record], max_turns: int) -> list[Event]:
    events: list[Event] = []
    for record in records:
        if isinstance(record, Turn):
            events += [TurnStarted(record.index, record.agent, record.attempts, max_turns),
                       TurnCompleted(record)]
        elif isinstance(record, Interjection):
            events.append(Interjected(record))
        elif isinstance(record, Trim):
            events.append(Trimmed(record))
        elif isinstance(record, Flag):
            events.append(Flagged(record))
        elif isinstance(record, BudgetChange):
            max_turns = record.max_turns
            events.append(BudgetExtended(record))
    return events


def recorded_history(transcript: str, max_turns: int) -> list[Event]:
    """The events of the turns recorded in `transcript`; none if it cannot be read (the run
    itself has just read it; failing now would be a race, not worth ending the run over)."""
    try:
        records = read_transcript(transcript).records
    except IntermodelError:
        return []
    return history_events(records, max_turns)
