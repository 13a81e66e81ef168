"""Readers of files someone else wrote: special files, folders with bad files in them, configs
with absurd numbers, deep nesting or a FIFO for a prompt, and the bounds that keep a transcript
indexable. (The generated corpus of broken transcripts is in test_transcript_corpus.py.)"""

from __future__ import annotations

import json
import os
import sqlite3
import textwrap
from contextlib import closing
from pathlib import Path

import anyio
import pytest

from intermodel.config import experiment as spec
from intermodel.config import schema
from intermodel.control.server import ControlServer
from intermodel.engine.events import TurnStarted
from intermodel.engine.prepare import prepared_run
from intermodel.transcript.reader import read_transcript
from tests.conftest import SCRIPTED, PairingFactory
from tests.hostile.support import Bases, cli, cli_process, record_bases

DOCS = Path(__file__).resolve().parent.parent.parent / "docs"


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> Bases:
    return record_bases(tmp_path_factory.mktemp("bases"))


def lines_of(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines(keepends=True)


def edited(source: Path, target: Path, number: int, change: dict[str, object]) -> Path:
    """A copy of `source` with line `number` (from 1) updated by `change`."""
    lines = lines_of(source)
    record = json.loads(lines[number - 1])
    record.update(change)
    lines[number - 1] = json.dumps(record) + "\n"
    target.write_text("".join(lines), encoding="utf-8")
    return target


def line_of(path: Path, kind: str) -> int:
    """The number of the first line of `path` holding a record of `kind`."""
    return next(n for n, line in enumerate(lines_of(path), start=1)
                if json.loads(line)["kind"] == kind)


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "fifo"
    path.mkdir()
    os.mkfifo(path / "waiting.jsonl")
    return path / "waiting.jsonl"


# -- special files -----------------------------------------------------------------------------


def test_a_fifo_named_like_a_transcript_is_refused_not_waited_on(
        bases: Bases, fifo: Path) -> None:
    # Real processes, bounded in time: before, each of these waited for a writer forever.
    single = cli_process("inspect", fifo)
    assert (single.code, single.err) == (
        2, f"intermodel: {fifo}: cannot read it: not a regular file (it is a FIFO (named "
           "pipe))\n")
    (fifo.parent / "good.jsonl").write_bytes(bases.dialogue.read_bytes())
    for command in (["stats"], ["index"], ["export", "--format", "html"]):
        result = cli_process(command[0], fifo.parent, *command[1:])
        assert result.code == 0, (command, result.err)
        assert result.err.splitlines()[-2:] == [
            f"intermodel: skipped {fifo}: cannot read it: not a regular file (it is a FIFO "
            "(named pipe))", "intermodel: 1 file skipped"], command


@pytest.mark.parametrize("command", [["inspect"], ["export"], ["export", "--format", "html"],
                                     ["stats"], ["index"], ["replay"], ["resume"],
                                     ["branch", "--turn", "1"]])
def test_a_device_or_a_folder_is_not_a_transcript(command: list[str], tmp_path: Path) -> None:
    zero = tmp_path / "zero.jsonl"
    zero.symlink_to("/dev/zero")
    result = cli(command[0], zero, *command[1:])
    assert (result.code, result.lines) == (2, [
        f"intermodel: {zero}: cannot read it: not a regular file (it is a character device)"])
    folder = tmp_path / "folder.jsonl"
    folder.mkdir()
    result = cli(command[0], folder, *command[1:])
    if command[0] in ("stats", "index") or command[1:] == ["--format", "html"]:
        assert result.code == 0  # a folder is what these read: it holds no transcript
    else:
        assert (result.code, result.lines) == (2, [
            f"intermodel: {folder}: cannot read it: not a regular file (it is a folder)"])


# -- folders with bad files in them --------------------------------------------------------------


FOLDER_COMMANDS = [["stats"], ["index"], ["export", "--format", "html"]]


@pytest.mark.parametrize("command", FOLDER_COMMANDS, ids=["stats", "index", "export-html"])
def test_a_folder_command_skips_bad_files_names_them_and_counts_them(
        command: list[str], bases: Bases, tmp_path: Path) -> None:
    folder = tmp_path / "night"
    (folder / "more").mkdir(parents=True)
    good = folder / "good.jsonl"
    good.write_bytes(bases.dialogue.read_bytes())
    n = line_of(bases.dialogue, "turn")
    bad = edited(bases.dialogue, folder / "more" / "bad.jsonl", n, {"index": "four"})
    foreign = folder / "notes.jsonl"
    foreign.write_text('{"hello": 1}\n')
    result = cli(command[0], folder, *command[1:])
    assert result.code == 0, result.err
    assert result.lines == [
        f'intermodel: skipped {bad}:{n}: turn.index: expected a whole number, got "four"',
        f"intermodel: skipped {foreign}:1: not an intermodel transcript (no header record)",
        "intermodel: 2 files skipped"]

    good.unlink()  # nothing left that can be read: a distinct exit code
    result = cli(command[0], folder, *command[1:])
    assert result.code == 2 and result.lines[-1] == "intermodel: 2 files skipped"

    # One file given on its own is read, or the command fails with one line.
    result = cli(command[0], bad, *command[1:])
    assert (result.code, result.lines) == (2, [
        f'intermodel: {bad}:{n}: turn.index: expected a whole number, got "four"'])

    empty = tmp_path / "empty"
    empty.mkdir()
    assert cli(command[0], empty, *command[1:]).code == 0  # nothing to read is not a failure


# -- what a stored config may hold ---------------------------------------------------------------


def test_a_stored_config_names_no_file(bases: Bases, tmp_path: Path) -> None:
    header = json.loads(lines_of(bases.dialogue)[0])
    ada = header["config"]["agents"]["ada"]
    del ada["prompt"]
    ada["prompt_file"] = "/etc/passwd"  # would be read, and sent as ada's role prompt
    path = tmp_path / "edited.jsonl"
    path.write_text(json.dumps(header) + "\n" + "".join(lines_of(bases.dialogue)[1:]))
    result = cli("inspect", path)
    assert (result.code, result.lines) == (2, [
        f"intermodel: {path}:1: header.config.agents.ada.prompt_file: a stored config has its "
        "files inlined; a file reference is not allowed (the transcript was edited)"])


def test_replay_refuses_a_config_that_does_not_load_before_any_ui(
        bases: Bases, tmp_path: Path) -> None:
    header = json.loads(lines_of(bases.dialogue)[0])
    header["config"]["agents"]["ada"]["temperature"] = 7
    path = tmp_path / "edited.jsonl"
    path.write_text(json.dumps(header) + "\n" + "".join(lines_of(bases.dialogue)[1:]))
    result = cli("replay", path)
    assert (result.code, result.lines) == (2, [
        f"intermodel: {path}: its stored config does not load: config.agents.ada.temperature: "
        "expected a value from 0 to 2, got 7"])


def test_a_panel_transcript_is_indexed(bases: Bases, tmp_path: Path) -> None:
    result = cli("index", bases.panel, "--db", tmp_path / "db.sqlite")
    assert result.code == 0, result.err
    with closing(sqlite3.connect(tmp_path / "db.sqlite")) as db:
        assert db.execute("SELECT turns, max_turns, end_reason FROM runs").fetchall() == [
            (3, 3, "complete")]


# -- numbers -------------------------------------------------------------------------------------


# Where each table's keys are, as the limits table in docs/config.md names it.
TABLES = {"[dialogue]": schema.DIALOGUE, "[retry]": schema.RETRY,
          "[detectors]": schema.DETECTORS, "[agents.NAME]": schema.AGENT,
          "[agents.NAME.price]": schema.PRICE, "[agents.NAME.thinking]": schema.THINKING,
          "[agents.NAME.script]": schema.SCRIPT, "experiment file": spec.EXPERIMENT,
          "[limits.NAME]": spec.LIMIT, "top level": schema.TOP, "[panel]": schema.PANEL}
NUMBERS = [(table, key, field) for table, fields in TABLES.items()
           for key, field in fields.items() if field.kind in (schema.INT, schema.NUMBER)]


@pytest.mark.parametrize(("table", "key", "field"), NUMBERS,
                         ids=[f"{t} {k}" for t, k, _ in NUMBERS])
def test_every_number_in_a_config_has_a_documented_upper_bound(
        table: str, key: str, field: schema.Field) -> None:
    assert isinstance(field.check, schema.Range)
    assert field.check.high < float("inf")
    assert field.check(field.check.high + 1) is not None
    reference = (DOCS / "config.md").read_text(encoding="utf-8")
    limits = reference[reference.index("## Limits"):]
    row = next((line for line in limits.splitlines()
                if line.startswith(f"| {table} | `{key}` |")), "")
    assert f"| {field.check.high:,} |".replace(",", " ") in row, f"no row for {table} {key}"


@pytest.mark.parametrize(("value", "message"), [
    ("100000000000000000000",
     "dialogue.max_turns: expected a value from 1 to 1000000, got 100000000000000000000"),
    ("1e20", "dialogue.max_turns: expected an integer, got a number (1e+20)"),
    ("1" * 5000, "not valid TOML: a number of thousands of digits"),
])
def test_absurd_numbers_in_a_pairing_are_one_line(value: str, message: str,
                                                  tmp_path: Path) -> None:
    path = tmp_path / "pair.toml"
    path.write_text(SCRIPTED.replace("max_turns = 4", f"max_turns = {value}"))
    result = cli("validate", path)
    assert (result.code, result.lines) == (2, [f"{path}: {message}"])


NESTED = {
    "arrays": "x = " + "[" * 5000 + "]" * 5000,
    "inline tables": "x = " + "{a = " * 500 + "1" + "}" * 500,
    "dotted keys": "x" + ".x" * 5000 + " = 1",
    "tables": "[" + ".".join(["t"] * 40) + "]",
}


@pytest.mark.parametrize("nested", NESTED.values(), ids=NESTED.keys())
@pytest.mark.parametrize("kind", ["pairing", "experiment"])
def test_deeply_nested_toml_is_one_line(kind: str, nested: str, tmp_path: Path) -> None:
    path = tmp_path / f"{kind}.toml"
    path.write_text(f"{nested}\n")
    result = cli("validate", path) if kind == "pairing" else cli("batch", path, "--dry-run")
    assert result.code == 2
    assert result.lines in ([f"{path}: tables and lists nest more than 32 levels deep"],
                            [f"intermodel: {path}: tables and lists nest more than 32 levels "
                             "deep"])


def test_control_extend_is_bounded_on_the_command_line_and_the_socket(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    from intermodel.security.bounds import MAX_TURNS

    result = cli("control", tmp_path / "run.jsonl", "extend", "100000000000000000000")
    assert result.code == 2 and "expected a number from 1 to 1000000" in result.err

    pairing = make_pairing(SCRIPTED.replace('"ada three"]', '"ada three"]\ndelay = 0.02'))
    replies: list[dict[str, object]] = []

    async def main() -> Path:
        async with prepared_run(pairing, out_dir=tmp_path) as run:
            assert run.transcript is not None
            server = ControlServer(run.session, run.transcript)
            events = run.session.subscribe()

            async def steer() -> None:
                async for event in events:
                    if isinstance(event, TurnStarted) and event.turn == 2:
                        for turns in (10**20, True, "5", MAX_TURNS, MAX_TURNS):
                            replies.append(server.answer({"command": "extend", "turns": turns}))
                        run.session.controls.stop(now=True)

            with anyio.fail_after(20):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(steer)
                    await run.session.run()
                    tg.cancel_scope.cancel()
            return run.transcript

    transcript = anyio.run(main)
    refused = {"ok": False, "error": "extend needs a whole number of turns, from 1 to 1000000"}
    assert replies[:3] == [refused, refused, refused]
    assert [(r["ok"], "accepted" in r) for r in replies[3:]] == [(True, True)] * 2
    budgets = [r.max_turns for r in read_transcript(transcript).records
               if type(r).__name__ == "BudgetChange"]
    assert budgets == [MAX_TURNS, MAX_TURNS]  # capped: a transcript never holds more
    result = cli("index", transcript, "--db", tmp_path / "db.sqlite")
    assert result.code == 0, result.err


# -- files a pairing names -----------------------------------------------------------------------


PROMPT_FILE = textwrap.dedent("""
    [dialogue]
    opener = "Hello."

    [agents.ada]
    provider = "scripted"
    prompt_file = "role.txt"
    script = { rule = "echo" }

    [agents.bo]
    provider = "scripted"
    script = { rule = "echo" }
""")


def test_prompt_file_must_be_a_small_regular_file(fifo: Path, tmp_path: Path) -> None:
    pairing = tmp_path / "pair.toml"
    pairing.write_text(PROMPT_FILE)
    role = tmp_path / "role.txt"
    role.write_bytes(b"r" * 1_048_576)  # exactly the limit
    assert cli("validate", pairing).code == 0
    role.write_bytes(b"r" * 1_048_577)
    assert cli("validate", pairing).lines == [
        f"{pairing}: agents.ada.prompt_file: cannot read 'role.txt': larger than 1 MiB"]
    role.write_bytes(b"\xff\xfe")
    assert cli("validate", pairing).lines == [
        f"{pairing}: agents.ada.prompt_file: cannot read 'role.txt': not UTF-8 text"]
    role.unlink()
    # Real processes, bounded in time and memory: before, the FIFO hung `validate` and
    # /dev/zero was read until memory ran out.
    for target, kind in ((fifo, "a FIFO (named pipe)"), ("/dev/zero", "a character device")):
        role.unlink(missing_ok=True)
        role.symlink_to(target)
        result = cli_process("validate", pairing)
        assert (result.code, result.err) == (2, f"{pairing}: agents.ada.prompt_file: cannot "
                                             f"read 'role.txt': not a regular file (it is "
                                             f"{kind})\n")


def test_an_experiment_opener_file_must_be_a_small_regular_file(tmp_path: Path) -> None:
    (tmp_path / "pair.toml").write_text(SCRIPTED)
    (tmp_path / "zero.txt").symlink_to("/dev/zero")
    experiment = tmp_path / "night.toml"
    experiment.write_text('[[pairings]]\nfile = "pair.toml"\n[[openers]]\nfile = "zero.txt"\n')
    result = cli_process("batch", experiment, "--dry-run")
    assert (result.code, result.err) == (2, f"intermodel: {experiment}: openers[0].file: cannot "
                                         "read 'zero.txt': not a regular file (it is a "
                                         "character device)\n")


def test_a_panel_prompt_file_is_read_the_same_way(tmp_path: Path) -> None:
    path = tmp_path / "panel.toml"
    path.write_text('[panel]\nprompt_file = "big.txt"\n[agents.poet]\nprovider = "scripted"\n'
                    'script = { rule = "echo" }\n')
    (tmp_path / "big.txt").write_bytes(b"x" * 2_000_000)
    assert f"{path}: panel.prompt_file: cannot read 'big.txt': larger than 1 MiB" in cli(
        "validate", path).lines


@pytest.mark.parametrize("separator", ["\x85", "\u2028", "\x0b", "\x1e"])
def test_a_value_with_a_unicode_line_separator_stays_on_one_error_line(
        separator: str, bases: Bases, tmp_path: Path) -> None:
    """Python's `splitlines` also splits at NEL, U+2028, VT and RS: a hostile value quoted in an
    error started a line of its own, which could pass for another error."""
    path = edited(bases.dialogue, tmp_path / "sep.jsonl", 1,
                  {"config": f"{separator}intermodel: all good"})
    result = cli_process("inspect", path)
    assert result.code == 2
    assert len(result.err.split("\n")) == 2, result.err  # one line, and its newline
    assert "all good" in result.err
