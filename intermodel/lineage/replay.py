"""Replaying a transcript: a recorded run published again as the events a live run publishes.

A `Replay` turns a transcript's records back into dialogue events on its own `EventBus`, so any
consumer of a live run (the terminal UI) shows a replay unchanged. Timing follows the record: the
quiet before each record (the gap between its start and the previous record, capped at `max_gap`),
a turn's time to first token, then its thinking and text spread evenly over the rest of its
latency; everything divided by `speed`. An interjection typed while a turn streamed appears at the
same point of that turn.

Pause, resume, speed changes and seeks take effect at once, even in the middle of a turn. A seek
starts over: a fresh `RunStarted`, the history before the target turn instantly (each turn as a
completed turn, without chunks), then paced playback from the target turn. After the last record
the replay stays open (a seek may come), until `close`.

A transcript without a final record (the process died) plays what it has and finishes with reason
`incomplete`, so a viewer can tell a crash from a run that ended. One that is still being written
is followed instead (`intermodel.lineage.follow`, `replay --follow`).

A panel's answers are replayed together, each on its own lane (`intermodel.lineage.replay_panel`).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import anyio

from intermodel.config.model import Panel
from intermodel.engine.bus import EventBus, Subscription
from intermodel.engine.events import (
    Event,
    Interjected,
    Notice,
    Paused,
    Resumed,
    Retrying,
    RunFinished,
    RunStarted,
    TextChunk,
    ThinkingChunk,
    TurnCompleted,
    TurnDiscarded,
    TurnStarted,
    event_for,
)
from intermodel.lineage.replay_panel import PanelPlayback
from intermodel.records import (
    BudgetChange,
    Discard,
    EndReason,
    Interjection,
    Record,
    Resumption,
    Retry,
    RunEnd,
    Turn,
    Usage,
    epoch_of,
)
from intermodel.transcript.reader import Transcript

__all__ = ["INCOMPLETE", "MAX_SPEED", "MIN_SPEED", "Replay"]

INCOMPLETE = "transcript ends without a final record"
MIN_SPEED, MAX_SPEED = 0.125, 1000.0
FRAME_SECONDS = 1 / 30  # real time between two chunks of a streaming turn


@dataclass(frozen=True, slots=True)
class _Step:
    """One record to publish, with the recorded quiet before it."""

    record: Record
    gap: float  # recorded seconds between the previous record and this one's start (capped)
    turn: float  # the turn it belongs to or precedes; seeking to N starts at the first >= N
    span: float = 0.0  # recorded seconds a streamed attempt (retry or discard) took
    during: tuple[tuple[float, Interjection], ...] = ()  # interjections sent while it streamed


class _Restart(Exception):
    """Internal: a seek interrupts playback."""



def _plan(records: Sequence[Record], max_gap: float) -> list[_Step]:
    """Steps in file order. Interjections recorded while turn N streamed (addressed from N + 1)
    are folded into turn N's step, at their offset from its start."""
    steps: list[_Step] = []
    previous: float | None = None  # when the previous record was written
    last_turn = 0
    pending: list[Interjection] = []  # interjections not yet placed

    def gap(start: float | None) -> float:
        if start is None or previous is None:
            return 0.0
        return min(max(start - previous, 0.0), max_gap)

    def place(step: _Step, at: float | None) -> None:
        nonlocal previous
        steps.append(step)
        previous = at if at is not None else previous

    def flush_pending() -> None:
        for interjection in pending:
            at = epoch_of(interjection.at)
            place(_Step(interjection, gap(at), interjection.before_turn), at)
        pending.clear()

    for record in records:
        at = epoch_of(record.at)
        if isinstance(record, Interjection):
            pending.append(record)
        elif isinstance(record, Turn):
            start = None if at is None else at - record.latency
            during = [i for i in pending if i.before_turn == record.index + 1]
            pending[:] = [i for i in pending if i.before_turn != record.index + 1]
            flush_pending()
            offsets = tuple((_offset(i, start, record.latency), i) for i in during)
            place(_Step(record, gap(start), record.index, during=offsets), at)
            last_turn = record.index
        else:
            flush_pending()
            if isinstance(record, Retry | Discard):
                # A failed attempt streamed from the previous record until it was recorded.
                place(_Step(record, 0.0, record.turn, span=gap(at)), at)
            elif isinstance(record, RunEnd):
                place(_Step(record, gap(at), math.inf), at)
            else:
                place(_Step(record, gap(at), last_turn + 1), at)
    flush_pending()
    return steps


