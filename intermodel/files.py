"""Files intermodel writes beside transcripts: readable by their owner only, never through a link.

Exports (Markdown, HTML pages, the HTML index), the experiment manifest and the SQLite index hold
the conversations, like the transcripts they come from, so they are created mode 600. They often
land in folders other people can write to (a shared experiments folder), where a planted symbolic
link at `t.md` or at a predictable temporary name would otherwise make intermodel overwrite the
link's target. So:

- `write_private` writes a whole file aside, under a fresh random name, opened with
  `O_CREAT | O_EXCL | O_NOFOLLOW` (it cannot be an existing file or a link), then renames it over
  the destination. A rename replaces a link at the destination; it never writes through it. A
  reader never sees half a file.
- `create_private` makes an empty file the same way (mode 600, no link followed), for files that
  others (SQLite) then open by name.
"""

from __future__ import annotations

import contextlib
import os
import secrets
import stat
from pathlib import Path

from intermodel.errors import UsageError

__all__ = ["create_private", "refuse_link", "write_private"]

_NEW = os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC


def write_private(target: str | Path, text: str) -> Path:
    """Replace `target` with `text` (UTF-8), mode 600, atomically. Refuses (UsageError) a target
    that exists and is neither a regular file nor a link, such as a folder or a FIFO."""
    target = Path(target)
    found = _existing(target)
    if found is not None and not (stat.S_ISREG(found.st_mode) or stat.S_ISLNK(found.st_mode)):
        raise UsageError(f"cannot write {target}: it exists and is not a regular file")
    temporary, fd = _open_aside(target)
    try:
        with os.fdopen(fd, "w", encoding="utf-8") as file:
            file.write(text)
        os.replace(temporary, target)
    except OSError as exc:
        with contextlib.suppress(OSError):
            temporary.unlink()
        raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    return target


def _open_aside(target: Path) -> tuple[Path, int]:
    """A new file beside `target`, under a name nobody could have planted a link at."""
    for _ in range(20):
        temporary = target.with_name(f".{target.name}.{secrets.token_hex(6)}.tmp")
        try:
            return temporary, os.open(temporary, _NEW, 0o600)
        except FileExistsError:
            continue
        except OSError as exc:
            raise UsageError(f"cannot write {target}: {exc.strerror or exc}") from None
    raise UsageError(f"cannot write {target}: no free temporary name beside it")


def create_private(path: str | Path) -> bool:
    """Create `path` empty with mode 600 unless it exists; True when it was created. A link, or
    anything but a regular file, at `path` is refused (UsageError)."""
    path = Path(path)
    try:
        os.close(os.open(path, _NEW, 0o600))
        return True
    except FileExistsError:
        pass
    except OSError as exc:
        raise UsageError(f"cannot create {path}: {exc.strerror or exc}") from None
    refuse_link(path)
    return False


def refuse_link(path: str | Path) -> None:
    """UsageError if `path` exists and is not a regular file (a link, a folder, a FIFO)."""
    found = _existing(path)
    if found is None:
        return
    if stat.S_ISLNK(found.st_mode):
        raise UsageError(f"{path} is a symbolic link; intermodel does not write through links "
                         "(remove it, or choose another file)")
    if not stat.S_ISREG(found.st_mode):
        raise UsageError(f"{path} exists and is not a regular file")


def _existing(path: str | Path) -> os.stat_result | None:
    """What is at `path` itself (a link is not followed), or None when nothing is."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except OSError as exc:
        raise UsageError(f"cannot use {path}: {exc.strerror or exc}") from None
