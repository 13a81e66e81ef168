"""Where the screen's events come from: a live run of a pairing, a run going on in another
process (attached to through its control socket), the replay of a transcript, or a transcript
followed as it is written.

A source runs inside the app's async worker, on Textual's own event loop (anyio uses the asyncio
backend there), and hands its subscription to the app's event pump before anything is published.

The app steers every source through the `Source` protocol. Not every source can do everything (a
replay takes no interjections, a live run cannot seek): each says what it can in `capabilities`,
ignores the commands it cannot take, and the screen offers only the keys its source can serve.
"""

from __future__ import annotations

from collections.abc import Callable, Coroutine
from enum import Enum
from pathlib import Path
from typing import Any, Protocol

import anyio

from intermodel.control.server import ControlServer
from intermodel.control.watch import Watch, command
from intermodel.engine.bus import EventBus, Subscription
from intermodel.engine.controls import Controls
from intermodel.engine.events import Notice
from intermodel.engine.prepare import Run, RunOpener
from intermodel.errors import IntermodelError, TranscriptInvalid
from intermodel.lineage.follow import Follow
from intermodel.lineage.replay import Replay
from intermodel.records import RunEnd
from intermodel.transcript.reader import GrowingTranscript, Transcript

from .status import PlaybackInfo

__all__ = ["AttachedSource", "Capability", "FollowSource", "LiveSource", "Pump", "ReplaySource",
           "Source"]

Pump = Callable[[Subscription], Coroutine[Any, Any, None]]


class Capability(Enum):
    """What a source can do besides playing, pausing and closing."""

    STEP = "step"  # one more turn, then pause
    INTERJECT = "interject"  # a person's message to the agents
    EXTEND = "extend"  # raise the turn budget
    STOP = "stop"  # end the run, its transcript closed
    SEEK = "seek"  # play again from a turn
    SPEED = "speed"  # play faster or slower


