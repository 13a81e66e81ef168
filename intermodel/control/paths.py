"""Where a run's control socket is, and who is at the other end of one.

A recorded run listens beside its transcript (`<transcript>.sock`) when the transcript folder is
private: owned by the user who runs it (or root), writable by nobody else, inside folders nobody
else can rename. Anywhere else (a shared or world-writable folder, where another user could plant
or replace the socket), and when that path is too long for a socket, it listens in
`<runtime dir>/intermodel/<run id>.sock`, where the runtime dir is $XDG_RUNTIME_DIR or
/tmp/intermodel-<uid>, mode 700. Clients look in the runtime dir first, then beside the transcript.
"""

from __future__ import annotations

import os
import socket
import stat
import struct
import tempfile
from pathlib import Path

from intermodel.errors import UsageError
from intermodel.security.runid import checked_run_id

__all__ = ["peer_uid", "private_folder", "runtime_dir", "socket_owner", "socket_path"]

_MAX_SOCKET_PATH = 100  # sun_path holds 108 bytes; keep a margin


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


def peer_uid(raw: socket.socket) -> int | None:
    """The user id of the process at the other end of a connected Unix socket (None where the
    platform cannot tell)."""
    if not hasattr(socket, "SO_PEERCRED"):
        return None
    data = raw.getsockopt(socket.SOL_SOCKET, socket.SO_PEERCRED, struct.calcsize("3i"))
    _pid, uid, _gid = struct.unpack("3i", data)
    return int(uid)


def socket_owner(raw: socket.socket, path: Path) -> int:
    """Who serves the Unix socket `raw` is connected to (at `path`): the peer's user id, or
    where the platform cannot tell, the socket file's owner."""
    owner = peer_uid(raw)
    return os.stat(path).st_uid if owner is None else owner
