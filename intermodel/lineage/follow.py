"""Following a transcript that is still being written (`intermodel replay --follow`).

A run on another machine writes its transcript to a shared disk; no socket reaches it, but the
file grows one line per record. A `Follow` reads it as it grows (`GrowingTranscript`: every line
checked as a whole-file read checks it, a record still being written waited for) and publishes
the events a live run would on its own `EventBus`, so the terminal UI and the headless console
show it unchanged.

What is in the file when following starts is history, published at once (each turn as a
completed turn). Each record written after that is published as it is read; a new turn's text
appears over `pace` seconds, or at once when more records are waiting, so the viewer never falls
behind the file. A `resume` record (a later process continuing the run, appending to the same
file) continues the run on screen. With `until_end` (headless) following stops at the run's
`end` record; otherwise (the UI) it goes on, in case a resume comes, until `close`.

The file is polled, since inotify does not see another machine's writes on a network
filesystem: every `POLL_MIN` seconds while it grows, backing off to every `POLL_MAX` while it does
not, so an idle follow opens and checks the file once a second. A writer that went quiet is not
taken for dead, only described ("no new record for 10 min"): a slow model may be thinking.
"""

from __future__ import annotations

import time
from collections.abc import Callable

import anyio

from intermodel.config.model import RunSpec
from intermodel.engine.bus import EventBus, Subscription
from intermodel.engine.events import (
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
from intermodel.errors import TranscriptInvalid
from intermodel.records import (
    BudgetChange,
    Discard,
    Interjection,
    Record,
    Resumption,
    Retry,
    RunEnd,
    Turn,
    epoch_of,
)
from intermodel.transcript.reader import GrowingTranscript, Transcript

__all__ = ["POLL_MAX", "POLL_MIN", "STALE_SECONDS", "Follow", "quiet_for"]

POLL_MIN, POLL_MAX = 0.1, 1.0  # seconds between two reads: while the file grows, while it rests
BACKOFF = 1.5  # each read that finds nothing new waits this much longer before the next
PACE_SECONDS = 0.3  # a new turn's text appears over this long (a live turn's feel, never behind)
FRAME_SECONDS = 1 / 30  # between two chunks of a paced turn
STALE_SECONDS = 600.0  # no new record for this long: say so (the writer may have died)


def quiet_for(seconds: float) -> str:
    """A quiet spell in words: "8 s", "12 min", "3 h 5 min"."""
    seconds = max(0, int(seconds))
    if seconds < 60:
        return f"{seconds} s"
    if seconds < 3600:
        return f"{seconds // 60} min"
    hours, minutes = divmod(seconds // 60, 60)
    return f"{hours} h {minutes} min" if minutes else f"{hours} h"


class Follow:
    """Publishes a growing transcript's events into `bus`, as they are written."""

    def __init__(self, growing: GrowingTranscript, *, until_end: bool = False,
                 clock: Callable[[], float] = time.monotonic, poll_min: float = POLL_MIN,
                 poll_max: float = POLL_MAX, pace: float = PACE_SECONDS,
                 stale: float = STALE_SECONDS) -> None:
        self.growing = growing
        self.until_end = until_end
        self.bus = EventBus()
        self.failure: TranscriptInvalid | None = None  # why following stopped, if it failed
        self.end: RunEnd | None = None  # the run's end, while no resume has followed it
        self.turns = 0  # turns published
        self.last_turn = 0
        self.recorded_seconds = 0.0  # from the run's start to its latest record
        self._clock = clock
        self._poll_min, self._poll_max = poll_min, poll_max
        self._pace, self._stale = pace, stale
        self._spec: RunSpec | None = None
        self._max_turns = 0
        self._started: float | None = None  # the run's start (epoch seconds), from the header
        self._held: list[Interjection] = []  # sent while the next turn streamed: shown with it
        self._failures: dict[tuple[int, str], int] = {}  # failed attempts per turn and agent
        self._last_record = clock()  # when the latest record was written, as far as we know
        self._warned = False  # the quiet spell has been reported
        self._paused = False
        self._closed = False
        self._wake = anyio.Event()

    # -- steering (safe to call from synchronous code on the event loop) ------------------------

    @property
    def paused(self) -> bool:
        return self._paused

    def pause(self) -> None:
        """Hold what arrives (it is shown, at once, on `resume`)."""
        if not self._paused:
            self._paused = True
            self.bus.publish(Paused())
            self._wake.set()

    def resume(self) -> None:
        if self._paused:
            self._paused = False
            self.bus.publish(Resumed())
            self._wake.set()

    def close(self) -> None:
        self._closed = True
        self._wake.set()

    def subscribe(self) -> Subscription:
        return self.bus.subscribe()

    def status(self) -> str:
        """What following is doing, for a status bar: "following: waiting for turn 5 · last
        record 12 s ago"."""
        if self.failure is not None:
            return f"following stopped: {self.failure}"
        transcript = self.growing.transcript
        if transcript is None:
            return "following: waiting for the transcript's first record"
        if self.end is not None:
            return "following: the run has ended"
        quiet = self._clock() - self._last_record
        since = f"no new record for {quiet_for(quiet)}" if quiet >= self._stale else \
            f"last record {quiet_for(quiet)} ago"
        if transcript.is_panel:
            return f"following: {self.turns} of {self._max_turns} answered · {since}"
        return f"following: waiting for turn {self.last_turn + 1} · {since}"

    # -- following -----------------------------------------------------------------------------

    async def run(self) -> None:
        """Publish the history, then each new record, until `close` (or, `until_end`, until
        the run's end). Raises TranscriptInvalid when the file stops being a transcript (a bad
        line, cut short, replaced); what came before it has been published."""
        try:
            records = await self._first_records()
            if records is None:
                return
            self._publish_all(records)
            interval = self._poll_min
            while not self._done():
                await self._wait(interval)
                if self._done():
                    return
                before = self.growing.pending
                records = await anyio.to_thread.run_sync(self.growing.poll)
                if records:
                    await self._publish_new(records)
                    interval = self._poll_min
                elif self.growing.pending != before:  # a record is being written: look soon
                    interval = self._poll_min
                else:
                    interval = min(interval * BACKOFF, self._poll_max)
                    self._check_quiet()
        except TranscriptInvalid as exc:
            self.failure = exc
            if not self.until_end:  # the screen stays; the one line comes when it closes
                self.bus.publish(Notice(f"following stopped: {exc}"))
            raise
        finally:
            self.bus.close()

    async def _first_records(self) -> list[Record] | None:
        """Everything read so far (the file may have been polled before following began), once
        the header's line is complete (a run just starting may not have written it yet); None
        if closed while waiting."""
        interval = self._poll_min
        await anyio.to_thread.run_sync(self.growing.poll)
        while (transcript := self.growing.transcript) is None:
            if self._closed:
                return None
            await self._wait(interval)
            interval = min(interval * BACKOFF, self._poll_max)
            await anyio.to_thread.run_sync(self.growing.poll)
        self._start(transcript)
        return list(transcript.records)

    def _start(self, transcript: Transcript) -> None:
        self._spec = spec = transcript.config()
        self._max_turns = spec.max_turns
        started_at = str(transcript.header.get("started_at", ""))
        self._started = epoch_of(started_at)
        # The quiet spell before we came counts: the file's age tells when it last grew.
        self._last_record = self._clock() - max(0.0, time.time() - self.growing.modified)
        self.bus.publish(RunStarted(transcript.run_id, spec, str(transcript.path), started_at))

    def _done(self) -> bool:
        return self._closed or (self.until_end and self.end is not None)

    async def _wait(self, seconds: float) -> None:
        """Sleep `seconds`, cut short by `close`; while paused, until resumed."""
        with anyio.move_on_after(seconds):
            await self._changed()
        while self._paused and not self._closed:
            await self._changed()

    async def _changed(self) -> None:
        await self._wake.wait()
        self._wake = anyio.Event()

    def _check_quiet(self) -> None:
        quiet = self._clock() - self._last_record
        if quiet >= self._stale and not self._warned and self.end is None:
            self._warned = True
            self.bus.publish(Notice(f"no new record for {quiet_for(quiet)}; still following "
                                    "(the run may have stopped without a final record)"))

    # -- publishing ----------------------------------------------------------------------------

    async def _publish_new(self, records: list[Record]) -> None:
        self._last_record, self._warned = self._clock(), False
        last = max((i for i, r in enumerate(records) if isinstance(r, Turn)), default=None)
        if last is None or self._pace <= 0:
            self._publish_all(records)
            return
        # Only the newest turn is paced: anything before it is already behind the file.
        self._publish_all(records[:last])
        turn = records[last]
        assert isinstance(turn, Turn)
        await self._paced_turn(turn)
        self._publish_all(records[last + 1:])

    def _publish_all(self, records: list[Record]) -> None:
        for record in records:
            self._publish(record)

    def _publish(self, record: Record) -> None:
        """One record's events, at once."""
        self._moved(record)
        if isinstance(record, Interjection):
            # Typed while turn N streamed, it is addressed from N + 1 and written before N's
            # record: hold it so it appears inside turn N, where a live run showed it.
            if record.before_turn == self.last_turn + 2:
                self._held.append(record)
            else:
                self.bus.publish(Interjected(record))
            return
        if isinstance(record, Turn):
            self._turn_started(record)
            self._chunks(record, 0, len(record.thinking) + len(record.text))
            self._turn_completed(record)
            return
        self._release_held()
        if isinstance(record, Retry | Discard):
            key = (record.turn, record.agent)
            self._failures[key] = attempt = self._failures.get(key, 0) + 1
            self.bus.publish(TurnStarted(record.turn, record.agent, attempt, self._max_turns))
            self.bus.publish(Retrying(record) if isinstance(record, Retry)
                             else TurnDiscarded(record))
        elif isinstance(record, Resumption):
            self._max_turns, self.end = record.max_turns, None
            assert self._spec is not None and self.growing.transcript is not None
            transcript = self.growing.transcript
            # No transcript path: the screen would read the history from it again, and it is
            # already shown.
            self.bus.publish(RunStarted(transcript.run_id, self._spec, None,
                                        str(transcript.header.get("started_at", "")),
                                        resume=record))
            self.bus.publish(Notice(f"the run was resumed after turn {record.after_turn}"))
        elif isinstance(record, RunEnd):
            self.end = record
            self.bus.publish(RunFinished(record))
        elif (event := event_for(record)) is not None:
            if isinstance(record, BudgetChange):
                self._max_turns = record.max_turns
            self.bus.publish(event)

    async def _paced_turn(self, turn: Turn) -> None:
        """A new turn's thinking and text over `pace` seconds, a frame at a time."""
        self._moved(turn)
        self._turn_started(turn)
        total, sent = len(turn.thinking) + len(turn.text), 0
        frames = max(1, round(self._pace / FRAME_SECONDS))
        for frame in range(1, frames + 1):
            due = total * frame // frames
            self._chunks(turn, sent, due)
            sent = due
            if frame < frames and not self._closed:
                await anyio.sleep(FRAME_SECONDS)
        self._turn_completed(turn)

    def _turn_started(self, turn: Turn) -> None:
        during = [i for i in self._held if i.before_turn == turn.index + 1]
        self._release([i for i in self._held if i.before_turn != turn.index + 1])
        self._held = []
        self.bus.publish(TurnStarted(turn.index, turn.agent, turn.attempts, self._max_turns))
        self._release(during)

    def _turn_completed(self, turn: Turn) -> None:
        self.bus.publish(TurnCompleted(turn))
        self.turns += 1
        self.last_turn = max(self.last_turn, turn.index)

    def _release_held(self) -> None:
        held, self._held = self._held, []
        self._release(held)

    def _release(self, interjections: list[Interjection]) -> None:
        for interjection in interjections:
            self.bus.publish(Interjected(interjection))

    def _chunks(self, turn: Turn, start: int, end: int) -> None:
        """Characters [start, end) of the turn's thinking followed by its text."""
        split = len(turn.thinking)
        if start < split and end > start:
            self.bus.publish(ThinkingChunk(turn.index, turn.agent,
                                           turn.thinking[start:min(end, split)]))
        if end > split and end > start:
            self.bus.publish(TextChunk(turn.index, turn.agent,
                                       turn.text[max(start - split, 0):end - split]))

    def _moved(self, record: Record) -> None:
        at = epoch_of(record.at)
        if at is not None and self._started is not None:
            self.recorded_seconds = max(self.recorded_seconds, at - self._started)

