"""Labels: what coders said about a run, its turns or its answers, kept beside its transcript.

A transcript is never rewritten. Labels go to a sidecar, `run.labels.jsonl` beside `run.jsonl`:
one JSON object per line, only ever appended to, each record written with one `write` and fsynced
before the next (docs/labels.md is the format's reference).

Several coders may label one run at the same time, from different processes (a judge in one
terminal, a person in another). Each append holds an exclusive `flock` on the sidecar while it
writes, so no two records interleave, and before writing it cuts off a torn last line (a writer
that died mid-record), so a new record never continues a broken one. The sidecar is created mode
600 with `O_NOFOLLOW`, never through a symbolic link a stranger planted.

A later record by the same coder for the same target and scheme supersedes an earlier one; both
stay on disk, and `current` gives the labels in force. "Later" is the order of the file, which
the lock makes the order of writing; clocks on two machines need not agree.

Reading is reading untrusted input, as for transcripts: every line is checked (types, bounds,
names, hashes) and the first that does not fit is refused as `FILE:LINE: what is wrong`. Whether
the labels belong to the scheme it names is the consumer's check (`Scheme.check_labels`), as only
the consumer has the scheme.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import re
import stat
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio

from intermodel.coding.scheme import MAX_LABELS, NAME, Scope
from intermodel.errors import TranscriptError, TranscriptInvalid
from intermodel.records import now_iso
from intermodel.security.bounds import MAX_ATTEMPTS, MAX_INT, MAX_TURNS, MIN_INT, short
from intermodel.security.files import UnreadableFile, read_regular
from intermodel.security.runid import RUN_ID
from intermodel.security.secrets import Redactor
from intermodel.transcript.reader import _decode
from intermodel.transcript.schema import (
    Boolean,
    Field,
    Invalid,
    Nullable,
    Pattern,
    Run,
    Table,
    Text,
    Value,
    Whole,
    check_json,
)

__all__ = [
    "KIND",
    "MAX_NAME",
    "MAX_TEXT",
    "Coder",
    "Human",
    "Judge",
    "LabelFile",
    "LabelRecord",
    "LabelWriter",
    "Target",
    "append_label",
    "coder_name_problem",
    "current",
    "is_sidecar",
    "parse_record",
    "read_labels",
    "read_sidecar",
    "sidecar_path",
]

KIND = "label"
SUFFIX = ".labels.jsonl"
MAX_TEXT = 65_536  # characters of a rationale or of an unlabelled reason
MAX_NAME = 100  # characters of a coder's name
MAX_SPEC = 1_000  # characters of a judge spec (a path and an agent name) or a model id
_HASH = re.compile(r"sha256:[0-9a-f]{64}")
_CONTROL = re.compile(r"[\x00-\x1f\x7f-\x9f\u2028\u2029]")
_AGENT = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}")  # as in pairing files


# -- what a record holds -------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    """What was coded: the run as a whole, turn `turn`, or the answer of panel agent `agent`."""

    scope: Scope
    turn: int | None = None
    agent: str | None = None

    @classmethod
    def run(cls) -> Target:
        return cls("run")

    @classmethod
    def of_turn(cls, turn: int) -> Target:
        return cls("turn", turn=turn)

    @classmethod
    def answer(cls, agent: str) -> Target:
        return cls("answer", agent=agent)

    def to_json(self) -> dict[str, Any]:
        if self.scope == "turn":
            return {"scope": "turn", "turn": self.turn}
        if self.scope == "answer":
            return {"scope": "answer", "agent": self.agent}
        return {"scope": "run"}

    def __str__(self) -> str:
        if self.scope == "turn":
            return f"turn {self.turn}"
        if self.scope == "answer":
            return f"the answer of {self.agent}"
        return "the run"


@dataclass(frozen=True)
class Human:
    """A person, by the name they code under."""

    name: str

    @property
    def key(self) -> tuple[str, ...]:
        return ("human", self.name)

    def to_json(self) -> dict[str, Any]:
        return {"kind": "human", "name": self.name}

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Judge:
    """A model asked to code: its spec as given (`openai:gpt-5.2`, `configs/x.toml:judge`), the
    model id it was configured with, and the one its server reported (when it did)."""

    spec: str
    model: str
    served_model: str = ""

    @property
    def key(self) -> tuple[str, ...]:
        # The served id is not part of who the coder is: an alias the server resolves anew
        # each day is still the judge that was asked for.
        return ("judge", self.spec, self.model)

    def to_json(self) -> dict[str, Any]:
        data = {"kind": "judge", "spec": self.spec, "model": self.model}
        if self.served_model:
            data["served_model"] = self.served_model
        return data

    def __str__(self) -> str:
        return f"judge {self.spec} ({self.model})"


Coder = Human | Judge


@dataclass(frozen=True)
class LabelRecord:
    """One coding of one target. `labels` is empty exactly when `unlabelled` says why no label
    was given (a judge that never gave a valid one, a person who skipped the target)."""

    run_id: str
    target: Target
    scheme: str
    scheme_hash: str
    labels: tuple[str, ...]
    coder: Coder
    rationale: str = ""
    unlabelled: str | None = None
    request_hash: str | None = None  # a judge's: the exact request that got this answer
    attempts: int | None = None  # a judge's: requests it took (retries of invalid replies)
    blind: bool = False  # the coder did not see model, agent or provider names
    seed: int | None = None  # a blind session's shuffle seed
    at: str = field(default_factory=now_iso)

    @property
    def key(self) -> tuple[object, ...]:
        """Records with the same key are codings of one target, under one scheme, by one coder:
        the later supersedes the earlier."""
        return (self.run_id, self.target, self.scheme, self.coder.key)

    def to_json(self) -> dict[str, Any]:
        data: dict[str, Any] = {
            "kind": KIND, "run_id": self.run_id, "target": self.target.to_json(),
            "scheme": self.scheme, "scheme_hash": self.scheme_hash, "labels": list(self.labels),
            "rationale": self.rationale, "coder": self.coder.to_json(), "at": self.at,
        }
        optional = {"unlabelled": self.unlabelled, "request_hash": self.request_hash,
                    "attempts": self.attempts, "seed": self.seed}
        data.update((key, value) for key, value in optional.items() if value is not None)
        if self.blind:
            data["blind"] = True
        return data


def coder_name_problem(name: str) -> str | None:
    """What is wrong with `name` as a person's coder name (for the command line), or None."""
    if not name.strip() or name != name.strip():
        return "a coder name is not blank and has no spaces around it"
    if len(name) > MAX_NAME:
        return f"a coder name has at most {MAX_NAME} characters"
    if _CONTROL.search(name):
        return "a coder name holds no control characters"
    return None


