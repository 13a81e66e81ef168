"""What a run keeps for its viewers: the history so far, and the turns streaming now.

A `Feed` hangs on the run's event bus from before the run starts. The bus hands it every event in
the same step as it hands them to each viewer's queue, so when a viewer subscribes, the history it
is sent and the events it is queued from then on meet exactly: nothing is sent twice, nothing
falls between.

The history is kept as transcript lines (what the run had written when the socket opened — a
resumed run's earlier part — then the line of every recorded event), plus what a transcript does
not keep: the turns under way with their text and thinking so far, and whether the run is paused.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import anyio

from intermodel.control.wire import encode_event
from intermodel.engine.bus import EventBus
from intermodel.engine.events import (
    Event,
    Paused,
    Resumed,
    Retrying,
    RunFinished,
    TextChunk,
    ThinkingChunk,
    TurnCompleted,
    TurnDiscarded,
    TurnStarted,
)
from intermodel.security.files import UnreadableFile, read_regular
from intermodel.security.secrets import Redactor

__all__ = ["Feed", "Snapshot"]

StreamKey = tuple[int, str]  # (turn, agent)


@dataclass
class _Stream:
    """A turn under way: its start, then its pieces in order (thinking and text alternate at
    most a few times, so consecutive pieces of one kind are kept as one list)."""

    started: TurnStarted
    pieces: list[tuple[type[TextChunk | ThinkingChunk], list[str]]] = field(default_factory=list)

    def add(self, chunk: TextChunk | ThinkingChunk) -> None:
        kind = type(chunk)
        if self.pieces and self.pieces[-1][0] is kind:
            self.pieces[-1][1].append(chunk.text)
        else:
            self.pieces.append((kind, [chunk.text]))

    def events(self) -> list[Event]:
        started = self.started
        return [started, *(kind(started.turn, started.agent, "".join(parts))
                           for kind, parts in self.pieces)]


@dataclass(frozen=True)
class Snapshot:
    """What a new viewer is sent before the live events: history lines, then the present."""

    lines: list[bytes]  # transcript lines, each ending in a newline
    present: list[Event]  # turns under way so far, and a pause


class Feed:
    def __init__(self, bus: EventBus, transcript: str | Path | None,
                 redactor: Redactor | None = None) -> None:
        self._redact = redactor or Redactor()
        self._lines: list[bytes] = _written_so_far(transcript)
        self._streams: dict[StreamKey, _Stream] = {}
        self._paused = False
        # Set at the next event that is not a piece of a turn: a viewer waiting out a frame
        # sends at once what a person should see at once (a turn starting, a record).
        self.landmark = anyio.Event()
        bus.add(self)

    def snapshot(self) -> Snapshot:
        present: list[Event] = [e for s in self._streams.values() for e in s.events()]
        if self._paused:
            present.append(Paused())
        return Snapshot(self._lines[:], present)

    # -- the bus's side ---------------------------------------------------------------------

    def push(self, event: Event) -> None:
        kind = type(event)
        if kind is TextChunk or kind is ThinkingChunk:  # the common case first, kept cheap
            assert isinstance(event, TextChunk | ThinkingChunk)
            stream = self._streams.get((event.turn, event.agent))
            if stream is not None:
                stream.add(event)
            return
        self.landmark.set()
        self.landmark = anyio.Event()
        match event:
            case TurnStarted(turn=turn, agent=agent):
                self._streams[(turn, agent)] = _Stream(event)
            case TurnCompleted() | Retrying() | TurnDiscarded() | RunFinished():
                self._end_stream(event)
            case Paused():
                self._paused = True
            case Resumed():
                self._paused = False
        if kind is not TurnStarted and kind is not Paused and kind is not Resumed:
            line = encode_event(event)  # its record's line, as the transcript writer writes it
            if line is not None:
                self._lines.append(self._redact.known(line.decode()).encode())

    def _end_stream(self, event: Event) -> None:
        match event:
            case TurnCompleted(turn=turn):
                self._streams.pop((turn.index, turn.agent), None)
            case Retrying(retry=retry):
                self._streams.pop((retry.turn, retry.agent), None)
            case TurnDiscarded(discard=discard):
                self._streams.pop((discard.turn, discard.agent), None)
            case RunFinished():
                self._streams.clear()

    def close(self) -> None:
        pass  # the history stays readable: a viewer may subscribe as the run ends


def _written_so_far(transcript: str | Path | None) -> list[bytes]:
    """The complete lines of the transcript as it is before the run starts: a resumed run's
    earlier part (a new run's file is still empty)."""
    if transcript is None:
        return []
    try:
        data = read_regular(Path(transcript))
    except (UnreadableFile, OSError):
        return []
    end = data.rfind(b"\n") + 1  # a torn last line is cut off by the writer before it appends
    return [line + b"\n" for line in data[:end].split(b"\n")[:-1] if line.strip()]

