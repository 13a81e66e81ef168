"""Replaying a panel: every answer on its own lane, all of them streaming together.

A panel's answers streamed at the same time, so they cannot be replayed one after another like a
dialogue's turns. Each attempt (an answer, a failed attempt that was retried, a discarded one)
gets its recorded span in seconds from the run's start: an answer ends when it was recorded and
began `latency` before; a failed attempt began where the agent's previous one ended (plus the
retry's wait). Quiet stretches where nothing streams are cut to `max_gap`, as a dialogue's pauses
between turns are. `Replay` drives a `PanelPlayback` with its own clock, so pause, speed and seek
work the same.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

from intermodel.engine.events import (
    Event,
    TurnStarted,
    event_for,
)
from intermodel.records import Discard, Record, Retry, Turn, epoch_of

__all__ = ["Attempt", "PanelPlayback", "panel_timeline"]


@dataclass(frozen=True, slots=True, eq=False)  # each attempt is its own key
class Attempt:
    record: Turn | Retry | Discard
    number: int  # 1 for the first attempt at an agent's answer
    start: float  # playback seconds from the run's start
    end: float
    ttft: float  # seconds from `start` to the first token

    @property
    def turn(self) -> int:
        record = self.record
        return record.index if isinstance(record, Turn) else record.turn


def _seconds(at: str, started: float | None) -> float | None:
    moment = epoch_of(at)
    return None if moment is None or started is None else max(moment - started, 0.0)


def panel_timeline(records: Sequence[Record], started_at: str, max_gap: float
                   ) -> tuple[list[Attempt], list[tuple[float, Record]]]:
    """The attempts by start, and every other record (notes, the end) by time."""
    started = _seconds(started_at, 0.0)
    free: dict[str, float] = {}  # when each agent could start its next attempt
    failures: dict[str, int] = {}
    spans: list[tuple[float, float, Record, int, float]] = []
    clock = 0.0  # records are written as they happen: none is earlier than the one before
    for record in records:
        at = _seconds(record.at, started)
        clock = max(clock, at) if at is not None else clock
        if isinstance(record, Turn | Retry | Discard):
            agent = record.agent
            begin = min(free.get(agent, 0.0), clock)
            if isinstance(record, Turn):
                begin = max(begin, clock - record.latency)
                number, ttft = record.attempts, min(record.ttft or 0.0, clock - begin)
            else:
                failures[agent] = failures.get(agent, 0) + 1
                number, ttft = failures[agent], 0.0
            spans.append((begin, clock, record, number, ttft))
            free[agent] = clock + (record.wait if isinstance(record, Retry) else 0.0)
        else:
            spans.append((clock, clock, record, 0, 0.0))
    squeeze = _squeezer([(s[0], s[1]) for s in spans], max_gap)
    attempts = [Attempt(r, n, squeeze(b), squeeze(e), t) for b, e, r, n, t in spans
                if isinstance(r, Turn | Retry | Discard)]
    points = [(squeeze(e), r) for _, e, r, _, _ in spans
              if not isinstance(r, Turn | Retry | Discard)]
    return sorted(attempts, key=lambda a: a.start), sorted(points, key=lambda p: p[0])


def _squeezer(spans: list[tuple[float, float]], max_gap: float) -> Callable[[float], float]:
    """Recorded seconds to playback seconds: a stretch longer than `max_gap` in which nothing
    streams is cut to `max_gap` (nothing happens inside it, so only later times move)."""
    cuts: list[tuple[float, float]] = []  # (from when, seconds taken out)
    covered = 0.0
    for begin, end in sorted(spans):
        if begin - covered > max_gap:
            cuts.append((begin, begin - covered - max_gap))
        covered = max(covered, end)

    def squeeze(t: float) -> float:
        return t - sum(cut for since, cut in cuts if since <= t)

    return squeeze


@dataclass
class PanelPlayback:
    """Publishes a panel's records as events. `chars` publishes the thinking and text characters
    [start, end) of an attempt; `sleep` lets playback seconds pass (pausing and seeking inside
    it); `frame` is the playback seconds between two chunks of a streaming answer; `moved` hears
    the answer started last and the playback position."""

    records: Sequence[Record]
    started_at: str
    max_gap: float
    max_turns: int
    publish: Callable[[Event], None]
    chars: Callable[[int, str, str, str, int, int], None]
    sleep: Callable[[float], Awaitable[None]]
    frame: Callable[[], float]
    moved: Callable[[int, float], None]

    async def play(self, start: int) -> None:
        """Answers numbered below `start` at once, then everything else at its time."""
        attempts, timed = panel_timeline(self.records, self.started_at, self.max_gap)
        self._turn = 0
        for attempt in attempts:
            if attempt.turn < start:
                self._begin(attempt)
                self._finish(attempt.record)
        lanes = deque(a for a in attempts if a.turn >= start)
        points = deque(timed)
        live: dict[Attempt, int] = {}  # streaming attempts: characters published
        now = lanes[0].start if lanes else 0.0
        while True:
            for attempt in [a for a in live if a.end <= now]:
                self._flow(attempt, live, now)
                del live[attempt]
                self._finish(attempt.record)
            while lanes and lanes[0].start <= now:
                live[lanes[0]] = 0
                self._begin(lanes.popleft())
            while points and points[0][0] <= now:
                self._finish(points.popleft()[1])
            for attempt in live:
                self._flow(attempt, live, now)
            self.moved(self._turn, now)
            upcoming = [a.end for a in live]
            if lanes:
                upcoming.append(lanes[0].start)
            if points:
                upcoming.append(points[0][0])
            if not upcoming:
                return
            target = min(min(upcoming), now + self.frame()) if live else min(upcoming)
            await self.sleep(target - now)
            now = target

    def _begin(self, attempt: Attempt) -> None:
        self._turn = attempt.turn
        self.publish(TurnStarted(attempt.turn, attempt.record.agent, attempt.number,
                                 self.max_turns))

    def _flow(self, attempt: Attempt, live: dict[Attempt, int], now: float) -> None:
        """Publish what of a streaming attempt is due by `now` (all of it at its end)."""
        record = attempt.record
        text = record.text if isinstance(record, Turn | Discard) else ""
        thinking = record.thinking if isinstance(record, Turn | Discard) else ""
        total, first = len(thinking) + len(text), attempt.start + attempt.ttft
        span = attempt.end - first
        due = total if now >= attempt.end or span <= 0 else int(
            total * max(now - first, 0.0) / span)
        if due > live[attempt]:
            self.chars(attempt.turn, record.agent, thinking, text, live[attempt], due)
            live[attempt] = due

    def _finish(self, record: Record) -> None:
        event = event_for(record)
        if event is not None:
            self.publish(event)
