"""What a transcript line may hold: the header and every record kind, field by field.

The reader checks every line against this schema as it reads it, so the code after it can trust a
`Transcript`: each field has the type `intermodel.records` declares, every number lies within the
bounds of `intermodel.security.bounds`, and every agent a record names is an agent of the run. A
line that does not fit is refused with the field at fault and what was expected, e.g.
`turn.usage.input_tokens: expected a whole number, got "abc"`.

Before its fields, each line is checked as a whole (`check_json`): nesting at most
MAX_RECORD_DEPTH deep, integers within 64 bits, no lone surrogate in a string (it cannot be
written out as UTF-8).

Forward compatibility: a field this version does not know is ignored, as later versions may add
some (the reader also skips records of unknown kinds, and counts them). Refused however it is
spelled is a file reference in a stored config: a stored config has its files inlined, and a
reference would make `resume` or `inspect` read whatever file the transcript names.
A name of a closed set (an end's reason, a retry's error kind) that this version does not know
reads as the set's UNKNOWN.

The header keeps the raw table the file holds (readers use it as written); the schema checks the
parts they rely on. Anything else in the stored config is checked when the config is loaded again
(`Transcript.config`), by the same code that checks pairing files.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from intermodel.config.loader import MAX_PANEL
from intermodel.errors import ErrorKind
from intermodel.records import (
    Branch,
    BudgetChange,
    Discard,
    EndReason,
    Flag,
    Interjection,
    Note,
    ReasoningItem,
    Record,
    Resumption,
    Retry,
    RunEnd,
    StopMatch,
    Trim,
    Turn,
    Usage,
)
from intermodel.security.bounds import (
    MAX_ATTEMPTS,
    MAX_BYTES,
    MAX_INT,
    MAX_PRICE,
    MAX_RECORD_DEPTH,
    MAX_REPLICATES,
    MAX_SECONDS,
    MAX_TOKENS,
    MAX_TURNS,
    MIN_INT,
    short,
)
from intermodel.security.runid import RUN_ID as RUN_ID_PATTERN

__all__ = ["HEADER", "RECORDS", "Invalid", "Run", "check_json", "read_header", "read_record"]


class Invalid(Exception):
    """A value that does not fit: `where` it is (a dotted path) and what is wrong."""

    def __init__(self, where: str, message: str) -> None:
        super().__init__(f"{where}: {message}" if where else message)
        self.where = where
        self.message = message


@dataclass(frozen=True)
class Run:
    """What a record is checked against: the agents of the run (from its header)."""

    agents: tuple[str, ...] = ()


def _wrong(where: str, expected: str, value: Any) -> Invalid:
    return Invalid(where, f"expected {expected}, got {short(value)}")


# -- value types ---------------------------------------------------------------------------------


class Value:
    """A field's type: `read` checks a value and returns it as the record holds it."""

    def read(self, value: Any, where: str, run: Run) -> Any:
        return value


@dataclass(frozen=True)
class Whole(Value):
    low: int
    high: int

    def read(self, value: Any, where: str, run: Run) -> int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise _wrong(where, "a whole number", value)
        if not self.low <= value <= self.high:
            raise _wrong(where, f"a whole number from {self.low} to {self.high}", value)
        return value


@dataclass(frozen=True)
class Real(Value):
    low: float
    high: float

    def read(self, value: Any, where: str, run: Run) -> float:
        if not isinstance(value, int | float) or isinstance(value, bool):
            raise _wrong(where, "a number", value)
        if not self.low <= value <= self.high:  # also false for NaN
            raise _wrong(where, f"a number from {self.low:g} to {self.high:g}", value)
        return float(value)


class Boolean(Value):
    def read(self, value: Any, where: str, run: Run) -> bool:
        if not isinstance(value, bool):
            raise _wrong(where, "true or false", value)
        return value


class Text(Value):
    def read(self, value: Any, where: str, run: Run) -> str:
        if not isinstance(value, str):
            raise _wrong(where, "a string", value)
        return value


@dataclass(frozen=True)
class Pattern(Text):
    pattern: re.Pattern[str]
    description: str

    def read(self, value: Any, where: str, run: Run) -> str:
        if not isinstance(value, str) or not self.pattern.fullmatch(value):
            raise _wrong(where, self.description, value)
        return value


@dataclass(frozen=True)
class Named(Value):
    """A name from a closed set (`EndReason`, `ErrorKind`): `read` gives its member, and the set's
    UNKNOWN for a name this version does not know. Such a record still reads (a later version may
    add names); the file's text goes no further than here."""

    read_name: Callable[[str], Any]

    def read(self, value: Any, where: str, run: Run) -> Any:
        if not isinstance(value, str):
            raise _wrong(where, "a string", value)
        return self.read_name(value)


