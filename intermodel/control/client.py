"""The client side of a run's control socket: `intermodel say`, `control` and `status`.

Nothing is sent to a socket served by another user (see `request`): who serves it is checked
first. Each request is one JSON line, answered by one JSON line (the protocol is described in
`intermodel.control.server`).
"""

from __future__ import annotations

import contextlib
import json
import os
import socket
import stat
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from intermodel.control.paths import peer_uid, runtime_dir, socket_path
from intermodel.control.registry import Registered, registered, registered_sockets
from intermodel.errors import IntermodelError
from intermodel.security.runid import is_run_id

__all__ = ["ForeignSocket", "NotListening", "find_batch", "find_socket", "live_runs",
           "registered_run", "request"]


class NotListening(IntermodelError):
    """No run answers on that socket (it ended, or crashed and left the file behind)."""


class ForeignSocket(IntermodelError):
    """The socket is served by another user: nothing is sent to it."""



def find_socket(transcript: str | Path, run_id: str) -> Path:
    """The socket of the run recorded in `transcript`: the private runtime dir first (a socket
    beside the transcript might have been planted there by someone else), then beside it."""
    for candidate in (runtime_dir() / f"{run_id}.sock", Path(f"{transcript}.sock")):
        if candidate.exists():
            return candidate
    return socket_path(transcript, run_id)


def registered_run(run_id: str) -> Path:
    """The socket of the live run (or batch) registered under `run_id`."""
    for found in registered():
        if found.id == run_id:
            return found.socket
    raise NotListening(f"no run {run_id} is in progress (see `intermodel status`)")


def find_batch(target: str) -> Registered | None:
    """The live batch `target` names: its experiment file (`experiments/NAME.toml`, or without
    `.toml`), the experiment's name, or the batch's id. None when no such batch is running."""
    batches = [found for found in registered() if found.kind == "batch"]
    wanted = {p for p in (_resolved(target), _resolved(f"{target}.toml")) if p is not None}
    for match in (lambda b: b.id == target, lambda b: _resolved(b.path) in wanted,
                  lambda b: b.name in (target, Path(target).stem)):
        hits = [b for b in batches if match(b)]
        if hits:
            return hits[0]
    return None


def _resolved(path: str) -> Path | None:
    try:
        return Path(path).resolve()
    except (OSError, RuntimeError, ValueError):
        return None


def request(path: Path, payload: dict[str, Any], timeout: float = 5.0, *,
            expected_uid: int | None = None) -> dict[str, Any]:
    """Send one request to a run's control socket (a plain blocking client). Nothing is sent
    unless the process serving the socket runs as `expected_uid` (by default, this user)."""
    expected = os.getuid() if expected_uid is None else expected_uid
    try:
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(timeout)
            client.connect(os.fspath(path))
            owner = peer_uid(client)
            if owner is None:  # no peer credentials here: the socket file's owner must do
                owner = os.stat(path).st_uid
            if owner != expected:
                raise ForeignSocket(f"{path} is served by another user (uid {owner}); nothing "
                                    "was sent to it. Someone may have replaced the run's socket.")
            # A busy run answers and hangs up without reading: its reply is still here to read.
            with contextlib.suppress(BrokenPipeError, ConnectionResetError):
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
    """The status of every registered run (`intermodel.control.registry`) and every run
    listening in `folders` or the runtime dir. Sockets that nobody answers on were left by runs
    that died; this user's are removed on sight. Sockets served by another user are not spoken
    to; `notes` gets a line for each."""
    seen: set[Path] = set()
    runtime = runtime_dir()
    candidates = [(None, path) for path in registered_sockets()] + [
        (folder, path) for folder in [runtime, *folders]
        for path in (sorted(folder.glob("*.sock")) if folder.is_dir() else [])]
    for folder, path in candidates:
        if path.resolve() in seen or (folder == runtime and not is_run_id(path.stem)):
            continue
        seen.add(path.resolve())
        try:
            reply = request(path, {"command": "status"}, timeout=2)
        except NotListening:
            with contextlib.suppress(OSError):
                found = path.lstat()
                if found.st_uid == os.getuid() and stat.S_ISSOCK(found.st_mode):
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
