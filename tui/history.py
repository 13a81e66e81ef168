"""The history a resumed run continues, read from its transcript, as events for the screen."""

from __future__ import annotations

from intermodel.engine.events import Event
from intermodel.engine.history import history_events
from intermodel.errors import IntermodelError
from intermodel.transcript.reader import read_transcript

__all__ = ["recorded_history"]


def recorded_history(transcript: str, max_turns: int) -> list[Event]:
    """The events of the turns recorded in `transcript`; none if it cannot be read (the run
    itself has just read it; failing now would be a race, not worth ending the run over)."""
    try:
        records = read_transcript(transcript).records
    except IntermodelError:
        return []
    return history_events(records, max_turns)
