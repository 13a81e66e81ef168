"""A run's control socket: how `intermodel say`, `control` and `status` reach a run in progress.

A front end that drives a recorded run serves its socket for as long as the run goes on (where the
socket is: `intermodel.control.paths`; the client: `intermodel.control.client`). Both ends check
who is at the other end before anything is said. The socket is created mode 600 and the server
answers only connections from its own user (their peer credentials); a client sends nothing to a
socket served by another user. Each connection carries one JSON request line and gets one JSON
reply line, without secrets:

    {"command": "interject", "text": "...", "to": "a"}   ->  {"ok": true, "accepted": "..."}
    {"command": "status"}                                 ->  {"ok": true, "status": {...}}

`accepted` says in one line what the run took the request to mean (whom a message is for and
when they see it, the new budget...); `intermodel say` and `control` print it.

Commands: interject, pause, resume, step, stop, extend (with "turns"), status.

The socket cannot take the run down: at most `MAX_CONNECTIONS` are served at once, and never more
than a quarter of the process's file descriptors, so the run keeps enough for its own files,
imports and provider connections (more are told the run is busy). A connection that sends no
request within `IDLE_SECONDS` is closed, and a failing `accept` (the process is out of file
descriptors) is waited out with a growing pause.
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
from intermodel.control.paths import peer_uid, socket_path
from intermodel.control.registry import register, unregister
from intermodel.engine.session import Session
from intermodel.errors import UsageError
from intermodel.security.bounds import MAX_TURNS
from intermodel.security.secrets import redact

__all__ = ["IDLE_SECONDS", "MAX_CONNECTIONS", "ControlServer", "connection_cap"]

MAX_CONNECTIONS = 16
IDLE_SECONDS = 5.0  # to send a whole request line once connected
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
        self.connections = 0  # being served now
        self.cap = connection_cap(resource.getrlimit(resource.RLIMIT_NOFILE)[0])

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
        try:
            with anyio.move_on_after(IDLE_SECONDS * 2):  # reading, answering and sending
                uid = peer_uid(stream.extra(SocketAttribute.raw_socket))
                if uid is not None and uid != os.getuid():
                    return  # another user: no answer at all
                try:
                    with anyio.fail_after(IDLE_SECONDS):
                        line = await _read_line(stream)
                    reply = self.answer(json.loads(line))
                except TimeoutError:
                    return  # idle: nothing asked, nothing to answer
                except (ValueError, RecursionError) as exc:  # not JSON, or nested too deep
                    reply = {"ok": False, "error": f"bad request: {type(exc).__name__}"}
                await stream.send(json.dumps(_redacted(reply)).encode() + b"\n")
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            pass  # the client went away: nothing to tell it
        finally:
            self.connections -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        controls = self.session.controls
        command = request.get("command")
        if command == "status":
            return {"ok": True, "status": {**self.session.snapshot(), "pid": os.getpid()}}
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