def _offset(interjection: Interjection, start: float | None, latency: float) -> float:
    """When, in recorded seconds from its turn's start, an interjection arrived."""
    at = epoch_of(interjection.at)
    if at is None or start is None:
        return latency / 2
    return min(max(at - start, 0.0), latency)


class Replay:
    """Publishes a transcript's events, paced, into `bus`; steered by the methods below."""

    def __init__(self, transcript: Transcript, *, speed: float = 1.0, max_gap: float = 3.0) -> None:
        self.transcript = transcript
        self.spec = transcript.config()
        self.bus = EventBus()
        self.total_turns = len(transcript.turns)
        self._steps = _plan(transcript.records, max_gap)
        self._max_gap = max_gap
        self._speed = self._clamp(speed)
        self._paused = False
        self._seek_to: int | None = None
        self._closed = False
        self._wake = anyio.Event()
        self._max_turns = 0
        self.turn = 0  # the turn being played (or the last one played)
        self.recorded_seconds = 0.0  # recorded time of the playback position since the run start

    # -- steering (safe to call from synchronous code on the event loop) ------------------------

    @property
    def speed(self) -> float:
        return self._speed

    @property
    def paused(self) -> bool:
        return self._paused

    def set_speed(self, speed: float) -> float:
        self._speed = self._clamp(speed)
        self._wake.set()
        return self._speed

    def pause(self) -> None:
        if not self._paused:
            self._paused = True
            self.bus.publish(Paused())
            self._wake.set()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self.bus.publish(Resumed())
            self._wake.set()

    def seek(self, turn: int) -> int:
        """Start over at `turn` (clamped to the recorded turns); returns the turn chosen."""
        self._seek_to = max(1, min(turn, self.total_turns + 1))
        self._wake.set()
        return self._seek_to

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def subscribe(self) -> Subscription:
        return self.bus.subscribe()

    # -- playback ------------------------------------------------------------------------------

    async def run(self) -> None:
        """Play from the first turn, then after every seek, until `close`."""
        start = 1
        try:
            while not self._closed:
                try:
                    await self._play(start)
                    while not self._closed:
                        self._check_seek()
                        await self._changed()
                except _Restart:
                    if self._seek_to is None:  # closed
                        break
                    start, self._seek_to = self._seek_to, None
        finally:
            self.bus.close()

    async def _play(self, start: int) -> None:
        header = self.transcript.header
        self.turn, self.recorded_seconds = 0, 0.0
        self._publish(RunStarted(self.transcript.run_id, self.spec, str(self.transcript.path),
                                 str(header.get("started_at", ""))))
        if self._paused:
            self._publish(Paused())
        if isinstance(self.spec, Panel):
            self._max_turns = self.spec.max_turns
            await PanelPlayback(
                self.transcript.records, str(header.get("started_at", "")), self._max_gap,
                self._max_turns, self._publish, self._publish_chars, self._sleep,
                lambda: FRAME_SECONDS * self._speed, self._moved).play(start)
        else:
            await self._play_dialogue(start)
        if self.transcript.end is None:
            if self.transcript.torn:
                self._publish(Notice("the transcript's last line was cut off mid-write; "
                                     "it is not shown"))
            self._publish(RunFinished(self._incomplete_end()))

    async def _play_dialogue(self, start: int) -> None:
        header = self.transcript.header
        self._max_turns = int(header["config"]["dialogue"]["max_turns"])
        failures: dict[int, int] = {}  # failed attempts per turn, to number the next one
        started = epoch_of(str(header.get("started_at", "")))
        for step in self._steps:
            instant = step.turn < start
            if not instant:
                await self._sleep(step.gap)
            at = epoch_of(step.record.at)
            if at is not None and started is not None:
                self.recorded_seconds = max(self.recorded_seconds, at - started)
            await self._publish_step(step, failures, instant=instant)

    def _moved(self, turn: int, seconds: float) -> None:
        self.turn, self.recorded_seconds = turn, seconds

    async def _publish_step(self, step: _Step, failures: dict[int, int], *, instant: bool) -> None:
        record = step.record
        if isinstance(record, Turn):
            self.turn = record.index
            self._publish(TurnStarted(record.index, record.agent, record.attempts,
                                      self._max_turns))
            if instant:
                for _, interjection in step.during:
                    self._publish(Interjected(interjection))
            else:
                await self._stream(record, step.during)
            self._publish(TurnCompleted(record))
        elif isinstance(record, Retry | Discard):
            self.turn = record.turn
            attempt = failures.get(record.turn, 0) + 1
            failures[record.turn] = attempt
            text = record.text if isinstance(record, Discard) else ""
            thinking = record.thinking if isinstance(record, Discard) else ""
            self._publish(TurnStarted(record.turn, record.agent, attempt, self._max_turns))
            if not instant:
                await self._stream_text(record.turn, record.agent, thinking, text, step.span, ())
            self._publish(Retrying(record) if isinstance(record, Retry)
                          else TurnDiscarded(record))
        elif isinstance(record, Resumption):
            self._max_turns = record.max_turns
            self._publish(Notice(f"the run was resumed after turn {record.after_turn}"))
        elif (event := event_for(record)) is not None:
            if isinstance(record, BudgetChange):
                self._max_turns = record.max_turns
            self._publish(event)

    async def _stream(self, turn: Turn, during: tuple[tuple[float, Interjection], ...]) -> None:
        ttft = min(turn.ttft or 0.0, turn.latency)
        early = tuple((offset, i) for offset, i in during if offset <= ttft)
        for _, interjection in early:
            self._publish(Interjected(interjection))
        await self._sleep(ttft)
        later = tuple((offset - ttft, i) for offset, i in during if offset > ttft)
        await self._stream_text(turn.index, turn.agent, turn.thinking, turn.text,
                                turn.latency - ttft, later)

    async def _stream_text(self, index: int, agent: str, thinking: str, text: str,
                           duration: float, during: tuple[tuple[float, Interjection], ...]) -> None:
        """Thinking then text, spread evenly over `duration` recorded seconds, a frame at a time."""
        total = len(thinking) + len(text)
        sent, elapsed = 0, 0.0
        queue = sorted(during, key=lambda pair: pair[0])
        while True:
            if elapsed < duration:
                step = min(FRAME_SECONDS * self._speed, duration - elapsed)
                await self._sleep(step)
                elapsed += step
            due = total if elapsed >= duration else int(total * elapsed / duration)
            if due > sent:
                self._publish_chars(index, agent, thinking, text, sent, due)
                sent = due
            while queue and queue[0][0] <= elapsed:
                self._publish(Interjected(queue.pop(0)[1]))
            if elapsed >= duration:
                break
        for _, interjection in queue:
            self._publish(Interjected(interjection))

    def _publish_chars(self, index: int, agent: str, thinking: str, text: str, start: int,
                       end: int) -> None:
        split = len(thinking)
        if start < split:
            self._publish(ThinkingChunk(index, agent, thinking[start:min(end, split)]))
        if end > split:
            self._publish(TextChunk(index, agent, text[max(start - split, 0):end - split]))

    def _incomplete_end(self) -> RunEnd:
        usage = Usage.per_agent(self.transcript.turns, self.spec.agent_names)
        return RunEnd(reason=EndReason.INCOMPLETE, detail=INCOMPLETE, turns=self.total_turns,
                      usage=usage, duration=round(self.recorded_seconds, 3))

    # -- time ----------------------------------------------------------------------------------

    async def _sleep(self, seconds: float) -> None:
        """Let `seconds` of recorded time pass at the current speed, standing still while paused.
        Raises _Restart when a seek arrives."""
        remaining = seconds
        while True:
            self._check_seek()
            if self._paused:
                await self._changed()
                continue
            if remaining <= 0:
                return
            speed = self._speed
            began = anyio.current_time()
            with anyio.move_on_after(remaining / speed):
                await self._changed()
            remaining -= (anyio.current_time() - began) * speed

    async def _changed(self) -> None:
        await self._wake.wait()
        self._wake = anyio.Event()

    def _check_seek(self) -> None:
        if self._seek_to is not None or self._closed:
            raise _Restart

    def _publish(self, event: Event) -> None:
        self.bus.publish(event)

    @staticmethod
    def _clamp(speed: float) -> float:
        return min(max(speed, MIN_SPEED), MAX_SPEED)
