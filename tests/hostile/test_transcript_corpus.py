"""A generated corpus of broken transcripts, through every command that reads one.

Real transcripts (a dialogue with every record kind, resumed and branched; the branch; a panel;
see `support.record_bases`) are broken one field at a time: every field of the first record of
each kind, nested fields and the header's included, is left out, or set to null, a list, an
object, an integer of 401 digits, a list nested 100 levels (past the schema's limit) or 50,000
levels (past the JSON parser's recursion), or a string of the wrong kind. Each variant goes
through inspect, export (md and html), stats, index, replay, resume and branch, by the real entry
point in this process. Whether a variant must be refused is decided here from the record types
(`intermodel.records`) and docs/transcripts.md, not from the schema under test:

- refused: every command fails with the same one line, `FILE:LINE: FIELD…`, exit 2;
- read: no command raises, each exits 0, 1 or 2, and a failure is one line.

Special files (torn and invalid UTF-8 lines, NaN, a second header, a FIFO, …) follow, and
hypothesis throws arbitrary JSON values and bytes at the same readers.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from dataclasses import MISSING, dataclass
from dataclasses import fields as dataclass_fields
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intermodel.records import RECORD_TYPES
from tests.hostile.support import REPO, Bases, Result, cli, record_bases

MUTATIONS = ("missing", "null", "list", "object", "huge", "deep", "deeper", "string")
_SENTINEL = "\x00value\x00"
_RAW = {
    "null": "null",
    "list": json.dumps(["x", [], {}]),
    "object": json.dumps({"x": {"y": 1}}),
    "huge": str(10**400),
    "deep": "[" * 100 + "]" * 100,  # past the 64 levels a line may nest
    "deeper": "[" * 50_000 + "]" * 50_000,  # past the JSON parser's recursion
}
HOSTILE_TEXT = "\x1b[2J\u202e<script>alert(1)</script> ${HOME} {name}"


@dataclass(frozen=True)
class Kind:
    """What a field holds, as the record types and docs/transcripts.md say."""

    text: bool = False  # any string will do
    optional: bool = False  # may be left out
    nullable: bool = False  # null is allowed
    any_object: bool = False  # an object whose fields are all optional
    wrong_string: str = "abc"  # a string that does not fit (for a non-text field)
    config_only: bool = False  # checked when the stored config loads, not by the reader
    reported_at: str = ""  # where a refusal is reported, when not at the field itself


AGENT_FIELDS = {"agent", "ended_by", "to"}


def record_kind(cls: type, name: str) -> Kind:
    """The kind of one field of a record class, from its annotation and default."""
    field = next(f for f in dataclass_fields(cls) if f.name == name)
    annotation = str(field.type)
    optional = field.default is not MISSING or field.default_factory is not MISSING
    if name in AGENT_FIELDS:
        return Kind(optional=optional, nullable="None" in annotation, wrong_string="mallory")
    if name == "run_id":
        return Kind(wrong_string="../../etc/passwd")
    if annotation == "Usage":  # docs: null where the server did not report usage
        return Kind(optional=True, nullable=True, any_object=True)
    # A closed set of names reads any string: one this version does not know is its UNKNOWN.
    text = annotation in ("str", "EndReason", "ErrorKind")
    return Kind(text=text, optional=optional, nullable="None" in annotation)


COUNT = Kind(optional=True, nullable=True)  # a token count in a usage object
HEADER: dict[str, Kind] = {
    "format": Kind(wrong_string="1"),
    "run_id": Kind(wrong_string="../../etc/passwd"),
    "started_at": Kind(text=True),
    "pairing": Kind(text=True),
    "source": Kind(text=True),
    "versions": Kind(optional=True),
    "versions.intermodel": Kind(text=True, optional=True),
    "experiment": Kind(optional=True, nullable=True, any_object=True),
    "experiment.name": Kind(text=True, optional=True),
    "experiment.replicate": Kind(optional=True),
    "experiment.seed": Kind(optional=True, nullable=True),
    "config": Kind(),
    "config.name": Kind(text=True),
    "config.description": Kind(text=True, optional=True),
    "config.agents": Kind(),
    "config.agents.ada.provider": Kind(text=True),
    "config.agents.ada.model": Kind(text=True),
    "config.agents.ada.prompt": Kind(config_only=True),
    "config.dialogue": Kind(reported_at="header.config"),  # left out: neither it nor a panel
    "config.dialogue.max_turns": Kind(),
    "config.dialogue.opener": Kind(config_only=True),
    "config.retry": Kind(config_only=True),
}
BRANCH_HEADER: dict[str, Kind] = {
    "parent": Kind(optional=True, nullable=True),
    "parent.run_id": Kind(wrong_string="../../etc/passwd"),
    "parent.transcript": Kind(text=True),
    "parent.after_turn": Kind(),
    "parent.config": Kind(optional=True),
    "parent.config.agents": Kind(),
}
PANEL_HEADER: dict[str, Kind] = {
    "config.panel": Kind(any_object=True, reported_at="header.config"),
    "config.panel.prompt": Kind(config_only=True),
    "config.agents.poet.provider": Kind(text=True),
}


def refused(kind: Kind, mutation: str) -> bool:
    if mutation in ("huge", "deep", "deeper"):
        return True  # nothing may hold these, anywhere in a line
    if kind.config_only:
        return False
    return {
        "missing": not kind.optional,
        "null": not kind.nullable,
        "list": True,
        "object": not kind.any_object,
        "string": not kind.text,
    }[mutation]


# -- building the variants -----------------------------------------------------------------------


@dataclass(frozen=True)
class Variant:
    name: str
    path: Path
    line: int  # the line that was broken
    field: str | None  # the field a refusal must name (None: the line as a whole)
    refused: bool


def _set(record: dict[str, Any], dotted: str, mutation: str, kind: Kind) -> str:
    """The line of `record` with the field at `dotted` broken by `mutation`."""
    *parents, last = dotted.split(".")
    target = record
    for key in parents:
        target = target[key]
    if mutation == "missing":
        del target[last]
        return json.dumps(record, ensure_ascii=False)
    if mutation == "string":
        target[last] = HOSTILE_TEXT if kind.text or kind.config_only else kind.wrong_string
        return json.dumps(record, ensure_ascii=False)
    target[last] = _SENTINEL
    return json.dumps(record, ensure_ascii=False).replace(json.dumps(_SENTINEL), _RAW[mutation])


def _fields(record: dict[str, Any], cls: type) -> Iterator[tuple[str, Kind]]:
    yield "kind", Kind(wrong_string="bogus", text=True)  # an unknown kind: skipped, counted
    for name in record:
        if name == "kind":
            continue
        yield name, record_kind(cls, name)
        if name == "usage" and isinstance(record[name], dict):
            nested = record[name]
            if cls.__name__ == "RunEnd":  # usage per agent; null: none reported
                agent = next(iter(nested))
                yield f"usage.{agent}", Kind(optional=True, nullable=True, any_object=True)
                nested, name = nested[agent], f"usage.{agent}"
            for count in nested:
                yield f"{name}.{count}", COUNT


def _targets(bases: Bases) -> Iterator[tuple[Path, int, str, Kind]]:
    """(base, line number, field, kind) for every field to break."""
    lines = bases.dialogue.read_text(encoding="utf-8").splitlines()
    seen: set[str] = set()
    for number, line in enumerate(lines[1:], start=2):
        record = json.loads(line)
        if record["kind"] in seen:
            continue
        seen.add(record["kind"])
        for name, kind in _fields(record, RECORD_TYPES[record["kind"]]):
            yield bases.dialogue, number, name, kind
    assert seen == set(RECORD_TYPES), "the base transcript lacks a record kind"
    for name, kind in HEADER.items():
        yield bases.dialogue, 1, name, kind
    for name, kind in BRANCH_HEADER.items():
        yield bases.branch, 1, name, kind
    for name, kind in PANEL_HEADER.items():
        yield bases.panel, 1, name, kind
    yield bases.panel, 2, "agent", record_kind(RECORD_TYPES["turn"], "agent")  # a panel answer


def make_variants(bases: Bases, folder: Path) -> list[Variant]:
    folder.mkdir()
    variants = []
    for base, number, name, kind in _targets(bases):
        lines = base.read_text(encoding="utf-8").splitlines()
        for mutation in MUTATIONS:
            out = list(lines)
            header = json.loads(out[0])
            if name != "run_id":  # its own run, so `index` keeps the variants apart
                header["run_id"] = f"{len(variants):012x}"
                out[0] = json.dumps(header, ensure_ascii=False)
            record = header if number == 1 else json.loads(lines[number - 1])
            out[number - 1] = _set(record, name, mutation, kind)
            prefix = "header" if number == 1 else json.loads(lines[number - 1])["kind"]
            path = folder / f"{len(variants):04d}-{prefix}.{name}-{mutation}.jsonl"
            path.write_text("\n".join(out) + "\n", encoding="utf-8")
            field = None if mutation == "deeper" else kind.reported_at or (
                "kind" if name == "kind" else ".".join(f"{prefix}.{name}".split(".")[:5]))
            variants.append(Variant(path.name, path, number, field, refused(kind, mutation)))
    return variants


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    return record_bases(tmp_path_factory.mktemp("bases"))


@pytest.fixture(scope="module")
def variants(bases: Bases, tmp_path_factory: pytest.TempPathFactory) -> list[Variant]:
    return make_variants(bases, tmp_path_factory.mktemp("corpus") / "variants")


# -- running them --------------------------------------------------------------------------------


def commands(path: Path, db: Path) -> dict[str, list[str | Path]]:
    """The eight readers. resume and branch come last: they may write to the file. branch is
    refused after its whole plan (a bad --to), so no run starts for it."""
    return {
        "inspect": ["inspect", path],
        "export md": ["export", path],
        "export html": ["export", path, "--format", "html"],
        "stats": ["stats", path],
        "index": ["index", path, "--db", db],
        "replay": ["replay", path],  # not a terminal: refused after the transcript is read
        "resume": ["resume", path, "--headless"],
        "branch": ["branch", path, "--turn", "2", "--say", "hi", "--to", "nobody",
                   "--headless"],
    }


def check_refused(variant: Variant, results: dict[str, Result]) -> None:
    lines = {name: r.lines for name, r in results.items()}
    first = lines["inspect"]
    assert len(first) == 1, (variant.name, results["inspect"].err)
    assert all(r.code == 2 for r in results.values()), (variant.name, results)
    assert all(found == first for found in lines.values()), (variant.name, lines)
    prefix = f"intermodel: {variant.path}:{variant.line}: "
    assert first[0].startswith(prefix), (variant.name, first)
    if variant.field is not None and variant.field != "header.format":
        message = first[0].removeprefix(prefix).removeprefix("not an intermodel transcript: ")
        assert message.startswith(variant.field), (variant.name, first)


def check_read(variant: Variant, results: dict[str, Result]) -> None:
    for name, result in results.items():
        assert result.code in (0, 1, 2), (variant.name, name, result)
        assert all(line.startswith("intermodel: ") for line in result.lines), (
            variant.name, name, result.err)
        if result.code == 2:  # a refusal, but not the reader's (a line at fault)
            assert len(result.lines) == 1, (variant.name, name, result.err)
            assert not re.match(rf"intermodel: {re.escape(str(variant.path))}:\d+: ",
                                result.lines[0]), (variant.name, name, result.err)
    assert results["stats"].code == 0 and results["export html"].code == 0, variant.name
    assert results["index"].code == 0, (variant.name, results["index"].err)


def test_every_broken_field_of_every_record_kind_through_every_reader(
        variants: list[Variant], tmp_path: Path) -> None:
    assert len(variants) > 800
    db = tmp_path / "index.sqlite"
    counts = {True: 0, False: 0}
    for variant in variants:
        results: dict[str, Result] = {}
        for name, argv in commands(variant.path, db).items():
            try:
                results[name] = cli(*argv)
            except BaseException as exc:  # a traceback is the failure this test is about
                pytest.fail(f"{variant.name}: `{name}` raised {exc!r}")
        (check_refused if variant.refused else check_read)(variant, results)
        counts[variant.refused] += 1
    assert counts[True] > 500 and counts[False] > 100, counts


# -- special files and lines ---------------------------------------------------------------------


def _with(base: Path, target: Path, edit: Any) -> Path:
    lines = base.read_bytes().splitlines(keepends=True)
    target.write_bytes(b"".join(edit(lines)))
    return target


def _replace(number: int, raw: bytes) -> Any:
    return lambda lines: [*lines[:number - 1], raw, *lines[number:]]


def special_files(bases: Bases, folder: Path) -> list[tuple[str, Path, int | None, str | None]]:
    """(name, file, the line a refusal names or None if it must be read, what it must say)."""
    folder.mkdir()
    turn = 1 + next(n for n, line in enumerate(bases.dialogue.read_text().splitlines())
                    if '"kind":"turn"' in line)
    text = bases.dialogue.read_bytes().splitlines(keepends=True)[turn - 1]
    header = bases.dialogue.read_bytes().splitlines(keepends=True)[0]
    d = bases.dialogue
    cases = [
        ("torn last line", _with(d, folder / "torn.jsonl", lambda ls: [*ls, text[:40]]), None,
         None),
        ("torn, invalid UTF-8", _with(d, folder / "torn-utf8.jsonl",
                                      lambda ls: [*ls, b'{"kind":"turn","text":"\xff\xfe']),
         None, None),
        ("blank lines and CRLF", _with(d, folder / "crlf.jsonl",
                                       lambda ls: [ls[0], b"\n", *(x.replace(b"\n", b"\r\n")
                                                                   for x in ls[1:])]),
         None, None),
        ("invalid UTF-8", _with(d, folder / "utf8.jsonl",
                                _replace(turn, text.replace(b'"text":"', b'"text":"\xff'))),
         turn, "not valid UTF-8 (byte 0xff at column"),
        ("NaN", _with(d, folder / "nan.jsonl",
                      _replace(turn, text.replace(b'"latency":', b'"latency":NaN,"x":'))),
         turn, "NaN is not a number a transcript may hold"),
        ("Infinity", _with(d, folder / "inf.jsonl", _replace(
            turn, text.replace(b'"latency":', b'"latency":-Infinity,"x":'))),
         turn, "-Infinity is not a number a transcript may hold"),
        ("1e400", _with(d, folder / "e400.jsonl",
                        _replace(turn, text.replace(b'"latency":', b'"latency":1e400,"x":'))),
         turn, "the number 1e400 is too large"),
        ("4301 digits", _with(d, folder / "digits.jsonl",
                              _replace(turn, text.replace(b'"index":', b'"x":' + b"9" * 4301
                                                          + b',"index":'))),
         turn, "a number of thousands of digits"),
        ("a lone surrogate", _with(d, folder / "surrogate.jsonl",
                                   _replace(turn, text.replace(b'"text":"', b'"text":"\\ud800'))),
         turn, "turn.text: a string holds a lone surrogate"),
        ("a second header", _with(d, folder / "two.jsonl", lambda ls: [*ls, header]),
         len(d.read_bytes().splitlines()) + 1, "a second header record"),
        ("a turn twice", _with(d, folder / "twice.jsonl", lambda ls: [*ls, text]),
         len(d.read_bytes().splitlines()) + 1, "turn.index: turn 1 is recorded twice"),
        ("not JSON", _with(d, folder / "garbage.jsonl", _replace(turn, b"\x00\x00\x00\n")),
         turn, "not valid JSON"),
        ("an array", _with(d, folder / "array.jsonl", _replace(turn, b"[1, 2]\n")),
         turn, "not a JSON object (got a list)"),
        ("a byte-order mark", _with(d, folder / "bom.jsonl",
                                    lambda ls: [b"\xef\xbb\xbf" + ls[0], *ls[1:]]),
         1, "not an intermodel transcript: not valid JSON (Unexpected UTF-8 BOM"),
    ]
    empty = folder / "empty.jsonl"
    empty.write_bytes(b"")
    cases.append(("empty", empty, 0, "not an intermodel transcript (no header record)"))
    return cases


def test_special_lines_through_every_reader(bases: Bases, tmp_path: Path) -> None:
    cases = special_files(bases, tmp_path / "special")
    for number, (name, path, line, message) in enumerate(cases):
        db = tmp_path / f"{number}.sqlite"  # the files hold one run: an index each
        results = {command: cli(*argv) for command, argv in commands(path, db).items()}
        if line is None:
            check_read(Variant(name, path, 0, None, refused=False), results)
            continue
        where = f"{path}:{line}: " if line else f"{path}: "
        for command, result in results.items():
            assert result.code == 2, (name, command, result)
            assert len(result.lines) == 1 and result.lines[0].startswith(
                f"intermodel: {where}{message}"), (name, command, result.lines)


FIFO_SCRIPT = textwrap.dedent("""
    import sys
    from tests.hostile.support import cli
    path, db = sys.argv[1:]
    from tests.hostile.test_transcript_corpus import commands
    for name, argv in commands(path, db).items():
        result = cli(*argv)
        print(name, result.code, result.err.strip(), sep="\\t")
