"""The conversation a run continues, as events: what a screen shows before the new turns.

A resumed run's `RunStarted` carries only the transcript's path, and a viewer attached to a run
in another process is sent the transcript so far; either way, the turns before are shown as
completed turns (no streaming), with the interjections, trims, flags and budget changes between
them. Retries, notes and ends are how a run went, not the conversation, and are left out.
"""

from __future__ import annotations

from collections.abc import Iterable

from intermodel.engine.events import Event, TurnStarted, event_for
from intermodel.records import BudgetChange, Flag, Interjection, Record, Trim, Turn

__all__ = ["history_events"]


def history_events(records: Iterable[Record], max_turns: int, *, started: bool = True
                   ) -> list[Event]:
    """The events of the conversation in `records`. With `started`, each turn is announced by
    its `TurnStarted` (a screen opens the turn's entry with it); without, a turn comes as a
    completed turn alone, which a console shows whole."""
    events: list[Event] = []
    for record in records:
        if isinstance(record, Turn):
            if started:
                events.append(TurnStarted(record.index, record.agent, record.attempts, max_turns))
        elif isinstance(record, BudgetChange):
            max_turns = record.max_turns
        elif not isinstance(record, Interjection | Trim | Flag):
            continue
        event = event_for(record)
        if event is not None:
            events.append(event)
    return events