# -- checking a line -----------------------------------------------------------------------------


@dataclass(frozen=True)
class _Bounded(Text):
    """Text of at most `most` characters."""

    most: int

    def read(self, value: Any, where: str, run: Run) -> str:
        text = super().read(value, where, run)
        if len(text) > self.most:
            raise Invalid(where, f"expected at most {self.most} characters, got {len(text)}")
        return text


@dataclass(frozen=True)
class _Name(_Bounded):
    """A name shown to people: not blank, no spaces around it, no control characters."""

    def read(self, value: Any, where: str, run: Run) -> str:
        text = super().read(value, where, run)
        if not text.strip() or text != text.strip() or _CONTROL.search(text):
            raise Invalid(where, "expected a name that is not blank, with no spaces around it "
                          f"and no control characters, got {short(text)}")
        return text


class _Timestamp(Text):
    def read(self, value: Any, where: str, run: Run) -> str:
        text = super().read(value, where, run)
        try:
            if len(text) > 40:
                raise ValueError
            datetime.fromisoformat(text)
        except ValueError:
            raise Invalid(where, f"expected an ISO 8601 time, got {short(text)}") from None
        return text


class _LabelNames(Value):
    """Distinct label names, at most MAX_LABELS."""

    def read(self, value: Any, where: str, run: Run) -> tuple[str, ...]:
        if not isinstance(value, list):
            raise Invalid(where, f"expected a list of label names, got {short(value)}")
        if len(value) > MAX_LABELS:
            raise Invalid(where, f"expected at most {MAX_LABELS} labels, got {len(value)}")
        for n, name in enumerate(value):
            if not isinstance(name, str) or not NAME.fullmatch(name):
                raise Invalid(f"{where}[{n}]", f"expected a label name, got {short(name)}")
        if len(set(value)) != len(value):
            raise Invalid(where, "a label is given twice")
        return tuple(value)


