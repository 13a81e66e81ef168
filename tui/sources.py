"""Where the screen's events come from: a live run of a pairing, or the replay of a transcript.

A source runs inside the app's async worker, on Textual's own event loop (anyio uses the asyncio
backend there), and hands its subscription to the app's event pump before anything is published.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

import anyio

from intermodel.control.server import ControlServer
from intermodel.engine.bus import Subscription
from intermodel.engine.controls import Controls
from intermodel.engine.prepare import Run, RunOpener
from intermodel.lineage.replay import Replay
from intermodel.records import RunEnd
from intermodel.transcript.reader import Transcript

__all__ = ["LiveSource", "Pump", "ReplaySource", "Source"]

Pump = Callable[[Subscription], Awaitable[None]]


class LiveSource:
    """Runs what `open_run` prepares (a new run, a resumed or a branched one); `controls` steer it
    once it has started, and its control socket is served for as long as it goes on."""

    live = True

    def __init__(self, open_run: RunOpener) -> None:
        self.open_run = open_run
        self.run: Run | None = None  # set once the run is prepared (tests read its providers)
        self.end: RunEnd | None = None
        self._interrupted = False

    @property
    def controls(self) -> Controls | None:
        return self.run.session.controls if self.run else None

    def interrupt(self) -> None:
        """Stop the run now, as a signal does; before it is prepared, as soon as it is."""
        self._interrupted = True
        if self.run is not None:
            self.run.session.controls.stop(now=True, reason="interrupted")

    async def serve(self, pump: Pump) -> None:
        async with self.open_run() as run:
            self.run = run
            if self._interrupted:
                self.interrupt()
            subscription = run.session.subscribe()
            async with anyio.create_task_group() as tg:
                if run.transcript is not None:  # found by its transcript, for `intermodel say`
                    await tg.start(ControlServer(run.session, run.transcript).serve)
                async with anyio.create_task_group() as screen:
                    screen.start_soon(pump, subscription)  # ends once the last event is shown
                    self.end = await run.session.run()
                tg.cancel_scope.cancel()  # the control socket closes with the run


class ReplaySource:
    """Plays a transcript back; stays open after the last record so a person can seek."""

    live = False

    def __init__(self, transcript: Transcript, *, speed: float = 1.0) -> None:
        self.replay = Replay(transcript, speed=speed)
        self.end: RunEnd | None = transcript.end

    async def serve(self, pump: Pump) -> None:
        subscription = self.replay.subscribe()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, subscription)
            await self.replay.run()


Source = LiveSource | ReplaySource
