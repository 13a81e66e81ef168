"""Steering a headless run from another terminal: `intermodel say`, `control` and `status`.

A recorded run listens on a Unix socket. It sits beside the transcript (`<transcript>.sock`) when
the transcript folder is private: owned by the user who runs it (or root), writable by nobody else,
inside folders nobody else can rename. Anywhere else (a shared or world-writable folder, where
another user could plant or replace the socket), and when that path is too long for a socket, it
goes in `<runtime dir>/intermodel/<run id>.sock`, where the runtime dir is $XDG_RUNTIME_DIR or
/tmp/intermodel-<uid>, mode 700. Clients look in the runtime dir first, then beside the transcript.

Both ends check who is at the other end before anything is said. The socket is created mode 600
and the server answers only connections from its own user (their peer credentials); a client
sends nothing to a socket served by another user. Each connection carries one JSON request line
and gets one JSON reply line, without secrets:

    {"command": "interject", "text": "...", "to": "a"}   ->  {"ok": true}
    {"command": "status"}                                 ->  {"ok": true, "status": {...}}

Commands: interject, pause, resume, step, stop, extend (with "turns"), status.

The socket cannot take the run down: at most `MAX_CONNECTIONS` are served at once (more are told
the run is busy), a connection that sends no request within `IDLE_SECONDS` is closed, and a failing
`accept` (the process is out of file descriptors) is waited out with a growing pause.
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
import struct
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from intermodel.engine.session import Session
from intermodel.errors import IntermodelError, UsageError
from intermodel.security.bounds import MAX_TURNS
from intermodel.security.runid import checked_run_id, is_run_id
from intermodel.security.secrets import redact

__all__ = [
    "IDLE_SECONDS",
    "MAX_CONNECTIONS",
    "ControlServer",
    "ForeignSocket",
    "NotListening",
    "find_socket",
    "live_runs",
    "request",
    "runtime_dir",
    "socket_path",
]


class NotListening(IntermodelError):
    """No run answers on that socket (it ended, or crashed and left the file behind)."""


class ForeignSocket(IntermodelError):
    """The socket is served by another user: nothing is sent to it."""


MAX_CONNECTIONS = 16
IDLE_SECONDS = 5.0  # to send a whole request line once connected
_MAX_REQUEST = 64 * 1024
_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin
_ACCEPT_PAUSE = (0.05, 2.0)  # first and longest pause after a failed accept (EMFILE, ENFILE...)
_BUSY = {"ok": False, "error": "the run is busy with other control connections; try again"}


def runtime_dir() -> Path:
    base = os.environ.get("XDG_RUNTIME_DIR")
    folder = Path(base) / "intermodel" if base else \
        Path(tempfile.gettempdir()) / f"intermodel-{os.getuid()}"
    folder.mkdir(mode=0o700, parents=True, exist_ok=True)
    info = folder.lstat()
    if info.st_uid != os.getuid() or not stat.S_ISDIR(info.st_mode):
        raise UsageError(f"{folder} belongs to another user; set XDG_RUNTIME_DIR")
    if stat.S_IMODE(info.st_mode) != 0o700:
        folder.chmod(0o700)  # ours, but made with a looser umask or changed since
    return folder


def private_folder(folder: Path) -> bool:
    """Whether nobody but its owner (the current user, or root) can add, remove or replace a
    file in `folder`: it is not writable by group or others, and no folder above it lets another
    user rename it (writable by others without the sticky bit)."""
    me = os.getuid()
    try:
        info = folder.stat()
        if info.st_uid not in (me, 0) or info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
            return False
        for parent in folder.resolve().parents:
            above = parent.stat()
            if above.st_uid not in (me, 0):
                return False
            if above.st_mode & (stat.S_IWGRP | stat.S_IWOTH) and not above.st_mode & stat.S_ISVTX:
                return False
    except OSError:
        return False
    return True


def socket_path(transcript: str | Path, run_id: str) -> Path:
    """Where a run with this transcript listens."""
    checked_run_id(run_id, str(transcript))  # it may name a file in the runtime dir
    beside = Path(f"{transcript}.sock")
    if len(os.fsencode(beside)) <= _MAX_SOCKET_PATH and private_folder(beside.parent):
        return beside
    return runtime_dir() / f"{run_id}.sock"


def find_socket(transcript: str | Path, run_id: str) -> Path:
    """The socket of the run recorded in `transcript`: the private runtime dir first (a socket
    beside the transcript might have been planted there by someone else), then beside it."""
    for candidate in (runtime_dir() / f"{run_id}.sock", Path(f"{transcript}.sock")):
        if candidate.exists():
            return candidate
    return socket_path(transcript, run_id)


def _peer_uid(raw: socket.socket) -> int | None:
    """The user id of the process at the other end of a connected Unix socket (None where the
    platform cannot tell)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    data = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)


