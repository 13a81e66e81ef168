"""Reading transcripts back: records, the pairing they ran, and the history agents saw.

Only regular files are read (a FIFO or a device named like a transcript is refused, never waited
on). Every line is checked against the schema (`intermodel.transcript.schema`) as it is read; the
first that does not fit is reported as `FILE:LINE: what is wrong` (a `TranscriptInvalid`, exit
code 2), e.g. `run.jsonl:7: turn.usage.input_tokens: expected a whole number, got "abc"`. A
transcript that lies about its content is worse than none.

A line that was being written when the process died (no newline at the very end) is set aside and
reported as `torn`, never treated as data. Records of kinds this version does not know are
skipped and counted (`unknown`), as later versions may add some.

A transcript still being written (`replay --follow`) is read by a `GrowingTranscript`, a little
further at each poll, every line checked the same way; its last line, while it has no newline, is
waited for rather than reported.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from intermodel.config.loader import config_from_resolved
from intermodel.config.model import Pairing, RunSpec
from intermodel.errors import ConfigError, TranscriptError, TranscriptInvalid
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
)
from intermodel.security.bounds import short
from intermodel.security.files import UnreadableFile, open_regular, read_regular
from intermodel.transcript.schema import Invalid, Run, check_json, read_header, read_record
from intermodel.transcript.writer import FORMAT_VERSION

__all__ = ["GrowingTranscript", "Transcript", "parse_header_line", "parse_record_line",
           "read_header_line", "read_transcript"]


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

    @property
    def prompt(self) -> str | None:
        """A panel's message as its agents were sent it (an experiment's opener replaces the
        panel file's, and the header holds the one sent); None for a pairing. Read from the
        stored config as written, so a config that no longer loads still has its prompt."""
        panel = self.header.get("config", {}).get("panel")
        prompt = panel.get("prompt") if isinstance(panel, dict) else None
        return prompt if isinstance(prompt, str) else None

    def pairing(self) -> Pairing:
        """The pairing this run ran (a panel's transcript has none: see `config`)."""
        config = self.config()
        if not isinstance(config, Pairing):
            raise TranscriptInvalid(str(self.path), "it records a panel, not a conversation")
        return config

    def config(self) -> RunSpec:
        try:
            return config_from_resolved(self.header["config"], source=f"{self.path} (header)")
        except ConfigError as exc:  # one line: the first problem, and how many more
            first = exc.issues[0]
            where = f"config.{first.path}: " if first.path else ""
            more = f" (and {len(exc.issues) - 1} more)" if len(exc.issues) > 1 else ""
            raise TranscriptInvalid(str(self.path), "its stored config does not load: "
                                    f"{where}{first.message}{more}") from None

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
        """The turn budget in force at the end, counting extensions (a panel's: one answer
        per agent)."""
        config = self.header["config"]
        if "panel" in config:
            return len(config["agents"])
        budget: int = config["dialogue"]["max_turns"]
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
    """The transcript `path`, every line checked; raises TranscriptInvalid for the first line
    that does not fit, or when `path` is not a readable regular file."""
    path = Path(path)
    try:
        raw = read_regular(path)
    except UnreadableFile as exc:
        raise TranscriptInvalid(str(path), f"cannot read it: {exc}") from None
    lines = raw.split(b"\n")
    # Every record is written as one line ending in a newline, so only bytes after the last
    # newline can be a torn write.
    tail = lines.pop()
    checker = _LineChecker(path)
    for line in lines:
        checker.add(line)
    transcript = checker.finish()
    transcript.torn = tail.decode("utf-8", "replace") if tail else None
    transcript.torn_bytes = len(tail)
    return transcript


class _LineChecker:
    """Complete lines in, checked records out: the header first, then every record against the
    schema and the run the header describes. The whole-file reader and the growing one share it,
    so a transcript read as it is written is checked exactly as one read at once."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.transcript: Transcript | None = None
        self.number = 0  # lines so far
        self._run = Run()
        self._turns: dict[int, int] = {}  # turn number -> the line that recorded it

    def add(self, line: bytes) -> Record | None:
        """Check one complete line (without its newline); the record it holds, if any (a blank
        line, the header and a record of an unknown kind hold none)."""
        self.number += 1
        if not line.strip():
            return None
        try:
            if self.transcript is None:
                data, self._run = _first(line)
                self.transcript = Transcript(path=self.path, header=data)
                return None
            record = _record(_parse(line), self._run)
            if record is None:
                self.transcript.unknown += 1  # a record kind from a later version: skipped
                return None
            if isinstance(record, Turn):
                if record.index in self._turns:
                    raise Invalid("turn.index", f"turn {record.index} is recorded twice (first "
                                  f"on line {self._turns[record.index]})")
                self._turns[record.index] = self.number
            self.transcript.records.append(record)
            return record
        except Invalid as exc:
            raise TranscriptInvalid(str(self.path), str(exc), self.number) from None

    def finish(self) -> Transcript:
        if self.transcript is None:
            raise TranscriptInvalid(str(self.path),
                                    "not an intermodel transcript (no header record)")
        return self.transcript


class GrowingTranscript:
    """A transcript that is still being written, read a little further at each `poll`.

    Complete lines are checked exactly as `read_transcript` checks them. The bytes after the last
    newline are a record being written: held back, and read again at the next poll from where
    the complete lines end (a resumed run cuts a torn line off before it appends, so they may
    change). The file is opened by its path at every poll, as the whole-file reader opens it (a
    regular file only; a link is followed): on a network filesystem an open is what makes another
    machine's writes visible. A file found shorter than what was already read, or replaced by one
    that does not begin with it (a copy that has grown is accepted), is refused.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._checker = _LineChecker(self.path)
        self._offset = 0  # bytes read as complete lines
        self._digest = hashlib.sha256()  # of those bytes, to recognise them in a replacement
        self._identity: tuple[int, int] | None = None  # (device, inode) of the file read
        self.failure: TranscriptInvalid | None = None  # why it can be read no further
        self.pending = b""  # the record being written (no newline yet)
        self.modified = 0.0  # the file's modification time at the last poll (seconds, epoch)

    @property
    def transcript(self) -> Transcript | None:
        """What has been read so far; None until the header's line is complete."""
        return self._checker.transcript

    def poll(self) -> list[Record]:
        """The records completed since the last poll (often none). Raises TranscriptInvalid for
        a line that does not fit (once the records before it have been returned), a truncated
        or replaced file, or one that cannot be read; and again at every later poll, as what
        follows the bad line cannot be trusted."""
        if self.failure is not None:
            raise self.failure
        try:
            data = self._read()
        except TranscriptInvalid as exc:
            self.failure = exc
            raise
        end = data.rfind(b"\n") + 1
        complete, self.pending = data[:end], data[end:]
        self._offset += len(complete)
        self._digest.update(complete)
        records: list[Record] = []
        for line in complete.split(b"\n")[:-1]:
            try:
                record = self._checker.add(line)
            except TranscriptInvalid as exc:
                self.failure = exc
                if not records:
                    raise
                break  # raised at the next poll
            if record is not None:
                records.append(record)
        return records

    def _read(self) -> bytes:
        """The bytes from the end of the last complete line to the end of the file."""
        shown = str(self.path)
        try:
            with open_regular(self.path) as file:
                found = os.fstat(file.fileno())
                identity = (found.st_dev, found.st_ino)
                if self._identity not in (None, identity):
                    self._check_replacement(file)
                self._identity, self.modified = identity, found.st_mtime
                if found.st_size < self._offset:
                    raise TranscriptInvalid(shown, f"it was cut short while being followed "
                                            f"({found.st_size} bytes, {self._offset} already "
                                            "read)")
                file.seek(self._offset)
                return file.read()
        except UnreadableFile as exc:
            raise TranscriptInvalid(shown, f"cannot read it: {exc}") from None
        except OSError as exc:
            raise TranscriptInvalid(shown, f"cannot read it: {exc.strerror or exc}") from None

    def _check_replacement(self, file: BinaryIO) -> None:
        """Another file now has the path: go on with it only if it begins with what was read."""
        digest, left = hashlib.sha256(), self._offset
        while left > 0 and (chunk := file.read(min(left, 1 << 20))):
            digest.update(chunk)
            left -= len(chunk)
        if left > 0 or digest.digest() != self._digest.digest():
            raise TranscriptInvalid(str(self.path), "it was replaced by a different file while "
                                    "being followed")


def read_header_line(path: str | Path) -> dict[str, Any]:
    """The checked header of the transcript `path`, reading no further than its first line
    (for a quick look at many files)."""
    shown = str(path)
    number = 1
    try:
        with open_regular(path) as file:
            first = file.readline()
            while first.endswith(b"\n") and not first.strip():
                first, number = file.readline(), number + 1
    except (UnreadableFile, OSError) as exc:
        raise TranscriptInvalid(shown, f"cannot read it: {exc}") from None
    if not first.endswith(b"\n"):
        raise TranscriptInvalid(shown, "no complete first line (empty, or a run that is just "
                                "starting)")
    try:
        data, _ = _first(first)
    except Invalid as exc:
        raise TranscriptInvalid(shown, str(exc), number) from None
    return data


def parse_header_line(line: bytes) -> tuple[dict[str, Any], Run]:
    """One header line (without its newline), checked as a transcript's first line is; raises
    `Invalid`. For lines that come from elsewhere than a file (a run's control socket)."""
    return _first(line)


def parse_record_line(line: bytes, run: Run) -> Record | None:
    """One record line of the run `run` (from `parse_header_line`), checked as a transcript's
    lines are; None for a kind this version does not know. Raises `Invalid`."""
    return _record(_parse(line), run)


def _first(line: bytes) -> tuple[dict[str, Any], Run]:
    """The header line, and the run it describes. In a file that is not a transcript at all,
    it may not even be JSON."""
    try:
        data, text = _decode(line)
    except Invalid as exc:
        raise Invalid("", f"not an intermodel transcript: {exc}") from None
    if data.get("kind") != "header":
        raise Invalid("", "not an intermodel transcript (no header record)")
    version = data.get("format")
    if type(version) is not int or version != FORMAT_VERSION:
        raise Invalid("", f"transcript format {short(version)} is not supported (this version "
                      f"reads {FORMAT_VERSION})")
    check_json(data, "header", text)
    return data, read_header(data)


def _parse(line: bytes) -> dict[str, Any]:
    """One line as a JSON object, refusing what no field may hold (`check_json`)."""
    data, text = _decode(line)
    kind = data.get("kind")
    check_json(data, kind if isinstance(kind, str) and kind.isidentifier() else "", text)
    return data


def _decode(line: bytes) -> tuple[dict[str, Any], str]:
    """One line as a JSON object, and its text; refusing what JSON parsers disagree on or choke
    on."""
    try:
        text = line.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise Invalid("", f"not valid UTF-8 (byte {line[exc.start]:#04x} at column "
                      f"{exc.start + 1})") from None
    try:
        data = json.loads(text, parse_constant=_no_constant, parse_float=_finite)
    except RecursionError:
        raise Invalid("", "nested too deeply to read") from None
    except json.JSONDecodeError as exc:
        raise Invalid("", f"not valid JSON ({exc.msg} at column {exc.colno})") from None
    except ValueError:  # an integer of more digits than Python converts
        raise Invalid("", "a number of thousands of digits") from None
    if not isinstance(data, dict):
        raise Invalid("", f"not a JSON object (got {short(data)})")
    return data, text


def _no_constant(name: str) -> Any:
    raise Invalid("", f"{name} is not a number a transcript may hold")


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise Invalid("", f"the number {text[:30]} is too large")
    return value


def _record(data: dict[str, Any], run: Run) -> Record | None:
    """The record `data` holds; None for a kind this version does not know."""
    if "kind" not in data:
        raise Invalid("kind", "missing")
    kind = data["kind"]
    if not isinstance(kind, str):
        raise Invalid("kind", f"expected a string naming the record kind, got {short(kind)}")
    if kind == "header":
        raise Invalid("", "a second header record (two transcripts joined?)")
    if kind not in RECORD_TYPES:
        return None
    return read_record(data, run)
