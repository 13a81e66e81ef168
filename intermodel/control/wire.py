"""The lines of a `subscribe` stream (protocol 2), written by the run and read by its viewers.

A stream is a hello, the run's history as transcript lines, a `live` marker, then events as they
happen (see docs/control.md). A transcript line on the wire is byte for byte the line the
transcript holds (`{"kind": ...}`), and the viewer checks it with the transcript reader's own
checks; everything else is an event line (`{"event": ...}`) carrying what the transcript does not
keep: a turn starting, its text and thinking as they stream, pauses.

The reading side treats every line as untrusted (the socket's owner is checked, but a viewer
must survive a buggy or hostile run all the same): a line is bounded, every field is checked, and
anything that does not fit ends the stream with one clear line (`StreamInvalid`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from intermodel.config.loader import config_from_resolved
from intermodel.config.model import RunSpec
from intermodel.engine.events import (
    Event,
    Paused,
    Resumed,
    RunFinished,
    RunStarted,
    TextChunk,
    ThinkingChunk,
    TurnStarted,
    event_for,
    record_of,
)
from intermodel.engine.history import history_events
from intermodel.errors import ConfigError, IntermodelError
from intermodel.records import Header, Record, Resumption, RunEnd
from intermodel.security.bounds import MAX_ATTEMPTS, MAX_TURNS, short
from intermodel.transcript.reader import parse_header_line, parse_record_line
from intermodel.transcript.schema import Invalid, Run
from intermodel.transcript.writer import to_json

__all__ = ["MAX_LINE", "PROTOCOL", "StreamInvalid", "StreamReader", "encode_event",
           "encode_record", "marker"]

PROTOCOL = 2  # 1: one request line, one reply line; 2 adds `subscribe`
MAX_LINE = 64 * 1024 * 1024  # bytes of one line: a turn's record, with its thinking
_NAME_LIMIT = 200  # characters of an agent's name on the wire


class StreamInvalid(IntermodelError):
    """The run sent something a viewer cannot take: the stream ends, with this line."""


def _dumps(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def encode_record(record: Header | Record) -> bytes:
    """A record's line: exactly as the transcript writer writes it."""
    return _dumps(to_json(record))


def marker(name: str, **fields: Any) -> bytes:
    """A line of the stream itself (`live`, `dropped`), not of the run."""
    return _dumps({"event": name, **fields})


def encode_event(event: Event) -> bytes | None:
    """The line of `event`: its record's transcript line, or an event line; None for what a
    viewer is not sent (nothing, today)."""
    match event:
        case TextChunk(turn=turn, agent=agent, text=text):
            return _dumps({"event": "text", "turn": turn, "agent": agent, "text": text})
        case ThinkingChunk(turn=turn, agent=agent, text=text):
            return _dumps({"event": "thinking", "turn": turn, "agent": agent, "text": text})
        case TurnStarted(turn=turn, agent=agent, attempt=attempt, max_turns=max_turns):
            return _dumps({"event": "turn_started", "turn": turn, "agent": agent,
                           "attempt": attempt, "max_turns": max_turns})
        case Paused():
            return _dumps({"event": "paused"})
        case Resumed(step=step):
            return _dumps({"event": "resumed", "step": step})
    record = record_of(event)
    return None if record is None else encode_record(record)


