"""A transcript written record by record while a test follows it, and the records to write."""

from __future__ import annotations

import json
from pathlib import Path

from intermodel.config.model import Pairing, Panel
from intermodel.records import Header, Record, Turn
from intermodel.transcript.writer import TranscriptWriter, to_json
from tests.transcripts import at, turn

__all__ = ["Appender", "header_of", "line_of", "turns_of"]


def line_of(record: Header | Record) -> bytes:
    """The transcript line of `record`, as the writer writes it."""
    return (json.dumps(to_json(record), ensure_ascii=False, separators=(",", ":")) + "\n"
            ).encode("utf-8")


def header_of(spec: Pairing | Panel) -> Header:
    return Header("feedc0ffee00", at(0), spec.name, spec.source, spec.resolved)


def turns_of(count: int, first: int = 1) -> list[Turn]:
    """Turns `first`..`first + count - 1`, ada and bo in turn, each two seconds after the last."""
    return [turn(i, "ada" if i % 2 else "bo", f"{'ada' if i % 2 else 'bo'} says line {i}.",
                 done_at=2.0 * i, latency=1.0, ttft=0.1) for i in range(first, first + count)]


class Appender:
    """The real transcript writer (one durable `write` per record), driven by a test."""

    def __init__(self, path: Path, spec: Pairing | Panel | None = None) -> None:
        self.path = path
        self.writer = TranscriptWriter(path)
        self.writer.open(new=spec is not None)
        self.spec = spec

    async def header(self) -> None:
        assert self.spec is not None
        await self.writer.record(header_of(self.spec))

    async def add(self, *records: Record) -> None:
        for record in records:
            await self.writer.record(record)

    def raw(self, data: bytes) -> None:
        """Bytes as they are, without the writer: a torn line's halves, garbage."""
        with self.path.open("ab") as file:
            file.write(data)

    def close(self) -> None:
        self.writer.close()