""")


def test_a_fifo_through_every_reader(tmp_path: Path) -> None:
    fifo = tmp_path / "waiting.jsonl"
    os.mkfifo(fifo)
    # A separate process with a time limit: a reader that waits on the FIFO must fail the test,
    # not hang it.
    done = subprocess.run([sys.executable, "-c", FIFO_SCRIPT, str(fifo), str(tmp_path / "db")],
                          cwd=REPO, capture_output=True, text=True, timeout=60, check=False,
                          stdin=subprocess.DEVNULL)
    assert done.returncode == 0, done.stderr
    rows = [line.split("\t") for line in done.stdout.splitlines()]
    expected = (f"intermodel: {fifo}: cannot read it: not a regular file (it is a FIFO (named "
                "pipe))")
    assert rows == [[name, "2", expected] for name in commands(fifo, tmp_path)]


# -- arbitrary values (hypothesis) ---------------------------------------------------------------

JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner,
                                                                max_size=4),
    max_leaves=12)


@pytest.fixture(scope="module")
def scratch(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("arbitrary")


def _outcome(path: Path, db: Path) -> dict[str, Result]:
    return {name: cli(*argv) for name, argv in commands(path, db).items()}


def _agree(path: Path, results: dict[str, Result]) -> None:
    """Either the reader refuses the file, and every command says so in the same one line, or
    every command gets past reading it; no command raises (cli would)."""
    at_a_line = re.compile(rf"intermodel: {re.escape(str(path))}:\d+: ")
    located = {name: r.lines for name, r in results.items()
               if r.code == 2 and r.lines and at_a_line.match(r.lines[0])}
    if located:
        assert len(located) == len(results), results
        assert len({tuple(lines) for lines in located.values()}) == 1, located
        assert all(len(lines) == 1 for lines in located.values()), located
    for result in results.values():
        assert result.code in (0, 1, 2) and all(
            line.startswith("intermodel: ") for line in result.lines), result


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), value=JSON)
def test_any_value_in_any_field(bases: Bases, scratch: Path, data: st.DataObject,
                                value: Any) -> None:
    lines = bases.dialogue.read_text(encoding="utf-8").splitlines()
    number = data.draw(st.integers(1, len(lines)), label="line")
    record = json.loads(lines[number - 1])
    keys = sorted(k for k in record if not (number == 1 and k in ("kind", "format")))
    key = data.draw(st.sampled_from(keys), label="field")
    record[key] = value
    lines[number - 1] = json.dumps(record)  # NaN and Infinity are written as JSON would not
    path = scratch / "any.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    _agree(path, _outcome(path, scratch / "any.sqlite"))


@settings(max_examples=40, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data(), garbage=st.binary(max_size=64))
def test_any_bytes_for_a_line(bases: Bases, scratch: Path, data: st.DataObject,
                              garbage: bytes) -> None:
    lines = bases.dialogue.read_bytes().splitlines(keepends=True)
    number = data.draw(st.integers(1, len(lines)), label="line")
    lines[number - 1] = garbage.replace(b"\n", b" ") + b"\n"
    path = scratch / "bytes.jsonl"
    path.write_bytes(b"".join(lines))
    _agree(path, _outcome(path, scratch / "bytes.sqlite"))


TEXT_FIELDS = ("text", "thinking", "message", "detail", "model", "stop_reason", "at", "reason",
               "error", "signature", "request_hash", "cause", "detector", "action")


@settings(max_examples=6, deadline=None, database=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(data=st.data())
def test_odd_but_valid_records_resume_and_branch_for_real(bases: Bases, scratch: Path,
                                                          data: st.DataObject) -> None:
    """Any text where text belongs, any in-bounds number where a duration or a token count
    belongs: the transcript is read, and a resume and a branch of it really run."""
    lines = bases.dialogue.read_text(encoding="utf-8").splitlines()
    for _ in range(data.draw(st.integers(1, 4), label="edits")):
        number = data.draw(st.integers(2, len(lines)), label="line")
        record = json.loads(lines[number - 1])
        texts = [k for k in TEXT_FIELDS if isinstance(record.get(k), str)]
        if texts:
            record[data.draw(st.sampled_from(texts))] = data.draw(st.text(), label="text")
        if "latency" in record:
            record["latency"] = data.draw(st.floats(0, 10**8), label="latency")
        if isinstance(record.get("usage"), dict) and "input_tokens" in record["usage"]:
            record["usage"]["input_tokens"] = data.draw(
                st.none() | st.integers(0, 10**12), label="tokens")
        lines[number - 1] = json.dumps(record, ensure_ascii=False)
    path = scratch / "odd.jsonl"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    for argv in (["inspect", path], ["export", path, "--format", "html"],
                 ["branch", path, "--turn", "3", "--turns", "4", "--headless", "--out", scratch],
                 ["resume", path, "--turns", "9", "--headless"]):
        result = cli(*argv)
        assert result.code in (0, 1) if argv[0] == "inspect" else result.code == 0, (
            argv[0], result)