@dataclass
class StreamReader:
    """Turns a stream's lines back into the events the run published.

    History lines are gathered until `live`, then given as a run start and its completed turns
    (what a resumed run's screen shows first); after `live`, each line is its event. `transcript`
    is where the run writes, for the run start a viewer is given."""

    transcript: str | None = None
    announce_turns: bool = True  # history turns come with their TurnStarted (see history_events)
    header: dict[str, Any] | None = None
    spec: RunSpec | None = None
    live: bool = False
    end: RunEnd | None = None
    dropped: str | None = None  # why the run cut this viewer off
    _run: Run = field(default_factory=Run)
    _history: list[Record] = field(default_factory=list)

    def read(self, line: bytes) -> list[Event]:
        """The events of one line (without its newline)."""
        try:
            if line.startswith(b'{"event":'):
                return self._event(line)
            return self._record(line)
        except Invalid as exc:
            raise StreamInvalid(f"the run sent a line a viewer cannot take: {exc}") from None

    # -- transcript lines -------------------------------------------------------------------

    def _record(self, line: bytes) -> list[Event]:
        if self.header is None:
            return [self._start(line)]
        record = parse_record_line(line, self._run)
        if record is None:
            return []  # a kind from a later version: skipped, as a transcript reader does
        if not self.live:
            self._history.append(record)
            return []
        if isinstance(record, RunEnd):
            self.end = record
        if isinstance(record, Resumption):
            return []  # a later process took over the run: its events go on as before
        event = event_for(record)
        return [] if event is None else [event]

    def _start(self, line: bytes) -> RunStarted:
        self.header, self._run = parse_header_line(line)
        try:
            self.spec = config_from_resolved(self.header["config"], source="the run (header)")
        except ConfigError as exc:
            raise Invalid("config", f"the run's config does not load: {exc.issues[0].message}"
                          ) from None
        return RunStarted(str(self.header["run_id"]), self.spec, self.transcript,
                          str(self.header["started_at"]))

    # -- event lines ------------------------------------------------------------------------

    def _event(self, line: bytes) -> list[Event]:
        try:
            data = json.loads(line)
        except (ValueError, RecursionError):
            raise Invalid("", "not a JSON object") from None
        if not isinstance(data, dict):
            raise Invalid("", "not a JSON object")
        name = data.get("event")
        if name == "live":
            return self._go_live()
        if name == "dropped":
            self.dropped = _text(data, "reason")[:500]
            return []
        if not self.live or self.spec is None:
            raise Invalid("event", f"{short(name)} before the run's history")
        if name in ("text", "thinking"):
            kind = TextChunk if name == "text" else ThinkingChunk
            return [kind(self._turn(data), self._agent(data), _text(data, "text"))]
        if name == "turn_started":
            return [TurnStarted(self._turn(data), self._agent(data),
                                _whole(data, "attempt", MAX_ATTEMPTS),
                                _whole(data, "max_turns", MAX_TURNS))]
        if name == "paused":
            return [Paused()]
        if name == "resumed":
            step = data.get("step", False)
            if not isinstance(step, bool):
                raise Invalid("step", f"expected true or false, got {short(step)}")
            return [Resumed(step)]
        raise Invalid("event", f"unknown event {short(name)}")

    def _go_live(self) -> list[Event]:
        if self.live:
            raise Invalid("event", "a second live marker")
        self.live = True
        if self.spec is None:
            return []  # the run has not started: its header comes live
        max_turns = getattr(self.spec, "max_turns", 0)
        events = history_events(self._history, max_turns, started=self.announce_turns)
        # A run that ended before this viewer came: the end belongs to the last process's part.
        last = self._history[-1] if self._history else None
        if isinstance(last, RunEnd):
            self.end = last
            events.append(RunFinished(last))
        self._history = []
        return events

    def _turn(self, data: dict[str, Any]) -> int:
        return _whole(data, "turn", MAX_TURNS)

    def _agent(self, data: dict[str, Any]) -> str:
        agent = _text(data, "agent")
        assert self.spec is not None
        if agent not in {a.name for a in self.spec.agents}:
            raise Invalid("agent", f"{short(agent[:_NAME_LIMIT])} is not an agent of this run")
        return agent


def _text(data: dict[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str):
        raise Invalid(key, f"expected a string, got {short(value)}")
    return value


def _whole(data: dict[str, Any], key: str, limit: int) -> int:
    value = data.get(key)
    if type(value) is not int or not 0 <= value <= limit:
        raise Invalid(key, f"expected a whole number up to {limit}, got {short(value)}")
    return value
