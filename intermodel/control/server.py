"""A run's control socket: how `intermodel say`, `control`, `status` and `attach` reach a run.

A front end that drives a recorded run serves its socket for as long as the run goes on (where the
socket is: `intermodel.control.paths`; the clients: `intermodel.control.client` and
`intermodel.control.watch`). Both ends check who is at the other end before anything is said. The
socket is created mode 600 and the server answers only connections from its own user (their peer
credentials); a client sends nothing to a socket served by another user. The protocol (version
`PROTOCOL`, described in docs/control.md) is JSON lines, without secrets. A command is one request
line answered by one reply line:

    {"command": "interject", "text": "...", "to": "a"}   ->  {"ok": true, "accepted": "..."}
    {"command": "status"}                                 ->  {"ok": true, "status": {...}}

`accepted` says in one line what the run took the request to mean (whom a message is for and
when they see it, the new budget...); `intermodel say` and `control` print it.

Commands: interject, pause, resume, step, stop, extend (with "turns"), status, and subscribe,
which keeps the connection: the run's history, then its events as they happen (`Feed`,
`intermodel.control.wire`). Each viewer has its own queue, which merges a lagging viewer's chunks;
a viewer that falls `VIEWER_BACKLOG` events behind, or takes no data for `VIEWER_STALL` seconds,
is cut off, so a stopped or vanished viewer never slows the run or grows its memory.

The socket cannot take the run down (`intermodel.control.lines`): at most `MAX_CONNECTIONS`
connections, `MAX_VIEWERS` viewers among them, are served at once, and never more than a quarter
of the process's file descriptors, so the run keeps enough for its own files, imports and provider
connections (more are told the run is busy). A connection that sends no request within
`IDLE_SECONDS` is closed.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any, ClassVar

import anyio
from anyio.abc import SocketStream

from intermodel.config.model import RunSpec
from intermodel.control.feed import Feed
from intermodel.control.lines import (
    IDLE_SECONDS,
    MAX_CONNECTIONS,
    LineServer,
    connection_cap,
    redacted,
    send_line,
)
from intermodel.control.paths import socket_path
from intermodel.control.registry import register
from intermodel.control.wire import PROTOCOL, encode_event, marker
from intermodel.engine.events import TextChunk, ThinkingChunk
from intermodel.engine.session import Session
from intermodel.errors import UsageError
from intermodel.security.bounds import MAX_TURNS

__all__ = ["IDLE_SECONDS", "MAX_CONNECTIONS", "MAX_VIEWERS", "PROTOCOL", "VIEWER_BACKLOG",
           "ControlServer", "connection_cap"]

MAX_VIEWERS = 16  # subscribed viewers at once
VIEWER_BACKLOG = 512  # events a viewer may lag behind (merged chunks count once)
VIEWER_STALL = 30.0  # seconds a viewer may take no data while some waits for it
# Seconds a turn's pieces pile up between two sends to a viewer: one send per frame, not per
# token. Anything else (a turn starting, a record) ends the frame and is sent at once, and so is
# the first piece after it, so a new turn shows without waiting for a frame.
VIEWER_FRAME = 0.05
FINISH_SECONDS = 1.0  # a viewer may take to be sent the run's end once it has ended
_HISTORY_BLOCK = 256 * 1024  # bytes of history sent at once
_VIEWERS_BUSY = {"ok": False, "error": f"the run already has {MAX_VIEWERS} viewers; try again"}
_ACCEPTED = {
    "pause": "pause (a streaming turn is finished first)",
    "resume": "resume",
    "step": "one more turn, then pause",
    "stop": "stop after the streaming turn",
    "stop now": "stop now (a streaming turn is discarded)",
}


class ControlServer(LineServer):
    """Serves one session's controls while it runs."""

    busy: ClassVar[dict[str, Any]] = {
        "ok": False, "error": "the run is busy with other control connections; try again"}

    def __init__(self, session: Session[RunSpec], transcript: str | Path) -> None:
        super().__init__(socket_path(transcript, session.run_id))
        self.session = session
        self.transcript = transcript
        self.viewers = 0  # subscribed now (counted among the connections)
        self.dropped = 0  # viewers cut off for lagging or stalling
        self.stall = VIEWER_STALL
        self._viewer_left = anyio.Event()
        # From before the run starts: viewers get the whole history however early they come.
        self.feed = Feed(session.bus, transcript, session.bus.redactor)

    def register(self) -> Path:
        # So that a bare `intermodel status` finds the run, wherever its transcript is.
        return register(self.session.run_id, self.path, self.transcript)

    def keeps(self, request: Any) -> bool:
        return isinstance(request, dict) and request.get("command") == "subscribe"

    async def keep(self, stream: SocketStream, request: Any) -> None:
        await self._serve_viewer(stream)

    async def _serve_viewer(self, stream: SocketStream) -> None:
        """The history, then every event until the run ends or the viewer goes or lags."""
        if self.viewers >= MAX_VIEWERS:
            await _send(stream, _VIEWERS_BUSY)
            return
        self.viewers += 1
        bus = self.session.bus
        # In one step, with no await between: the history ends where the queue begins.
        snapshot = self.feed.snapshot()
        queue = bus.subscribe(limit=VIEWER_BACKLOG)
        try:
            hello = {"ok": True, "protocol": PROTOCOL, "status": self._status()}
            await _send_lines(stream, [json.dumps(redacted(hello)).encode() + b"\n",
                                       *snapshot.lines], self.stall)
            present = [encode_event(event) for event in snapshot.present]
            await _send_lines(stream, [marker("live"), *filter(None, present)], self.stall)
            while await queue.wait():
                landmark = self.feed.landmark
                events = queue.drain()
                lines = [encode_event(event) for event in events]
                await _send_lines(stream, list(filter(None, lines)), self.stall)
                if all(type(e) is TextChunk or type(e) is ThinkingChunk for e in events):
                    with anyio.move_on_after(VIEWER_FRAME):
                        await landmark.wait()
            if queue.overflowed:
                self.dropped += 1
                await _send_lines(stream, [marker("dropped", reason=(
                    f"this viewer fell more than {VIEWER_BACKLOG} events behind the run; "
                    "attach again to catch up"))], self.stall)
        except TimeoutError:
            self.dropped += 1  # the viewer took nothing for a while: stopped, or gone
        finally:
            bus.unsubscribe(queue)
            self.viewers -= 1
            self._viewer_left.set()

    async def let_viewers_finish(self) -> None:
        """Once the run has ended, give its viewers `FINISH_SECONDS` to be sent the end before
        the socket closes (a stopped viewer is not waited for longer)."""
        with anyio.move_on_after(FINISH_SECONDS):
            while self.viewers:
                self._viewer_left = anyio.Event()
                await self._viewer_left.wait()

    def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        controls = self.session.controls
        command = request.get("command")
        if command == "status":
            return {"ok": True, "protocol": PROTOCOL, "status": self._status()}
        if command == "interject":
            text, to = request.get("text"), request.get("to", "both")
            if not isinstance(text, str) or not text.strip():
                return {"ok": False, "error": "interject needs a non-empty text"}
            if not isinstance(to, str):
                return {"ok": False, "error": "to is the name of an agent, a, b or both"}
            try:
                names = self.session.spec.addressees(to)
            except UsageError as exc:
                return {"ok": False, "error": str(exc)}
            sent = controls.interject(text, to)
            accepted = (f"message for {' and '.join(names)} ({len(text)} characters), "
                        f"before {self._next_turn()}")
        elif command == "extend":
            turns = request.get("turns")
            if type(turns) is not int or not 1 <= turns <= MAX_TURNS:
                return {"ok": False, "error": f"extend needs a whole number of turns, from 1 to "
                        f"{MAX_TURNS}"}
            sent = controls.extend(turns)
            accepted = f"{turns} more turn{'s' * (turns != 1)}"
        elif command in ("pause", "resume", "step"):
            sent = getattr(controls, command)()
            accepted = _ACCEPTED[command]
        elif command == "stop":
            now = bool(request.get("now", False))
            sent = controls.stop(now=now)
            accepted = _ACCEPTED["stop now" if now else "stop"]
        else:
            return {"ok": False, "error": f"unknown command {str(command)[:40]!r}"}
        if not sent:
            return {"ok": False, "error": "the run has ended"}
        snapshot = self.session.snapshot()
        return {"ok": True, "accepted": f"{snapshot['pairing']} ({snapshot['run_id']}): "
                                        f"{accepted}"}

    def _status(self) -> dict[str, Any]:
        return {**self.session.snapshot(), "pid": os.getpid(), "viewers": self.viewers}

    def _next_turn(self) -> str:
        turns = self.session.snapshot().get("turns")
        return f"turn {turns + 1}" if isinstance(turns, int) else "the next turn"


async def _send(stream: SocketStream, reply: dict[str, Any]) -> None:
    with anyio.fail_after(IDLE_SECONDS):
        await send_line(stream, reply)


async def _send_lines(stream: SocketStream, lines: list[bytes], stall: float) -> None:
    """Send `lines` in blocks; a viewer that takes none of a block in `stall` seconds is given
    up on (TimeoutError)."""
    block: list[bytes] = []
    size = 0
    for line in lines:
        block.append(line)
        size += len(line)
        if size >= _HISTORY_BLOCK:
            with anyio.fail_after(stall):
                await stream.send(b"".join(block))
            block, size = [], 0
    if block:
        with anyio.fail_after(stall):
            await stream.send(b"".join(block))
