"""Reading files that someone else may have named: regular files only, never waiting on one.

A name found in a transcript folder or written in a pairing file can point at a FIFO (a reader
waits until someone writes to it, possibly forever), a device (`/dev/zero` never ends) or a folder.
Files are therefore opened without blocking and checked by what was opened — the descriptor, not
the name, so nothing can be swapped in between the check and the read — and refused unless they
are regular files. Symbolic links are followed: a link to a transcript is a transcript.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO

__all__ = ["UnreadableFile", "open_regular", "read_regular"]


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
