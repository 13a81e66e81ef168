"""Reading transcripts back: records, the pairing they ran, and the history agents saw.

Only regular files are read (a FIFO or a device named like a transcript is refused, never waited
on). Every line is checked against the schema (`intermodel.transcript.schema`) as it is read; the
first that does not fit is reported as `FILE:LINE: what is wrong` (a `TranscriptInvalid`, exit
code 2), e.g. `run.jsonl:7: turn.usage.input_tokens: expected a whole number, got "abc"`. A
transcript that lies about its content is worse than none.

A line that was being written when the process died (no newline at the very end) is set aside and
reported as `torn`, never treated as data. Records of kinds this version does not know are
skipped and counted (`unknown`), as later versions may add some.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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

__all__ = ["Transcript", "parse_header_line", "parse_record_line", "read_header_line",
           "read_transcript"]


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
    shown = str(path)
    try:
        raw = read_regular(path)
    except UnreadableFile as exc:
        raise TranscriptInvalid(shown, f"cannot read it: {exc}") from None
    lines = raw.split(b"\n")
    # Every record is written as one line ending in a newline, so only bytes after the last
    # newline can be a torn write.
    tail = lines.pop()
    transcript: Transcript | None = None
    run = Run()
    turns: dict[int, int] = {}  # turn number -> the line that recorded it
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            if transcript is None:
                data, run = _first(line)
                transcript = Transcript(path=path, header=data,
                                        torn=tail.decode("utf-8", "replace") if tail else None,
                                        torn_bytes=len(tail))
                continue
            record = _record(_parse(line), run)
            if record is None:
                transcript.unknown += 1  # a record kind from a later version: skipped, counted
                continue
            if isinstance(record, Turn):
                if record.index in turns:
                    raise Invalid("turn.index", f"turn {record.index} is recorded twice (first "
                                  f"on line {turns[record.index]})")
                turns[record.index] = number
            transcript.records.append(record)
        except Invalid as exc:
            raise TranscriptInvalid(shown, str(exc), number) from None
    if transcript is None:
        raise TranscriptInvalid(shown, "not an intermodel transcript (no header record)")
    return transcript


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
