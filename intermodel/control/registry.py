"""Every live run of this user, wherever its transcript is: a registry in the runtime dir.

A run that serves a control socket writes `<runtime dir>/runs/<run id>.json` (its socket, its
transcript and its process id) and removes it when it ends, so a bare `intermodel status` finds
runs whose sockets sit beside transcripts in any folder. A batch registers the same way under an id
of its own, with `"kind": "batch"`, its experiment's name and file (how `intermodel attach
experiments/NAME` finds it). The folder is private to the user (mode
700, like the runtime dir), but its entries are still read as untrusted: anything that is not a
regular file of this user with a run id for a name and a small JSON object inside — a link, a
file of another user, garbage — is ignored, never followed. Entries of runs that are gone (their
process has exited, or their socket is gone) are removed on sight.
"""

from __future__ import annotations

import contextlib
import json
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from intermodel.control.paths import runtime_dir
from intermodel.security.files import UnreadableFile, read_regular, write_private
from intermodel.security.runid import is_run_id

__all__ = ["Registered", "register", "registered", "registered_sockets", "registry_dir",
           "unregister"]

_MAX_ENTRY = 16 * 1024  # bytes of one entry: two paths and a number


def registry_dir() -> Path:
    folder = runtime_dir() / "runs"
    folder.mkdir(mode=0o700, exist_ok=True)
    return folder


@dataclass(frozen=True)
class Registered:
    """A live run or batch, as its entry says (untrusted: checked, never followed)."""

    id: str
    socket: Path
    pid: int
    kind: str = "run"  # or "batch"
    name: str = ""  # a batch's experiment
    path: str = ""  # a batch's experiment file; a run's transcript


def register(run_id: str, socket: Path, transcript: str | Path, *, kind: str = "run",
             name: str = "") -> Path:
    """Record a live run (or a batch: `kind`, its experiment's `name`, and its file in place of
    a transcript); returns the entry, for `unregister`."""
    entry = registry_dir() / f"{run_id}.json"
    record: dict[str, object] = {"run_id": run_id, "socket": os.fspath(socket),
                                 "transcript": os.fspath(transcript), "pid": os.getpid()}
    if kind != "run":
        record |= {"kind": kind, "name": name}
    write_private(entry, json.dumps(record))
    return entry


def unregister(entry: Path) -> None:
    with contextlib.suppress(OSError):
        entry.unlink()


def registered_sockets() -> list[Path]:
    """The sockets of the registered runs (and batches) that may still be alive."""
    return [found.socket for found in registered()]


def registered() -> list[Registered]:
    """The registered runs and batches that may still be alive."""
    found: list[Registered] = []
    try:
        entries = sorted(registry_dir().iterdir())
    except OSError:
        return []
    for entry in entries:
        if entry.suffix != ".json" or not is_run_id(entry.stem):
            continue
        try:
            info = entry.lstat()
        except OSError:
            continue
        if not stat.S_ISREG(info.st_mode) or info.st_uid != os.getuid():
            continue  # a link, a folder, another user's file: not ours to read or remove
        record = _read(entry)
        if record is None:
            continue
        if not _alive(record.pid) or not record.socket.exists():
            unregister(entry)  # the run is gone
            continue
        found.append(record)
    return found


def _read(entry: Path) -> Registered | None:
    """What an entry says, when it is well formed."""
    try:
        data = json.loads(read_regular(entry, limit=_MAX_ENTRY))
    except (UnreadableFile, OSError, ValueError, RecursionError):
        return None
    if not isinstance(data, dict) or data.get("run_id") != entry.stem:
        return None
    socket, pid = data.get("socket"), data.get("pid")
    if not isinstance(socket, str) or "\0" in socket or type(pid) is not int or pid <= 0:
        return None
    kind, name, path = data.get("kind", "run"), data.get("name", ""), data.get("transcript", "")
    if not all(isinstance(v, str) and len(v) <= 4096 for v in (kind, name, path)):
        return None
    return Registered(entry.stem, Path(socket), pid, kind, name, path)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, but another user's: the socket check decides
        return True
    except OverflowError:
        return False
    return True