_SHA = Pattern(_HASH, "sha256: and 64 lowercase hex digits")
_TEXT = _Bounded(MAX_TEXT)
_SPEC = _Name(MAX_SPEC)


def _target(data: Mapping[str, Any], where: str) -> None:
    scope = data.get("scope")
    wanted = {"run": set(), "turn": {"turn"}, "answer": {"agent"}}.get(str(scope))
    if wanted is None:
        raise Invalid(f"{where}.scope", f"expected \"run\", \"turn\" or \"answer\", got "
                      f"{short(scope)}")
    article = "an" if scope == "answer" else "a"
    for key in ("turn", "agent"):
        if key in wanted and key not in data:
            raise Invalid(f"{where}.{key}", f"missing ({article} {scope} target names its {key})")
        if key not in wanted and key in data:
            raise Invalid(f"{where}.{key}", f"a {scope} target names no {key}")


_TARGET = Table({
    "scope": Field(Text()),
    "turn": Field(Whole(1, MAX_TURNS), optional=True),
    "agent": Field(Pattern(_AGENT, "an agent name"), optional=True),
}, build=Target, rules=(_target,))


def _coder(data: Mapping[str, Any], where: str) -> None:
    kind = data.get("kind")
    if kind not in ("human", "judge"):
        raise Invalid(f"{where}.kind", f"expected \"human\" or \"judge\", got {short(kind)}")
    needed = ("name",) if kind == "human" else ("spec", "model")
    for key in needed:
        if key not in data:
            raise Invalid(f"{where}.{key}", f"missing (a {kind} coder has a {key})")
    foreign = ("name",) if kind == "judge" else ("spec", "model", "served_model")
    for key in foreign:
        if key in data:
            raise Invalid(f"{where}.{key}", f"a {kind} coder has no {key}")


def _make_coder(kind: str, name: str = "", spec: str = "", model: str = "",
                served_model: str = "") -> Coder:
    return Human(name) if kind == "human" else Judge(spec, model, served_model)


_CODER = Table({
    "kind": Field(Text()),
    "name": Field(_Name(MAX_NAME), optional=True),
    "spec": Field(_SPEC, optional=True),
    "model": Field(_SPEC, optional=True),
    "served_model": Field(_Bounded(MAX_SPEC), optional=True),
}, build=_make_coder, rules=(_coder,))


def _record_rules(data: Mapping[str, Any], where: str) -> None:
    labels, reason = data.get("labels"), data.get("unlabelled")
    if labels == [] and reason is None:
        raise Invalid(f"{where}.labels", "expected at least one label (or an `unlabelled` "
                      "reason)")
    if labels and reason is not None:
        raise Invalid(f"{where}.unlabelled", "a record with labels is not unlabelled")
    if reason == "":
        raise Invalid(f"{where}.unlabelled", "expected the reason no label was given")
    judge = isinstance(data.get("coder"), dict) and data["coder"].get("kind") == "judge"
    if judge and data.get("request_hash") is None:
        raise Invalid(f"{where}.request_hash", "missing (a judge's record holds the hash of its "
                      "request)")
    for key in ("request_hash", "attempts"):
        if not judge and data.get(key) is not None:
            raise Invalid(f"{where}.{key}", "only a judge's record has one")


RECORD = Table({
    "run_id": Field(Pattern(RUN_ID, "a run id (12 lowercase hex digits)")),
    "target": Field(_TARGET),
    "scheme": Field(Pattern(NAME, "a scheme name")),
    "scheme_hash": Field(_SHA),
    "labels": Field(_LabelNames()),
    "rationale": Field(_TEXT, optional=True),
    "unlabelled": Field(Nullable(_TEXT), optional=True),
    "coder": Field(_CODER),
    "request_hash": Field(Nullable(_SHA), optional=True),
    "attempts": Field(Nullable(Whole(1, MAX_ATTEMPTS)), optional=True),
    "blind": Field(Boolean(), optional=True),
    "seed": Field(Nullable(Whole(MIN_INT, MAX_INT)), optional=True),
    "at": Field(_Timestamp()),
}, build=LabelRecord, rules=(_record_rules,))