class Source(Protocol):
    """What the screen watches and steers. Commands are safe to call from synchronous code on the
    event loop; one the source lacks the capability for does nothing."""

    @property
    def live(self) -> bool:
        """A run happening now (rather than a recording)."""
        ...

    @property
    def remote(self) -> bool:
        """A run in another process: closing the screen detaches from it, and it goes on."""
        ...

    @property
    def capabilities(self) -> frozenset[Capability]: ...

    @property
    def end(self) -> RunEnd | None:
        """How the run ended, once known."""
        ...

    @property
    def playback(self) -> PlaybackInfo | None:
        """A recording's speed and length, for the status bar."""
        ...

    async def serve(self, pump: Pump) -> None:
        """Publish events to `pump` (started with the subscription) until the source is done;
        return once the pump has shown the last of them."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def step(self) -> None: ...

    def interject(self, text: str, to: str) -> bool:
        """Send a message to `to` (an agent's name or "both"); False if it could not be sent."""
        ...

    def extend(self, turns: int) -> None: ...

    def stop(self, *, now: bool) -> None:
        """End the run as the person asked: after the streaming turn, or `now`."""
        ...

    def interrupt(self) -> None:
        """End at once, as a signal asks."""
        ...

    def seek(self, turn: int) -> None: ...

    def scale_speed(self, factor: float) -> None: ...

    def close(self) -> None:
        """The screen is closing: stop serving."""
        ...


class Ignoring:
    """What a source does with the commands it lacks the capability for: nothing (`interject`
    says it was not sent). Stopping or a signal closes a source that has no run of its own to
    end: a recording, or an attached viewer (the run is not the viewer's to end)."""

    def step(self) -> None:
        pass

    def interject(self, text: str, to: str) -> bool:
        return False

    def extend(self, turns: int) -> None:
        pass

    def seek(self, turn: int) -> None:
        pass

    def scale_speed(self, factor: float) -> None:
        pass

    def stop(self, *, now: bool) -> None:
        self.close()

    def interrupt(self) -> None:
        self.close()

    def close(self) -> None:
        raise NotImplementedError


class LiveSource(Ignoring):
    """Runs what `open_run` prepares (a new run, a resumed or a branched one); it is steered once
    it has started (commands before that are dropped), and its control socket is served for as
    long as it goes on."""

    live = True
    remote = False
    capabilities = frozenset({Capability.STEP, Capability.INTERJECT, Capability.EXTEND,
                              Capability.STOP})
    playback = None

    def __init__(self, open_run: RunOpener) -> None:
        self.open_run = open_run
        self.run: Run | None = None  # set once the run is prepared (tests read its providers)
        self.end: RunEnd | None = None
        self._interrupted = False
        self._closed = False
        self._scope: anyio.CancelScope | None = None  # made in `serve`: it needs the event loop

    @property
    def controls(self) -> Controls | None:
        return self.run.session.controls if self.run else None

    def pause(self) -> None:
        if self.controls is not None:
            self.controls.pause()

    def resume(self) -> None:
        if self.controls is not None:
            self.controls.resume()

    def step(self) -> None:
        if self.controls is not None:
            self.controls.step()

    def interject(self, text: str, to: str) -> bool:
        return self.controls is not None and self.controls.interject(text, to=to)

    def extend(self, turns: int) -> None:
        if self.controls is not None:
            self.controls.extend(turns)

    def stop(self, *, now: bool) -> None:
        if self.controls is not None:
            self.controls.stop(now=now, reason="stopped")

    def interrupt(self) -> None:
        """Stop the run now, as a signal does; before it is prepared, as soon as it is."""
        self._interrupted = True
        if self.controls is not None:
            self.controls.stop(now=True, reason="interrupted")

    def close(self) -> None:
        """Cancel the run; its session still writes the transcript's final record."""
        self._closed = True
        if self._scope is not None:
            self._scope.cancel()

    async def serve(self, pump: Pump) -> None:
        with anyio.CancelScope() as self._scope:
            if self._closed:
                self._scope.cancel()
            async with self.open_run() as run:
                self.run = run
                if self._interrupted:
                    self.interrupt()
                subscription = run.session.subscribe()
                server = (ControlServer(run.session, run.transcript)
                          if run.transcript is not None else None)
                async with anyio.create_task_group() as tg:
                    if server is not None:  # found by its transcript: `intermodel say`, `attach`
                        await tg.start(server.serve)
                    async with anyio.create_task_group() as screen:
                        screen.start_soon(pump, subscription)  # ends once the last event is shown
                        self.end = await run.session.run()
                    if server is not None:
                        await server.let_viewers_finish()
                    tg.cancel_scope.cancel()  # the control socket closes with the run


class AttachedSource(Ignoring):
    """A run going on in another process, watched through its control socket (`socket`) and
    steered through it: every command is a request to that run, whose answer (or refusal) is
    shown as a notice. Closing detaches; the run goes on."""

    live = True
    remote = True
    capabilities = LiveSource.capabilities
    playback = None

    def __init__(self, socket: Path, transcript: str | None = None) -> None:
        self.watch = Watch(socket, transcript)
        self._bus = EventBus()
        self._scope: anyio.CancelScope | None = None
        self._commands: anyio.abc.TaskGroup | None = None
        self._closed = False

    @property
    def end(self) -> RunEnd | None:
        return self.watch.end

    def pause(self) -> None:
        self._send({"command": "pause"})

    def resume(self) -> None:
        self._send({"command": "resume"})

    def step(self) -> None:
        self._send({"command": "step"})

    def interject(self, text: str, to: str) -> bool:
        return self._send({"command": "interject", "text": text, "to": to})

    def extend(self, turns: int) -> None:
        self._send({"command": "extend", "turns": turns})

    def stop(self, *, now: bool) -> None:
        self._send({"command": "stop", "now": now})

    def close(self) -> None:
        self._closed = True
        self.watch.stop()
        if self._scope is not None and self.watch.reader.header is None:
            self._scope.cancel()  # still connecting: nothing is being read yet

    def _send(self, payload: dict[str, Any]) -> bool:
        """Send a command in the background; False when there is nobody to send it to."""
        if self._commands is None or self.end is not None:
            return False
        self._commands.start_soon(self._request, payload)
        return True

    async def _request(self, payload: dict[str, Any]) -> None:
        try:
            reply = await command(self.watch.socket, payload)
        except IntermodelError as exc:
            self._bus.publish(Notice(f"not sent: {exc}"))
            return
        if not reply.get("ok"):
            error = reply.get("error")
            self._bus.publish(Notice(f"the run refused: {str(error)[:300]}"))

    async def serve(self, pump: Pump) -> None:
        subscription = self._bus.subscribe()
        async with anyio.create_task_group() as screen:
            screen.start_soon(pump, subscription)
            try:
                with anyio.CancelScope() as self._scope:
                    if self._closed:
                        self._scope.cancel()
                    async with anyio.create_task_group() as self._commands:
                        await self.watch.serve(self._bus.publish)
                        self._commands.cancel_scope.cancel()
                if not self._closed and self.watch.end is None:
                    self._bus.publish(Notice(self._lost()))
            finally:
                self._commands = None
                self._bus.close()  # the pump shows what is left, then ends

    def _lost(self) -> str:
        if self.watch.dropped:
            return f"detached: {self.watch.dropped}"
        return "the connection to the run was lost (its process ended without a final record?)"


class ReplaySource(Ignoring):
    """Plays a transcript back; stays open after the last record so a person can seek."""

    live = False
    remote = False
    capabilities = frozenset({Capability.SEEK, Capability.SPEED})

    def __init__(self, transcript: Transcript, *, speed: float = 1.0) -> None:
        self.replay = Replay(transcript, speed=speed)
        self.end: RunEnd | None = transcript.end

    @property
    def playback(self) -> PlaybackInfo:
        replay = self.replay
        return PlaybackInfo(replay.speed, replay.total_turns, replay.recorded_seconds)

    def pause(self) -> None:
        self.replay.pause()

    def resume(self) -> None:
        self.replay.resume()

    def seek(self, turn: int) -> None:
        self.replay.seek(turn)

    def scale_speed(self, factor: float) -> None:
        self.replay.set_speed(self.replay.speed * factor)

    def close(self) -> None:
        self.replay.close()

    async def serve(self, pump: Pump) -> None:
        subscription = self.replay.subscribe()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, subscription)
            await self.replay.run()