class AgentName(Value):
    """The name of one of the run's agents."""

    def read(self, value: Any, where: str, run: Run) -> str:
        if not isinstance(value, str) or value not in run.agents:
            *others, last = run.agents
            names = f"{', '.join(others)} or {last}" if others else last
            raise _wrong(where, f"an agent of this run ({names})", value)
        return value


@dataclass(frozen=True)
class Nullable(Value):
    inner: Value

    def read(self, value: Any, where: str, run: Run) -> Any:
        return None if value is None else self.inner.read(value, where, run)


@dataclass(frozen=True)
class NullMeans(Value):
    """`null` stands for a default value (e.g. usage a server did not report)."""

    inner: Value
    default: Callable[[], Any]

    def read(self, value: Any, where: str, run: Run) -> Any:
        return self.default() if value is None else self.inner.read(value, where, run)


@dataclass(frozen=True)
class ListOf(Value):
    item: Value

    def read(self, value: Any, where: str, run: Run) -> tuple[Any, ...]:
        if not isinstance(value, list):
            raise _wrong(where, "a list", value)
        return tuple(self.item.read(v, f"{where}[{i}]", run) for i, v in enumerate(value))


@dataclass(frozen=True)
class MapOf(Value):
    """An object whose keys are data (agent names, package names), each with a value."""

    key: Value
    value: Value
    fewest: int = 0
    most: int = MAX_INT

    def read(self, value: Any, where: str, run: Run) -> dict[str, Any]:
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        if not self.fewest <= len(value) <= self.most:
            raise Invalid(where, f"expected {self.fewest} to {self.most} entries, "
                          f"got {len(value)}")
        return {self.key.read(k, where, run): self.value.read(v, f"{where}.{k}", run)
                for k, v in value.items()}


@dataclass(frozen=True)
class Refused(Value):
    """A field that must not be there at all."""

    reason: str

    def read(self, value: Any, where: str, run: Run) -> Any:
        raise Invalid(where, self.reason)


@dataclass(frozen=True)
class Field:
    value: Value
    optional: bool = False  # may be left out (the record's default applies)


@dataclass(frozen=True)
class Table(Value):
    """An object with named fields; `build` makes the record of them (else the table is
    returned as checked). Fields it does not name are ignored."""

    fields: Mapping[str, Field]
    build: Callable[..., Any] | None = None
    rules: tuple[Callable[[dict[str, Any], str], None], ...] = field(default=())

    def read(self, value: Any, where: str, run: Run) -> Any:
        if not isinstance(value, dict):
            raise _wrong(where, "an object", value)
        out: dict[str, Any] = {}
        for name, spec in self.fields.items():
            if name in value:
                out[name] = spec.value.read(value[name], f"{where}.{name}", run)
            elif not spec.optional:
                raise Invalid(f"{where}.{name}", "missing")
        for rule in self.rules:
            rule(value, where)
        return self.build(**out) if self.build is not None else out


# -- the records ---------------------------------------------------------------------------------

TEXT = Text()
END_REASON = Named(EndReason.read)
ERROR_KIND = Named(ErrorKind.read)
BOOL = Boolean()
AGENT = AgentName()
TURN = Whole(1, MAX_TURNS)  # a turn's number
TURNS = Whole(0, MAX_TURNS)  # a count of turns, or "after turn N" (0: before the first)
BUDGET = Whole(1, MAX_TURNS)
TOKENS = Whole(0, MAX_TOKENS)
SECONDS = Real(0, MAX_SECONDS)
BYTES = Whole(0, MAX_BYTES)
ATTEMPTS = Whole(1, MAX_ATTEMPTS)
RUN_ID = Pattern(RUN_ID_PATTERN, "a run id (12 lowercase hex digits)")
VERSIONS = MapOf(TEXT, TEXT)
AT = Field(TEXT, optional=True)  # a timestamp; readers cope with any text


def _optional(value: Value) -> Field:
    return Field(value, optional=True)


USAGE = Table({name: _optional(Nullable(TOKENS))
               for name in ("input_tokens", "output_tokens", "reasoning_tokens")}, build=Usage)

# Kept verbatim to be sent back to the agent's own server; nothing here is ever shown.
REASONING_ITEM = Table({
    "id": Field(TEXT), "encrypted_content": _optional(TEXT), "summary": _optional(ListOf(TEXT)),
    "content": _optional(ListOf(TEXT)),
}, build=ReasoningItem)

