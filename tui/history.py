"""The history a resumed run continues, as events, so the screen shows it before the new turns.

A resumed run's `RunStarted` carries only the transcript's path; the turns before it are in the
transcript. They are shown as completed turns (no streaming), with the interjections, trims and
flags between them.
"""

from __future__ import annotations

from collections.abc import Iterable

from intermodel.engine.events import (
    Event,
    TurnStarted,
    event_for,
)
from intermodel.errors import IntermodelError
from intermodel.records import BudgetChange, Flag, Interjection, Record, Trim, Turn
from intermodel.transcript.reader import read_transcript

__all__ = ["history_events", "recorded_history"]


def history_events(records: Iterable[Record], max_turns: int) -> list[Event]:
    events: list[Event] = []
    for record in records:
        if isinstance(record, Turn):
            events.append(TurnStarted(record.index, record.agent, record.attempts, max_turns))
        elif isinstance(record, BudgetChange):
            max_turns = record.max_turns
        elif not isinstance(record, Interjection | Trim | Flag):
            continue  # the conversation so far, not how it went (retries, notes, ends)
        event = event_for(record)
        if event is not None:
            events.append(event)
    return events


def recorded_history(transcript: str, max_turns: int) -> list[Event]:
    """The events of the turns recorded in `transcript`; none if it cannot be read (the run
    itself has just read it; failing now would be a race, not worth ending the run over)."""
    try:
        records = read_transcript(transcript).records
    except IntermodelError:
        return []
    return history_events(records, max_turns)