class FollowSource(Ignoring):
    """Plays a transcript that is still being written, following it as it grows; stays open
    after the run's end (a later process may resume it) until the screen closes. A file that
    stops being a transcript (a bad line, cut short) stops the following: the screen says why and
    stays, and `failure` is reported once it closes."""

    live = False
    remote = False
    capabilities: frozenset[Capability] = frozenset()  # no seeking: the file is the clock

    def __init__(self, growing: GrowingTranscript, *, follow: Follow | None = None) -> None:
        self.follow = follow or Follow(growing)
        self.failure: TranscriptInvalid | None = None

    @property
    def end(self) -> RunEnd | None:
        return self.follow.end

    @property
    def playback(self) -> PlaybackInfo:
        follow = self.follow
        return PlaybackInfo(1.0, follow.turns, follow.recorded_seconds, follow.status())

    def pause(self) -> None:
        self.follow.pause()

    def resume(self) -> None:
        self.follow.resume()

    def close(self) -> None:
        self.follow.close()

    async def serve(self, pump: Pump) -> None:
        subscription = self.follow.subscribe()
        async with anyio.create_task_group() as tg:
            tg.start_soon(pump, subscription)
            try:
                await self.follow.run()
            except TranscriptInvalid as exc:
                self.failure = exc  # shown on screen already
