"""Append-only JSON Lines transcripts, one file per run.

The writer takes records (`intermodel.records`): a `Header` first, or the `Resumption` of a run it
continues, then whatever the run records. Each is written with a single `write` on a file opened
for appending, then flushed and fsynced before the run goes on, so a crash loses at most the turn
that was streaming. File names start with the UTC start time, so a folder of runs sorts by time,
followed by the pairing name and a short run id.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import anyio

from intermodel.config.digest import canonical_digest
from intermodel.errors import TranscriptError
from intermodel.records import Header, Record, record_to_json
from intermodel.security.secrets import Redactor
from intermodel.transcript.versions import versions

__all__ = ["FORMAT_VERSION", "TranscriptWriter", "config_hash", "header_json", "to_json",
           "transcript_name"]

FORMAT_VERSION = 1
_SLUG = re.compile(r"[^A-Za-z0-9._-]+")


def transcript_name(pairing_name: str, run_id: str, started: datetime | None = None) -> str:
    started = started or datetime.now(UTC)
    slug = _SLUG.sub("-", pairing_name).strip("-")[:60] or "run"
    return f"{started:%Y%m%d-%H%M%S}-{slug}-{run_id[:6]}.jsonl"


class TranscriptWriter:
    """A recorder (see `intermodel.engine.session`): one transcript line per record."""

    def __init__(self, path: Path, *, redactor: Redactor | None = None) -> None:
        self.path = path
        self._redact = redactor or Redactor()
        self._fd: int | None = None

    @classmethod
    def create(cls, directory: str | Path, name: str, run_id: str, *,
               redactor: Redactor | None = None) -> TranscriptWriter:
        """A new transcript in `directory`, named after the run's start, `name` (the pairing's
        or panel's) and `run_id`."""
        folder = Path(directory)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise TranscriptError(
                f"cannot create transcript folder {folder}: {exc.strerror}") from None
        writer = cls(folder / transcript_name(name, run_id), redactor=redactor)
        writer.open(new=True)
        return writer

    @classmethod
    def reopen(cls, path: str | Path, *, redactor: Redactor | None = None
               ) -> tuple[TranscriptWriter, int]:
        """Open an existing transcript to continue it. An incomplete last record (the process
        died mid-write) is cut off first, so new records start on a line of their own; returns
        the writer and how many bytes were cut."""
        writer = cls(Path(path), redactor=redactor)
        writer.open(new=False)
        assert writer._fd is not None
        try:
            size = os.fstat(writer._fd).st_size
            with open(writer.path, "rb") as reader:
                data = reader.read()
            keep = data.rfind(b"\n") + 1
            if keep < size:
                os.ftruncate(writer._fd, keep)
        except OSError as exc:
            writer.close()
            raise TranscriptError(f"cannot repair transcript {path}: {exc.strerror}") from None
        return writer, size - keep

    def open(self, *, new: bool = False) -> None:
        flags = os.O_WRONLY | os.O_APPEND | (os.O_CREAT | os.O_EXCL if new else 0)
        try:
            # Transcripts may hold private conversations: readable by their owner only.
            fd = os.open(self.path, flags, 0o600)
        except OSError as exc:
            raise TranscriptError(f"cannot open transcript {self.path}: {exc.strerror}") from None
        try:
            # One writer per transcript. The lock dies with its process, so a crashed run can be
            # resumed at once, while a live one cannot be written to twice.
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            raise TranscriptError(f"{self.path} belongs to a run in progress (another intermodel "
                                  "process is writing it)") from None
        self._fd = fd

    async def record(self, record: Header | Record) -> None:
        await self.write(to_json(record))

    async def write(self, data: dict[str, Any]) -> None:
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
        payload = self._redact.known(line).encode("utf-8")
        await anyio.to_thread.run_sync(self._write_durably, payload)

    def _write_durably(self, payload: bytes) -> None:
        if self._fd is None:
            raise TranscriptError(f"transcript {self.path} is closed")
        try:
            written = os.write(self._fd, payload)
            if written != len(payload):
                raise OSError(errno.ENOSPC, f"the disk is full or the file reached a size limit "
                              f"(wrote {written} of {len(payload)} bytes)")
            os.fsync(self._fd)
        except OSError as exc:
            raise TranscriptError(
                f"cannot write transcript {self.path}: {exc.strerror or exc}") from None

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


def to_json(record: Header | Record) -> dict[str, Any]:
    """The transcript line of `record`."""
    return header_json(record) if isinstance(record, Header) else record_to_json(record)


def header_json(header: Header) -> dict[str, Any]:
    """The first line of a run's transcript; a resumed run appends a `resume` record instead."""
    return {
        "kind": Header.KIND,
        "format": FORMAT_VERSION,
        "run_id": header.run_id,
        "started_at": header.started_at,
        "pairing": header.pairing,
        "source": header.source,
        "versions": versions(),
        **header.origin,
        "config_hash": config_hash(header.config),
        "config": dict(header.config),
    }


def config_hash(config: Mapping[str, Any]) -> str:
    """The fingerprint of a resolved config, kept in the header beside it for `inspect`."""
    return canonical_digest(config)