class ControlServer:
    """Serves one dialogue's controls while it runs."""

    def __init__(self, dialogue: Session, transcript: str | Path) -> None:
        self.dialogue = dialogue
        self.path = socket_path(transcript, dialogue.run_id)
        self.connections = 0  # being served now

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()  # left behind by a run that crashed
        listener = await anyio.create_unix_listener(self.path, mode=0o600)
        try:
            async with listener, anyio.create_task_group() as tg:
                task_status.started()
                await self._accept(listener, tg)
        finally:
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
            if self.connections >= MAX_CONNECTIONS:
                await _reply_and_close(stream, _BUSY)
                continue
            self.connections += 1
            tg.start_soon(self._handle, stream)

    async def _handle(self, stream: SocketStream) -> None:
        try:
            with anyio.move_on_after(IDLE_SECONDS * 2):  # reading, answering and sending
                uid = _peer_uid(stream.extra(SocketAttribute.raw_socket))
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
        controls = self.dialogue.controls
        command = request.get("command")
        if command == "status":
            return {"ok": True, "status": {**self.dialogue.snapshot(), "pid": os.getpid()}}
        if command == "interject":
            text, to = request.get("text"), request.get("to", "both")
            if not isinstance(text, str) or not text.strip():
                return {"ok": False, "error": "interject needs a non-empty text"}
            names = self.dialogue.pairing.agent_names
            if not isinstance(to, str) or to.lower() not in {"a", "b", "both",
                                                             *(n.lower() for n in names)}:
                return {"ok": False, "error": f"to must be a, b, both, {names[0]} or {names[1]}"}
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
            return {"ok": False, "error": f"unknown command {str(command)[:40]!r}"}
        return {"ok": True} if sent else {"ok": False, "error": "the run has ended"}


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


def request(path: Path, payload: dict[str, Any], timeout: float = 5.0, *,
            expected_uid: int | None = None) -> dict[str, Any]:
    """Send one request to a run's control socket (a plain blocking client). Nothing is sent
    unless the process serving the socket runs as `expected_uid` (by default, this user)."""
    expected = os.getuid() if expected_uid is None else expected_uid
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(os.fspath(path))
            owner = _peer_uid(client)
            if owner is None:  # no peer credentials here: the socket file's owner must do
                owner = os.stat(path).st_uid
            if owner != expected:
                raise ForeignSocket(f"{path} is served by another user (uid {owner}); nothing "
                                    "was sent to it. Someone may have replaced the run's socket.")
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


def live_runs(folders: list[Path], notes: list[str] | None = None) -> Iterator[dict[str, Any]]:
    """The status of every run listening in `folders` or the runtime dir. Sockets that nobody
    answers on were left by runs that died; this user's are removed on sight. Sockets served by
    another user are not spoken to; `notes` gets a line for each."""
    seen: set[Path] = set()
    runtime = runtime_dir()
    for folder in [runtime, *folders]:
        for path in sorted(folder.glob("*.sock")) if folder.is_dir() else []:
            if path.resolve() in seen or (folder == runtime and not is_run_id(path.stem)):
                continue
            seen.add(path.resolve())
            try:
                reply = request(path, {"command": "status"}, timeout=2)
            except NotListening:
                with contextlib.suppress(OSError):
                    if path.lstat().st_uid == os.getuid():
                        path.unlink()
                continue
            except ForeignSocket as exc:
                if notes is not None:
                    notes.append(str(exc))
                continue
            except IntermodelError:
                continue  # alive but not answering in time: leave it be
            if reply.get("ok"):
                yield {**reply["status"], "socket": str(path)}
