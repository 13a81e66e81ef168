"""Reading transcripts back: records, the pairing they ran, and the history agents saw.

A line that was being written when the process died (no newline, or not valid JSON at the very
end) is set aside and reported as `torn`, never treated as data. Anything else malformed is an
error: a transcript that lies about its content is worse than none.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intermodel.config.loader import config_from_resolved
from intermodel.config.model import Pairing, Panel
from intermodel.errors import ConfigError, TranscriptError
from intermodel.records import (
    RECORD_TYPES,
    BudgetChange,
    HistoryEntry,
    Interjection,
    Record,
    Resumption,
    RunEnd,
    Trim,
    Turn,
    record_from_json,
)
from intermodel.runid import checked_run_id
from intermodel.transcript.writer import FORMAT_VERSION

__all__ = ["Transcript", "read_transcript"]


@dataclass
class Transcript:
    path: Path
    header: dict[str, Any]
    records: list[Record] = field(default_factory=list)
    torn: str | None = None  # an incomplete last line, if the writer was interrupted
    torn_bytes: int = 0
    unknown: int = 0  # records of kinds this version does not know

    @property
    def run_id(self) -> str:
        return str(self.header.get("run_id", ""))

    @property
    def is_panel(self) -> bool:
        return "panel" in self.header.get("config", {})

    def pairing(self) -> Pairing:
        """The pairing this run ran (a panel's transcript has none: see `config`)."""
        config = self.config()
        if isinstance(config, Panel):
            raise TranscriptError(f"{self.path} records a panel, not a conversation")
        return config

    def config(self) -> Pairing | Panel:
        try:
            return config_from_resolved(self.header["config"], source=f"{self.path} (header)")
        except ConfigError as exc:
            raise TranscriptError(
                f"{self.path}: its stored config no longer loads: {exc}") from None

    @property
    def resumes(self) -> list[Resumption]:
        return [r for r in self.records if isinstance(r, Resumption)]

    @property
    def turns(self) -> list[Turn]:
        return [r for r in self.records if isinstance(r, Turn)]

    @property
    def history(self) -> list[HistoryEntry]:
        return [r for r in self.records if isinstance(r, Turn | Interjection | Trim)]

    @property
    def end(self) -> RunEnd | None:
        """How the run ended; None while it runs, or when its last process died without saying
        (an `end` written before a later resume belongs to an earlier process)."""
        for record in reversed(self.records):
            if isinstance(record, RunEnd):
                return record
            if isinstance(record, Resumption):
                return None
        return None

    @property
    def max_turns(self) -> int:
        """The turn budget in force at the end, counting extensions."""
        budget = int(self.header["config"]["dialogue"]["max_turns"])
        for record in self.records:
            if isinstance(record, BudgetChange | Resumption):
                budget = record.max_turns
        return budget

    def turn(self, index: int) -> Turn:
        for turn in self.turns:
            if turn.index == index:
                return turn
        raise TranscriptError(f"{self.path}: no turn {index} (it has turns "
                              f"1-{len(self.turns)})" if self.turns else f"{self.path}: no turns")


def read_transcript(path: str | Path) -> Transcript:
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as exc:
        raise TranscriptError(f"cannot read transcript {path}: {exc.strerror}") from None
    lines = raw.split(b"\n")
    # Every record is written as one line ending in a newline, so only bytes after the last
    # newline can be a torn write.
    tail = lines.pop()
    torn = tail.decode("utf-8", "replace") if tail else None
    objects: list[dict[str, Any]] = []
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
        except (json.JSONDecodeError, UnicodeDecodeError):
            data = None
        if not isinstance(data, dict):
            raise TranscriptError(f"{path}: line {number} is not a JSON object")
        objects.append(data)
    if not objects or objects[0].get("kind") != "header":
        raise TranscriptError(f"{path}: not an intermodel transcript (no header record)")
    head = objects[0]
    if head.get("format") != FORMAT_VERSION:
        raise TranscriptError(f"{path}: transcript format {head.get('format')!r} is not "
                              f"supported (this version reads {FORMAT_VERSION})")
    checked_run_id(head.get("run_id"), str(path))  # it names sockets: nothing else gets past
    transcript = Transcript(path=path, header=head, torn=torn, torn_bytes=len(tail))
    for number, data in enumerate(objects[1:], start=2):
        if data.get("kind") not in RECORD_TYPES:
            transcript.unknown += 1  # a record kind from a later version: skipped, counted
            continue
        try:
            transcript.records.append(record_from_json(data))
        except (KeyError, TypeError) as exc:
            raise TranscriptError(f"{path}: record {number} is malformed ({exc})") from None
    return transcript