def parse_record(data: dict[str, Any]) -> LabelRecord | None:
    """The label record `data` holds, checked field by field (Invalid when it does not fit);
    None for a record of a kind this version does not know."""
    if "kind" not in data:
        raise Invalid("kind", "missing")
    kind = data["kind"]
    if not isinstance(kind, str):
        raise Invalid("kind", f"expected a string naming the record kind, got {short(kind)}")
    if kind != KIND:
        return None
    record: LabelRecord = RECORD.read({k: v for k, v in data.items() if k != "kind"}, KIND,
                                      Run())
    return record


# -- reading -------------------------------------------------------------------------------------


@dataclass
class LabelFile:
    """A sidecar as read: its records in file order (every one, superseded or not)."""

    path: Path
    records: list[LabelRecord] = field(default_factory=list)
    torn: str | None = None  # an incomplete last line, if a writer was interrupted
    torn_bytes: int = 0
    unknown: int = 0  # records of kinds this version does not know

    def current(self) -> list[LabelRecord]:
        return current(self.records)


def is_sidecar(name: str) -> bool:
    """True for a labels sidecar's file name (`run.labels.jsonl`): folder commands that look
    for transcripts pass it by."""
    return name.endswith(SUFFIX)


def sidecar_path(transcript: str | Path) -> Path:
    """Where the labels of the transcript `run.jsonl` live: `run.labels.jsonl` beside it."""
    path = Path(transcript)
    stem = path.name[: -len(".jsonl")] if path.name.endswith(".jsonl") else path.name
    return path.with_name(stem + SUFFIX)


def read_sidecar(transcript: str | Path, *, run_id: str | None = None) -> LabelFile:
    """The labels of the transcript `transcript`: none when it has no sidecar yet."""
    path = sidecar_path(transcript)
    if not os.path.lexists(path):
        return LabelFile(path)
    return read_labels(path, run_id=run_id)


def read_labels(path: str | Path, *, run_id: str | None = None) -> LabelFile:
    """The sidecar `path`, every line checked; TranscriptInvalid (`FILE:LINE: what`) for the
    first line that does not fit, or a record of another run than `run_id` when it is given."""
    path = Path(path)
    shown = str(path)
    try:
        raw = read_regular(path)
    except UnreadableFile as exc:
        raise TranscriptInvalid(shown, f"cannot read it: {exc}") from None
    lines = raw.split(b"\n")
    tail = lines.pop()  # bytes after the last newline: a torn write, never data
    labels = LabelFile(path, torn=tail.decode("utf-8", "replace") if tail else None,
                       torn_bytes=len(tail))
    for number, line in enumerate(lines, start=1):
        if not line.strip():
            continue
        try:
            data, text = _decode(line)
            check_json(data, KIND, text)
            record = parse_record(data)
            if record is None:
                labels.unknown += 1
                continue
            if run_id is not None and record.run_id != run_id:
                raise Invalid("label.run_id", f"this label is for run {record.run_id}, not for "
                              f"this transcript's run {run_id}")
        except Invalid as exc:
            # A value quoted in the message may hold a line break: the error stays one line.
            reason = str(exc).replace("\r", "\\r").replace("\n", "\\n")
            raise TranscriptInvalid(shown, reason, number) from None
        labels.records.append(record)
    return labels


def current(records: Iterable[LabelRecord]) -> list[LabelRecord]:
    """The records in force: for each target, scheme and coder, the last one, in the order of
    those last records in the file."""
    latest: dict[tuple[object, ...], tuple[int, LabelRecord]] = {}
    for position, record in enumerate(records):
        latest[record.key] = (position, record)
    return [record for _, record in sorted(latest.values(), key=lambda item: item[0])]


# -- writing -------------------------------------------------------------------------------------

# Read and write: a torn tail is found by reading the end of the file.
_OPEN = os.O_RDWR | os.O_APPEND | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
_TAIL_CHUNK = 65_536


