"""Files others may have named or planted: read only regular files, never write through a link.

Reading. A name found in a transcript folder or written in a pairing file can point at a FIFO (a
reader waits until someone writes to it, possibly forever), a device (`/dev/zero` never ends) or a
folder. Files are therefore opened without blocking and checked by what was opened — the
descriptor, not the name, so nothing can be swapped in between the check and the read — and
refused unless they are regular files. Symbolic links are followed: a link to a transcript is a
transcript.

Writing. Exports (Markdown, HTML pages, the HTML index), the experiment manifest and the SQLite
index hold the conversations, like the transcripts they come from, so they are created mode 600.
They often land in folders other people can write to (a shared experiments folder), where a planted
symbolic link at `t.md` or at a predictable temporary name would otherwise make intermodel
overwrite the link's target. So:

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
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

from intermodel.errors import UsageError

__all__ = ["UnreadableFile", "create_private", "open_regular", "read_regular", "refuse_link",
           "write_private"]


class UnreadableFile(Exception):
    """A file that cannot be read, or that is not a regular file; the message says why."""


_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"),
          (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


@contextmanager
def open_regular(path: str | Path) -> Iterator[BinaryIO]:
    """The regular file `path`, open for reading in binary mode."""
    try:
        # O_NONBLOCK: opening a FIFO that no one writes to returns at once instead of waiting.
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise UnreadableFile(exc.strerror or str(exc)) from None
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            kind = next((name for test, name in _KINDS if test(mode)), "a special file")
            raise UnreadableFile(f"not a regular file (it is {kind})")
        os.set_blocking(fd, True)
        file = os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise
    with file:
        yield file


def read_regular(path: str | Path, *, limit: int | None = None) -> bytes:
    """The whole content of the regular file `path`; refused when it holds more than `limit`
    bytes (checked while reading too, for a file that grows)."""
    with open_regular(path) as file:
        try:
            if limit is not None and os.fstat(file.fileno()).st_size > limit:
                raise UnreadableFile(f"larger than {_size(limit)}")
            data = file.read() if limit is None else file.read(limit + 1)
        except OSError as exc:
            raise UnreadableFile(exc.strerror or str(exc)) from None
    if limit is not None and len(data) > limit:
        raise UnreadableFile(f"larger than {_size(limit)}")
    return data


def _size(limit: int) -> str:
    if limit % 1_048_576 == 0:
        return f"{limit // 1_048_576} MiB"
    return f"{limit} bytes"


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
