"""A Unix socket that answers its own user in JSON lines: what a run's control socket
(`intermodel.control.server`) and a batch's (`intermodel.experiment.control`) share.

The socket is created mode 600 and registered in the runtime dir's registry while it serves;
only connections from the server's own user (their peer credentials) get an answer. A connection
sends one request line; `answer` gives the one reply line, or `keeps` says the connection stays
open and `keep` serves it (a viewer of a run). The socket cannot take its process down: at most
`cap` connections are served at once (`connection_cap`: never more than a quarter of the
process's file descriptors), more are told it is busy; a connection that sends no request within
`IDLE_SECONDS` is closed; a failing `accept` (out of file descriptors) is waited out with a
growing pause.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
from abc import ABC, abstractmethod
from pathlib import Path
from typing import Any, ClassVar

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from intermodel.control.paths import peer_uid
from intermodel.control.registry import unregister
from intermodel.security.secrets import redact

__all__ = ["IDLE_SECONDS", "MAX_CONNECTIONS", "LineServer", "connection_cap", "redacted",
           "send_line"]

MAX_CONNECTIONS = 32  # served at once, viewers of a run among them
IDLE_SECONDS = 5.0  # to send a whole request line once connected
_MAX_REQUEST = 64 * 1024
_ACCEPT_PAUSE = (0.05, 2.0)  # first and longest pause after a failed accept (EMFILE, ENFILE...)


def connection_cap(descriptor_limit: int) -> int:
    """How many connections are served at once under a soft limit of open file descriptors: a
    flood of connections must leave the process the descriptors it needs (a provider opens
    sockets, an import opens its file), so the socket takes at most a quarter, and always at
    least one."""
    if descriptor_limit == resource.RLIM_INFINITY:
        return MAX_CONNECTIONS
    return max(1, min(MAX_CONNECTIONS, descriptor_limit // 4))


def redacted(value: Any) -> Any:
    """A reply without secrets, whatever a request or the process's state put into it."""
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {key: redacted(item) for key, item in value.items()}
    if isinstance(value, list):
        return [redacted(item) for item in value]
    return value


async def send_line(stream: SocketStream, reply: dict[str, Any]) -> None:
    await stream.send(json.dumps(redacted(reply)).encode() + b"\n")


class LineServer(ABC):
    """Serves `path` until cancelled. Subclasses say what a request is answered with."""

    busy: ClassVar[dict[str, Any]] = {"ok": False, "error": "busy; try again"}

    def __init__(self, path: Path) -> None:
        self.path = path
        self.connections = 0  # being served now
        self.cap = connection_cap(resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    @abstractmethod
    def register(self) -> Path:
        """Enter the socket in the registry (so `intermodel status` finds it); the entry."""

    @abstractmethod
    def answer(self, request: Any) -> dict[str, Any]:
        """The reply to one request (any JSON value: check it)."""

    def keeps(self, request: Any) -> bool:
        """Whether `request` keeps its connection open, to be served by `keep`."""
        return False

    async def keep(self, stream: SocketStream, request: Any) -> None:  # noqa: B027 - optional
        """Serve a connection kept open (no time limit but the subclass's own)."""

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left behind by a process that crashed
        listener = await anyio.create_unix_listener(self.path, mode=0o600)
        entry: Path | None = None
        try:
            entry = self.register()
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
                # Out of file descriptors (or memory) for now: wait; the process goes on.
                await anyio.sleep(pause)
                pause = min(pause * 2, _ACCEPT_PAUSE[1])
                continue
            pause = _ACCEPT_PAUSE[0]
            if self.connections >= self.cap:
                await _reply_and_close(stream, self.busy)
                continue
            self.connections += 1
            tg.start_soon(self._handle, stream)

    async def _handle(self, stream: SocketStream) -> None:
        kept: tuple[Any] | None = None
        try:
            with anyio.move_on_after(IDLE_SECONDS * 2):  # reading, answering and sending
                uid = peer_uid(stream.extra(SocketAttribute.raw_socket))
                if uid is not None and uid != os.getuid():
                    return  # another user: no answer at all
                reply: dict[str, Any] | None
                try:
                    with anyio.fail_after(IDLE_SECONDS):
                        line = await _read_line(stream)
                    request = json.loads(line)
                    if self.keeps(request):
                        kept, reply = (request,), None
                    else:
                        reply = self.answer(request)
                except TimeoutError:
                    return  # idle: nothing asked, nothing to answer
                except (ValueError, RecursionError) as exc:  # not JSON, or nested too deep
                    reply = {"ok": False, "error": f"bad request: {type(exc).__name__}"}
                if reply is not None:
                    await send_line(stream, reply)
            if kept is not None:
                await self.keep(stream, kept[0])
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            pass  # the client went away: nothing to tell it
        finally:
            self.connections -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()


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