RECORDS: dict[str, Table] = {
    Turn.KIND: Table({
        "index": Field(TURN), "agent": Field(AGENT), "text": Field(TEXT),
        "thinking": _optional(TEXT), "signature": _optional(TEXT),
        "usage": _optional(NullMeans(USAGE, Usage)), "latency": _optional(SECONDS),
        "ttft": _optional(Nullable(SECONDS)), "stop_reason": _optional(TEXT),
        "model": _optional(TEXT), "attempts": _optional(ATTEMPTS),
        "request_hash": _optional(TEXT), "client_stop": _optional(BOOL), "at": AT,
        "endpoint": _optional(TEXT),  # written since endpoint pools; absent before, and for
                                      # agents of one server
        "reasoning_items": _optional(ListOf(REASONING_ITEM)),
    }, build=Turn),
    Interjection.KIND: Table({
        # An interjection sent after the last turn is aimed at the turn after it.
        "before_turn": Field(Whole(1, MAX_TURNS + 1)), "to": Field(ListOf(AGENT)),
        "text": Field(TEXT), "at": AT,
    }, build=Interjection),
    Retry.KIND: Table({
        "turn": Field(TURN), "agent": Field(AGENT), "attempt": Field(ATTEMPTS),
        "error": Field(ERROR_KIND), "message": Field(TEXT),
        "status": Field(Nullable(Whole(0, 999))),
        "wait": Field(SECONDS), "partial_chars": _optional(BYTES), "at": AT,
        "endpoint": _optional(TEXT),
    }, build=Retry),
    Discard.KIND: Table({
        "turn": Field(TURN), "agent": Field(AGENT), "reason": Field(END_REASON),
        "text": _optional(TEXT), "thinking": _optional(TEXT),
        "text_chars": _optional(Nullable(BYTES)), "thinking_chars": _optional(Nullable(BYTES)),
        "at": AT,
    }, build=Discard),
    Trim.KIND: Table({
        "agent": Field(AGENT), "turn": Field(TURN), "dropped_through": Field(TURNS),
        "dropped": Field(ListOf(TURN)), "estimated_tokens": Field(TOKENS),
        "window": Field(TOKENS), "cause": _optional(TEXT), "at": AT,
    }, build=Trim),
    Flag.KIND: Table({
        "detector": Field(TEXT), "turn": Field(TURN), "agent": Field(AGENT),
        "action": Field(TEXT), "detail": Field(TEXT), "at": AT,
    }, build=Flag),
    Note.KIND: Table({"message": Field(TEXT), "at": AT}, build=Note),
    BudgetChange.KIND: Table({"max_turns": Field(BUDGET), "at": AT}, build=BudgetChange),
    Resumption.KIND: Table({
        "run_id": Field(RUN_ID), "after_turn": Field(TURNS), "max_turns": Field(BUDGET),
        "torn_bytes": _optional(BYTES), "versions": _optional(VERSIONS), "at": AT,
    }, build=Resumption),
    Branch.KIND: Table({
        "run_id": Field(RUN_ID), "transcript": Field(TEXT), "after_turn": Field(TURNS),
        "at": AT,
    }, build=Branch),
    RunEnd.KIND: Table({
        "reason": Field(END_REASON), "detail": _optional(TEXT),
        "ended_by": _optional(Nullable(AGENT)),
        "turns": _optional(TURNS), "usage": _optional(MapOf(AGENT, NullMeans(USAGE, Usage))),
        "duration": _optional(SECONDS), "at": AT,
        # Written since stop phrases have modes; absent in older transcripts.
        "stop": _optional(Nullable(Table({
            "phrase": Field(TEXT), "mode": Field(TEXT), "turn": Field(TURN),
            "start": Field(BYTES), "end": Field(BYTES),
        }, build=StopMatch))),
    }, build=RunEnd),
}


# -- the header ----------------------------------------------------------------------------------

_INLINED = Refused("a stored config has its files inlined; a file reference is not allowed "
                   "(the transcript was edited)")
# As in pairing files (intermodel.config.loader): names are shown and used in file names.
AGENT_KEY = Pattern(re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,31}"),
                    "an agent name (a letter, then letters, digits, - and _)")
