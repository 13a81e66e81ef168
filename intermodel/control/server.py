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

The socket cannot take the run down: at most `MAX_CONNECTIONS` commands and `MAX_VIEWERS` viewers
are served at once, and never more than a quarter of the process's file descriptors in all, so the
run keeps enough for its own files, imports and provider connections (more are told the run is
busy). A connection that sends no request within `IDLE_SECONDS` is closed, and a failing `accept`
(the process is out of file descriptors) is waited out with a growing pause.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from intermodel.config.model import RunSpec
from intermodel.control.feed import Feed
from intermodel.control.paths import peer_uid, socket_path
from intermodel.control.registry import register, unregister
from intermodel.control.wire import PROTOCOL, encode_event, marker
from intermodel.engine.session import Session
from intermodel.errors import UsageError
from intermodel.security.bounds import MAX_TURNS
from intermodel.security.secrets import redact

__all__ = ["IDLE_SECONDS", "MAX_CONNECTIONS", "MAX_VIEWERS", "PROTOCOL", "VIEWER_BACKLOG",
           "ControlServer", "connection_cap"]

MAX_CONNECTIONS = 16  # commands being answered at once
MAX_VIEWERS = 16  # subscribed viewers at once
IDLE_SECONDS = 5.0  # to send a whole request line once connected
VIEWER_BACKLOG = 512  # events a viewer may lag behind (merged chunks count once)
VIEWER_STALL = 30.0  # seconds a viewer may take no data while some waits for it
VIEWER_FRAME = 0.02  # seconds events pile up between two sends to a viewer that keeps up
FINISH_SECONDS = 1.0  # a viewer may take to be sent the run's end once it has ended
_HISTORY_BLOCK = 256 * 1024  # bytes of history sent at once
_VIEWERS_BUSY = {"ok": False, "error": f"the run already has {MAX_VIEWERS} viewers; try again"}
_MAX_REQUEST = 64 * 1024
_ACCEPT_PAUSE = (0.05, 2.0)  # first and longest pause after a failed accept (EMFILE, ENFILE...)
_BUSY = {"ok": False, "error": "the run is busy with other control connections; try again"}
_ACCEPTED = {
    "pause": "pause (a streaming turn is finished first)",
    "resume": "resume",
    "step": "one more turn, then pause",
    "stop": "stop after the streaming turn",
    "stop now": "stop now (a streaming turn is discarded)",
}


def connection_cap(descriptor_limit: int) -> int:
    """How many connections are served at once under a soft limit of open file descriptors: a
    flood of connections must leave the run the descriptors it needs (a provider opens sockets,
    an import opens its file), so the socket takes at most a quarter, and always at least one."""
    if descriptor_limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, descriptor_limit // 4))


class ControlServer:
    """Serves one session's controls while it runs."""

    def __init__(self, session: Session[RunSpec], transcript: str | Path) -> None:
        self.session = session
        self.path = socket_path(transcript, session.run_id)
        self.transcript = transcript
        self.connections = 0  # being served now, viewers among them
        self.viewers = 0
        self.dropped = 0  # viewers cut off for lagging or stalling
        self.stall = VIEWER_STALL
        self._viewer_left = anyio.Event()
        self.cap = connection_cap(resource.getrlimit(resource.RLIMIT_NOFILE)[0])
        # From before the run starts: viewers get the whole history however early they come.
        self.feed = Feed(session.bus, transcript, session.bus.redactor)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left behind by a run that crashed
        listener = await anyio.create_unix_listener(self.path, mode=0o600)
        entry: Path | None = None
        try:
            # So that a bare `intermodel status` finds the run, wherever its transcript is.
            entry = register(self.session.run_id, self.path, self.transcript)
            async with listener, anyio.create_task_group() as tg:
                task_status.started()
                await self._accept(listener, tg)
        finally:
            if entry is not None:
                unregister(entry)
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _accept(self, listener: SocketListener, tg: TaskGroup) -> None:
        pause = _ACCEPT_PAUSE[0]
        while True:
            try:
                stream = await listener.accept()
            except anyio.BrokenResourceError as exc:
                if not isinstance(exc.__cause__, OSError):
                    raise
                # Out of file descriptors (or memory) for now: wait, the run goes on meanwhile.
                await anyio.sleep(pause)
                pause = min(pause * 2, _ACCEPT_PAUSE[1])
                continue
            pause = _ACCEPT_PAUSE[0]
            if self.connections >= self.cap:
                await _reply_and_close(stream, _BUSY)
                continue
            self.connections += 1
            tg.start_soon(self._handle, stream)

    async def _handle(self, stream: SocketStream) -> None:
        subscribing = False
        try:
            with anyio.move_on_after(IDLE_SECONDS * 2):  # reading, answering and sending
                uid = peer_uid(stream.extra(SocketAttribute.raw_socket))
                if uid is not None and uid != os.getuid():
                    return  # another user: no answer at all
                try:
                    with anyio.fail_after(IDLE_SECONDS):
                        line = await _read_line(stream)
                    request = json.loads(line)
                    # A viewer is served below, without the time limit of a command.
                    subscribing = (isinstance(request, dict)
                                   and request.get("command") == "subscribe")
                    reply = None if subscribing else self.answer(request)
                except TimeoutError:
                    return  # idle: nothing asked, nothing to answer
                except (ValueError, RecursionError) as exc:  # not JSON, or nested too deep
                    reply = {"ok": False, "error": f"bad request: {type(exc).__name__}"}
                if reply is not None:
                    await stream.send(json.dumps(_redacted(reply)).encode() + b"\n")
            if subscribing:
                await self._serve_viewer(stream)
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            pass  # the client went away: nothing to tell it
        finally:
            self.connections -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

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
            await _send_lines(stream, [json.dumps(_redacted(hello)).encode() + b"\n",
                                       *snapshot.lines], self.stall)
            present = [encode_event(event) for event in snapshot.present]
            await _send_lines(stream, [marker("live"), *filter(None, present)], self.stall)
            while await queue.wait():
                lines = [encode_event(event) for event in queue.drain()]
                await _send_lines(stream, list(filter(None, lines)), self.stall)
                await anyio.sleep(VIEWER_FRAME)
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


def _redacted(value: Any) -> Any:
    """A reply without secrets, whatever a request or the run's state put into it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: _redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_redacted(item) for item in value]
    return value


async def _send(stream: SocketStream, reply: dict[str, Any]) -> None:
    await _send_lines(stream, [json.dumps(_redacted(reply)).encode() + b"\n"], IDLE_SECONDS)


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


async def _reply_and_close(stream: SocketStream, reply: dict[str, Any]) -> None:
    with contextlib.suppress(anyio.BrokenResourceError, OSError), anyio.move_on_after(1):
        await stream.send(json.dumps(reply).encode() + b"\n")
    with anyio.CancelScope(shield=True):
        await stream.aclose()


async def _read_line(stream: SocketStream) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive()
        data += chunk
        if len(data) > _MAX_REQUEST:
            raise ValueError("request too large")
    return data.split(b"\n", 1)[0]


