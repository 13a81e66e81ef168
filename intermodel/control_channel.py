"""Steering a headless run from another terminal: `intermodel say`, `control` and `status`.

A recorded run listens on a Unix socket beside its transcript (`<transcript>.sock`; when that
path is too long for a socket, `<runtime dir>/intermodel/<run id>.sock`, where the runtime dir is
$XDG_RUNTIME_DIR or /tmp/intermodel-<uid>, mode 700). The socket is created mode 600 and every
connection's peer credentials are checked, so only the user who started the run can steer it.
Each connection carries one JSON request line and gets one JSON reply line:

    {"command": "interject", "text": "...", "to": "a"}   ->  {"ok": true}
    {"command": "status"}                                 ->  {"ok": true, "status": {...}}

Commands: interject, pause, resume, step, stop, extend (with "turns"), status.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketStream, TaskStatus

from intermodel.bounds import MAX_TURNS
from intermodel.errors import IntermodelError, UsageError
from intermodel.runid import checked_run_id, is_run_id
from intermodel.session import Session

__all__ = ["ControlServer", "NotListening", "live_runs", "request", "runtime_dir", "socket_path"]


class NotListening(IntermodelError):
    """No run answers on that socket (it ended, or crashed and left the file behind)."""

_MAX_REQUEST = 64 * 1024
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "intermodel" if base else \
        Path(tempfile.gettempdir()) / f"intermodel-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    if folder.stat().st_uid != os.getuid():
        raise UsageError(f"{folder} belongs to another user; set XDG_RUNTIME_DIR")
    return folder


def socket_path(transcript: str | Path, run_id: str) -> Path:
    checked_run_id(run_id, str(transcript))  # it may name a file in the runtime dir
    beside = Path(f"{transcript}.sock")
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH:
        return beside
    return runtime_dir() / f"{run_id}.sock"


def _peer_uid(stream: SocketStream) -> int | None:
    raw: socket.socket = stream.extra(SocketAttribute.raw_socket)
    if not hasattr(socket, "SO_PEERCRED"):
        return None  # not Linux: the socket's mode 600 is the guard
    data = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)


class ControlServer:
    """Serves one dialogue's controls while it runs."""

    def __init__(self, dialogue: Session, transcript: str | Path) -> None:
        self.dialogue = dialogue
        self.path = socket_path(transcript, dialogue.run_id)

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left behind by a run that crashed
        listener = await anyio.create_unix_listener(self.path, mode=0o600)
        try:
            async with listener:
                task_status.started()
                await listener.serve(self._handle)
        finally:
            with contextlib.suppress(OSError):
                self.path.unlink()

    async def _handle(self, stream: SocketStream) -> None:
        async with stream:
            uid = _peer_uid(stream)
            if uid is not None and uid != os.getuid():
                return  # another user: no answer at all
            try:
                with anyio.fail_after(5):
                    line = await _read_line(stream)
                reply = self.answer(json.loads(line))
            except (ValueError, TimeoutError) as exc:
                reply = {"ok": False, "error": f"bad request: {exc}"}
            await stream.send(json.dumps(reply).encode() + b"\n")

    def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        controls = self.dialogue.controls
        command = request.get("command")
        if command == "status":
            return {"ok": True, "status": {**self.dialogue.snapshot(), "pid": os.getpid()}}
        if command == "interject":
            text, to = request.get("text"), str(request.get("to", "both"))
            if not isinstance(text, str) or not text.strip():
                return {"ok": False, "error": "interject needs a non-empty text"}
            names = self.dialogue.pairing.agent_names
            if to.lower() not in {"a", "b", "both", *(n.lower() for n in names)}:
                return {"ok": False, "error": f"--to must be a, b, both, {names[0]} or {names[1]}"}
            sent = controls.interject(text, to)
        elif command == "extend":
            turns = request.get("turns")
            if type(turns) is not int or not 1 <= turns <= MAX_TURNS:
                return {"ok": False, "error": f"extend needs a whole number of turns, from 1 to "
                        f"{MAX_TURNS}"}
            sent = controls.extend(turns)
        elif command in ("pause", "resume", "step"):
            sent = getattr(controls, command)()
        elif command == "stop":
            sent = controls.stop(now=bool(request.get("now", False)))
        else:
            return {"ok": False, "error": f"unknown command {command!r}"}
        return {"ok": True} if sent else {"ok": False, "error": "the run has ended"}


async def _read_line(stream: SocketStream) -> bytes:
    data = b""
    while b"\n" not in data:
        chunk = await stream.receive()
        data += chunk
        if len(data) > _MAX_REQUEST:
            raise ValueError("request too large")
    return data.split(b"\n", 1)[0]


def request(path: Path, payload: dict[str, Any], timeout: float = 5.0) -> dict[str, Any]:
    """Send one request to a run's control socket (a plain blocking client)."""
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(os.fspath(path))
            client.sendall(json.dumps(payload).encode() + b"\n")
            data = b""
            while not data.endswith(b"\n"):
                chunk = client.recv(65536)
                if not chunk:
                    break
                data += chunk
    except (FileNotFoundError, ConnectionRefusedError) as exc:
        raise NotListening(f"no run is listening on {path} ({exc.strerror})") from None
    except OSError as exc:
        raise IntermodelError(f"cannot reach the run at {path}: {exc}") from None
    try:
        reply: dict[str, Any] = json.loads(data)
    except ValueError:
        raise IntermodelError(f"the run at {path} gave no answer") from None
    return reply


def live_runs(folders: list[Path]) -> Iterator[dict[str, Any]]:
    """The status of every run listening in `folders` or the runtime dir. Sockets that nobody
    answers on were left by runs that died; they are removed on sight."""
    seen: set[Path] = set()
    runtime = runtime_dir()
    for folder in [*folders, runtime]:
        for path in sorted(folder.glob("*.sock")) if folder.is_dir() else []:
            if path.resolve() in seen or (folder == runtime and not is_run_id(path.stem)):
                continue
            seen.add(path.resolve())
            try:
                reply = request(path, {"command": "status"}, timeout=2)
            except NotListening:
                with contextlib.suppress(OSError):
                    path.unlink()
                continue
            except IntermodelError:
                continue  # alive but not answering in time: leave it be
            if reply.get("ok"):
                yield {**reply["status"], "socket": str(path)}

