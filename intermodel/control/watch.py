"""Watching and steering a run in another process: the viewer's side of its control socket.

`Watch.serve` subscribes (see `intermodel.control.server`) and hands every event the run
publishes to a callback, starting with its history; `command` sends one control request. Both
check who serves the socket before sending anything: a socket of another user is never spoken to.
Everything the run sends is read as untrusted (`intermodel.control.wire.StreamReader`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream
from anyio.streams.buffered import BufferedByteReceiveStream

from intermodel.control.client import ForeignSocket, NotListening
from intermodel.control.paths import socket_owner
from intermodel.control.wire import MAX_LINE, PROTOCOL, StreamInvalid, StreamReader
from intermodel.engine.events import Event
from intermodel.errors import IntermodelError
from intermodel.records import RunEnd

__all__ = ["CONNECT_SECONDS", "Watch", "command"]

CONNECT_SECONDS = 5.0  # to connect and be answered
_MAX_REPLY = 1024 * 1024  # bytes of a command's reply or a stream's hello


async def _connect(path: Path) -> SocketStream:
    try:
        stream = await anyio.connect_unix(path)
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NotListening(f"no run is listening on {path} ({exc.strerror})") from None
    except OSError as exc:
        raise IntermodelError(f"cannot reach the run at {path}: {exc}") from None
    try:
        owner = socket_owner(stream.extra(SocketAttribute.raw_socket), path)
    except OSError as exc:
        await stream.aclose()
        raise IntermodelError(f"cannot reach the run at {path}: {exc}") from None
    if owner != os.getuid():
        await stream.aclose()
        raise ForeignSocket(f"{path} is served by another user (uid {owner}); nothing was sent "
                            "to it. Someone may have replaced the run's socket.")
    return stream


def _reply(data: bytes, path: Path) -> dict[str, Any]:
    try:
        reply = json.loads(data)
    except (ValueError, RecursionError):
        reply = None
    if not isinstance(reply, dict):
        raise IntermodelError(f"the run at {path} gave no answer")
    return reply


async def command(path: Path, payload: dict[str, Any]) -> dict[str, Any]:
    """Send one control request to the run at `path` and return its reply."""
    with anyio.fail_after(CONNECT_SECONDS):
        stream = await _connect(path)
        async with stream:
            await stream.send(json.dumps(payload).encode() + b"\n")
            try:
                line = await BufferedByteReceiveStream(stream).receive_until(b"\n", _MAX_REPLY)
            except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound,
                    anyio.BrokenResourceError, OSError):
                raise IntermodelError(f"the run at {path} gave no answer") from None
    return _reply(line, path)


class Watch:
    """A subscription to the run at `socket`. `transcript` is where that run writes (shown on
    screen); `announce_turns` as in `StreamReader`."""

    def __init__(self, socket: Path, transcript: str | None = None, *,
                 announce_turns: bool = True) -> None:
        self.socket = socket
        self.reader = StreamReader(transcript, announce_turns=announce_turns)
        self.status: dict[str, Any] = {}  # the run's status when it answered
        self._stream: SocketStream | None = None
        self._stopped = False

    @property
    def end(self) -> RunEnd | None:
        """How the run ended, once it has."""
        return self.reader.end

    @property
    def dropped(self) -> str | None:
        """Why the run cut this viewer off (it fell too far behind), if it did."""
        return self.reader.dropped

    async def serve(self, publish: Callable[[Event], None]) -> None:
        """Publish the run's history, then its events, until the run ends, the connection does
        or `stop` is called. Raises an `IntermodelError` when the run cannot be reached or
        refuses."""
        with anyio.fail_after(CONNECT_SECONDS):
            stream = self._stream = await _connect(self.socket)
        if self._stopped:
            self.stop()
        async with stream:
            lines = BufferedByteReceiveStream(stream)
            with anyio.fail_after(CONNECT_SECONDS):
                await stream.send(json.dumps({"command": "subscribe",
                                              "protocol": PROTOCOL}).encode() + b"\n")
                try:
                    hello = _reply(await lines.receive_until(b"\n", _MAX_REPLY), self.socket)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.DelimiterNotFound):
                    raise IntermodelError(f"the run at {self.socket} gave no answer") from None
            self._greet(hello)
            while True:
                try:
                    line = await lines.receive_until(b"\n", MAX_LINE)
                except (anyio.EndOfStream, anyio.IncompleteRead, anyio.BrokenResourceError,
                        ConnectionResetError):
                    return  # the run ended (its end was the last line), or its process did
                except anyio.DelimiterNotFound:
                    raise StreamInvalid("the run sent a line of more than "
                                        f"{MAX_LINE // 1024 // 1024} MiB") from None
                for event in self.reader.read(line):
                    publish(event)

    def stop(self) -> None:
        """Stop watching: `serve` returns as if the run had hung up. (The connection is shut
        down rather than a pending read cancelled: on asyncio, a read cancelled while its
        socket turns readable fails inside the event loop.)"""
        self._stopped = True
        if self._stream is not None:
            with contextlib.suppress(OSError):
                self._stream.extra(SocketAttribute.raw_socket).shutdown(socket.SHUT_RDWR)

    def _greet(self, hello: dict[str, Any]) -> None:
        if not hello.get("ok"):
            error = hello.get("error")
            if not isinstance(error, str):
                error = "no reason given"
            if "unknown command" in error:  # a run of a version before attaching existed
                error = "this run is from a version of intermodel that cannot be attached to"
            raise IntermodelError(f"the run refused to be watched: {error[:300]}")
        protocol = hello.get("protocol")
        if protocol != PROTOCOL:
            raise IntermodelError(f"the run speaks control protocol {str(protocol)[:20]}, this "
                                  f"viewer {PROTOCOL}: attach with the same version of "
                                  "intermodel")
        status = hello.get("status")
        self.status = status if isinstance(status, dict) else {}