PRICE = Table({"input": Field(Real(0, MAX_PRICE)), "output": Field(Real(0, MAX_PRICE))})
AGENT_TABLE = Table({
    "provider": Field(TEXT), "model": Field(TEXT), "base_url": _optional(Nullable(TEXT)),
    "price": _optional(Nullable(PRICE)), "prompt_file": _optional(_INLINED),
    "script": _optional(Table({"file": _optional(_INLINED)})),
})


def _dialogue_or_panel(config: dict[str, Any], where: str) -> None:
    if "panel" not in config and "dialogue" not in config:
        raise Invalid(where, "neither a dialogue nor a panel")


CONFIG = Table({
    "name": Field(TEXT), "description": _optional(TEXT),
    "agents": Field(MapOf(AGENT_KEY, AGENT_TABLE, fewest=1, most=MAX_PANEL)),
    "dialogue": _optional(Table({"max_turns": Field(BUDGET),
                                 "opener_file": _optional(_INLINED)})),
    "panel": _optional(Table({"prompt_file": _optional(_INLINED)})),
}, rules=(_dialogue_or_panel,))
EXPERIMENT = Table({
    **{name: _optional(TEXT) for name in ("name", "entry", "pairing", "opener")},
    "replicate": _optional(Whole(1, MAX_REPLICATES)),
    "seed": _optional(Nullable(Whole(MIN_INT, MAX_INT))),
})
PARENT = Table({
    "run_id": Field(RUN_ID), "transcript": Field(TEXT), "after_turn": Field(TURNS),
    "config": _optional(CONFIG),
})
HEADER = Table({
    "run_id": Field(RUN_ID), "started_at": Field(TEXT), "pairing": Field(TEXT),
    "source": Field(TEXT), "versions": _optional(VERSIONS),
    "experiment": _optional(Nullable(EXPERIMENT)), "parent": _optional(Nullable(PARENT)),
    "config": Field(CONFIG),
})


def read_header(data: dict[str, Any]) -> Run:
    """Check a header (its `kind` and `format` already checked); the run its records belong to."""
    HEADER.read(data, "header", Run())
    return Run(agents=tuple(data["config"]["agents"]))


def read_record(data: dict[str, Any], run: Run) -> Record:
    """The record of a known `kind` that `data` holds, checked field by field."""
    kind = data["kind"]
    record: Record = RECORDS[kind].read(data, kind, run)
    return record


# -- every line as a whole -----------------------------------------------------------------------

_SURROGATE = re.compile(r"[\ud800-\udfff]")
_ESCAPED_SURROGATE = re.compile(r"\\u[dD][89a-fA-F]")  # a surrogate can only come escaped
_LONG_DIGITS = re.compile(r"[0-9]{19}")  # every integer beyond 64 bits has 19 digits or more
_NAMED_LEVELS = 4  # e.g. header.config.agents.ada


def check_json(data: Any, where: str = "", text: str | None = None) -> None:
    """Refuse what no field may hold: nesting beyond MAX_RECORD_DEPTH, integers beyond 64 bits,
    lone surrogates (from JSON escapes like \\ud800). Iterative: depth is what is being checked.
    A problem is reported at its field, or for one nested deeper, at its ancestor
    _NAMED_LEVELS down (a path 60 levels long helps no one).

    `text`, the JSON `data` was parsed from, spares the walk when it cannot hold any of these:
    fewer brackets than the depth allowed, no 19-digit run, no escaped surrogate."""
    if text is not None and text.count("[") + text.count("{") <= MAX_RECORD_DEPTH \
            and not _LONG_DIGITS.search(text) and not _ESCAPED_SURROGATE.search(text):
        return
    stack: list[tuple[Any, str, int]] = [(data, where, 0)]
    while stack:
        value, path, depth = stack.pop()
        if isinstance(value, dict | list):
            if depth >= MAX_RECORD_DEPTH:
                raise Invalid(path, f"nested more than {MAX_RECORD_DEPTH} levels deep")
            items = value.items() if isinstance(value, dict) else enumerate(value)
            for key, item in items:
                if isinstance(key, str) and _SURROGATE.search(key):
                    raise Invalid(path, "a key holds a lone surrogate (not valid Unicode)")
                inner = path
                if depth < _NAMED_LEVELS:
                    inner = f"{path}.{key}" if isinstance(key, str) else f"{path}[{key}]"
                stack.append((item, inner.lstrip("."), depth + 1))
        elif isinstance(value, str):
            if _SURROGATE.search(value):
                raise Invalid(path, "a string holds a lone surrogate (not valid Unicode)")
        elif isinstance(value, int) and not MIN_INT <= value <= MAX_INT:
            raise Invalid(path, f"a number beyond 64 bits ({short(value)})")