class LabelWriter:
    """Appends label records to one sidecar. Use as a context manager, or `close` it."""

    def __init__(self, path: Path, fd: int, *, redactor: Redactor | None = None) -> None:
        self.path = path
        self._fd: int | None = fd
        self._redact = redactor or Redactor()
        self._lock = threading.Lock()  # records sent from several tasks share the descriptor

    @classmethod
    def open(cls, transcript: str | Path, *, redactor: Redactor | None = None) -> LabelWriter:
        """The writer of the sidecar of `transcript`, created (mode 600) when there is none."""
        path = sidecar_path(transcript)
        return cls(path, _open_sidecar(path), redactor=redactor)

    def __enter__(self) -> LabelWriter:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()

    def append(self, record: LabelRecord) -> int:
        """Write `record` durably; returns how many bytes of a torn last line (left by a writer
        that died mid-record) were cut off first. ValueError for a record that would not read
        back; TranscriptError when it cannot be written."""
        data = record.to_json()
        try:
            check_json(data, KIND)
            parse_record(data)
        except Invalid as exc:
            raise ValueError(f"not a valid label record: {exc}") from None
        line = json.dumps(data, ensure_ascii=False, separators=(",", ":")) + "\n"
        payload = self._redact.known(line).encode("utf-8")
        with self._lock:
            if self._fd is None:
                raise TranscriptError(f"labels {self.path} are closed")
            return self._write(self._fd, payload)

    async def record(self, record: LabelRecord) -> int:
        """`append`, off the event loop (it waits for the lock and for the disk)."""
        return await anyio.to_thread.run_sync(self.append, record)

    def _write(self, fd: int, payload: bytes) -> int:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)
            try:
                cut = _cut_torn_tail(fd)
                written = os.write(fd, payload)
                if written != len(payload):
                    raise OSError(errno.ENOSPC, f"the disk is full or the file reached a size "
                                  f"limit (wrote {written} of {len(payload)} bytes)")
                os.fsync(fd)
            finally:
                fcntl.flock(fd, fcntl.LOCK_UN)
        except OSError as exc:
            raise TranscriptError(f"cannot write labels {self.path}: "
                                  f"{exc.strerror or exc}") from None
        return cut

    def close(self) -> None:
        with self._lock:
            if self._fd is not None:
                os.close(self._fd)
                self._fd = None


def append_label(transcript: str | Path, record: LabelRecord, *,
                 redactor: Redactor | None = None) -> Path:
    """Append one record to the sidecar of `transcript`; returns the sidecar's path."""
    with LabelWriter.open(transcript, redactor=redactor) as writer:
        writer.append(record)
    return writer.path


def _open_sidecar(path: Path) -> int:
    """A descriptor for appending to `path`, refusing a link, a FIFO or anything but a regular
    file; a new file is mode 600 and its folder entry is made durable."""
    created = False
    try:
        try:
            fd = os.open(path, _OPEN | os.O_CREAT | os.O_EXCL, 0o600)
            created = True
        except FileExistsError:
            fd = os.open(path, _OPEN)
    except OSError as exc:
        raise TranscriptError(f"cannot open labels {path}: {_why(path, exc)}") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise TranscriptError(f"cannot open labels {path}: it is not a regular file")
        os.set_blocking(fd, True)
        if created:
            _sync_folder(path.parent)
    except BaseException:
        os.close(fd)
        raise
    return fd


def _why(path: Path, exc: OSError) -> str:
    if exc.errno == errno.ELOOP:
        return "it is a symbolic link; intermodel does not write through links"
    if exc.errno == errno.ENXIO:
        return "it is not a regular file (a FIFO nobody reads)"
    return exc.strerror or str(exc)


def _sync_folder(folder: Path) -> None:
    try:
        fd = os.open(folder, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return  # the file itself is fsynced with each record; this only hardens its name
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _cut_torn_tail(fd: int) -> int:
    """Remove bytes after the last newline (a record whose writer died mid-write), so the next
    record starts on a line of its own; how many were removed. Called under the lock."""
    size = os.fstat(fd).st_size
    if size == 0 or os.pread(fd, 1, size - 1) == b"\n":
        return 0
    end = size
    while end > 0:
        start = max(0, end - _TAIL_CHUNK)
        newline = os.pread(fd, end - start, start).rfind(b"\n")
        if newline >= 0:
            keep = start + newline + 1
            break
        end = start
    else:
        keep = 0
    os.ftruncate(fd, keep)
    return size - keep
