"""Broken and hostile pairing files: `validate` and `run --headless` answer each with one line and
exit 2, never a traceback, and never show a key that was pasted into the file.

The corpus: key-shaped strings hidden in unusual places (values, key names, table names, files a
pairing reads), huge strings where they are wrong, bytes that are not UTF-8, unknown tables, and
every key of every table given a value of every wrong type. The whole corpus runs through the
command's entry point in this process; a sample of it through the real command in subprocesses.
"""

from __future__ import annotations

import datetime
import json
import math
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from intermodel.cli import main
from intermodel.config.schema import (
    AGENT,
    DETECTORS,
    DIALOGUE,
    PRICE,
    RETRY,
    SCRIPT,
    THINKING,
    TOP,
    Field,
)
from intermodel.security.text import LINE_LIMIT

REPO = Path(__file__).resolve().parents[2]
# Built here, so no key-shaped literal sits in git.
KEY = "sk-" + "proj-" + "Hd83kLq0Zm2Vn7Xc4Rt9" * 2
SHOWN_LIMIT = LINE_LIMIT + len("intermodel: ")
HUGE = 1_000_000


def base() -> dict[str, Any]:
    """A valid pairing of two scripted agents, every table present so any key can be broken."""
    return {
        "name": "hostile",
        "dialogue": {"opener": "Hello.", "max_turns": 2},
        "retry": {"attempts": 1},
        "detectors": {"repetition": "mark"},
        "agents": {
            "ada": {"provider": "scripted", "prompt": "You are {name}.",
                    "script": {"replies": ["one"]}, "thinking": {"send_back": False},
                    "price": {"input": 1.0, "output": 2.0}},
            "bo": {"provider": "scripted", "script": {"replies": ["two"]}},
        },
    }


# -- a small TOML writer (the standard library only reads TOML) --------------------------------


def toml_value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int | float):
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        if isinstance(value, float) and math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, datetime.datetime | datetime.date):
        return value.isoformat()
    if isinstance(value, list):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()) + "}"
    raise TypeError(value)


def to_toml(table: dict[str, Any]) -> str:
    """Top-level scalars, then one `[section]` per top-level table (its tables inline)."""
    lines = [f"{json.dumps(k)} = {toml_value(v)}" for k, v in table.items()
             if not isinstance(v, dict)]
    for key, value in table.items():
        if isinstance(value, dict):
            lines.append(f"[{json.dumps(key)}]")
            lines += [f"{json.dumps(k)} = {toml_value(v)}" for k, v in value.items()]
    return "\n".join(lines) + "\n"


def changed(path: str, value: Any) -> dict[str, Any]:
    """The base pairing with the value at a dotted `path` replaced (or added)."""
    table = base()
    *parents, last = path.split(".")
    here = table
    for part in parents:
        here = here.setdefault(part, {})
    here[last] = value
    return table


def renamed(path: str, new_name: str) -> dict[str, Any]:
    """The base pairing with the key at `path` renamed, its value kept."""
    table = base()
    *parents, last = path.split(".")
    here = table
    for part in parents:
        here = here[part]
    here[new_name] = here.pop(last)
    return table


# -- the corpus --------------------------------------------------------------------------------


def key_shaped() -> Iterator[tuple[str, bytes]]:
    places = {
        "name": KEY, "description": f"notes\n{KEY}\nmore notes", "transcripts": f"runs/{KEY}",
        "dialogue.stop_phrases": ["bye", KEY], "dialogue.interjection_format": f"{{text}} {KEY}",
        "dialogue.empty_reply": KEY, "dialogue.first": KEY, "dialogue.opener_to": KEY,
        "agents.ada.model": KEY, "agents.ada.stop": [KEY], "agents.ada.script.replies": [KEY],
        "agents.ada.script.thinking": [f"thinking about {KEY}"],
        "agents.ada.extra_body": {"meta": {"deep": [{"k": KEY}]}},
        "agents.ada.extra_headers": {"X-Trace": f"trace {KEY}"},
        "agents.ada.price.input": KEY, "retry.attempts": KEY, "detectors.repetition": KEY,
        "agents.ada.api_key_env": KEY, "agents.ada.timeout": [KEY],
    }
    for path, value in places.items():
        yield f"value:{path}", to_toml(changed(path, value)).encode()
    names = {"agents.ada.prompt": "an unknown key", "agents.ada": "an agent",
             "retry": "a table", "dialogue.opener": "a dialogue key"}
    for path, what in names.items():
        yield f"name:{what}", to_toml(renamed(path, KEY)).encode()
    yield "name:a header", to_toml(changed("agents.ada.extra_headers", {KEY: "x"})).encode()
    yield "name:a key inside extra_body", to_toml(changed("agents.ada.extra_body",
                                                          {KEY: 1})).encode()
    escaped = "sk-\\u0070" + KEY[4:]  # a TOML escape that decodes to the key
    yield "value:escaped", (to_toml(base()) + f'description = "{escaped}"\n').encode()
    yield "value:literal string", to_toml(base()).replace(
        '"name" = "hostile"', f"\"name\" = '{KEY}'").encode()


def huge() -> Iterator[tuple[str, bytes]]:
    places = {
        "dialogue.first": "x" * HUGE, "agents.ada.provider": "p" * HUGE,
        "detectors.repetition": "r" * HUGE, "agents.ada.api_key_env": "9" + "V" * HUGE,
        "agents.ada.base_url": "u" * HUGE, "dialogue.context_policy": "c" * HUGE,
        # A key at the end of a huge value: removed before the value is cut short.
        "dialogue.opener_to": "y" * HUGE + " " + KEY,
        "agents.ada.max_tokens": "m" * HUGE,
    }
    for path, value in places.items():
        yield f"huge:{path}", to_toml(changed(path, value)).encode()
    yield "huge:unknown key", to_toml(changed("agents.ada." + "k" * 100_000, 1)).encode()
    yield "huge:agent name", to_toml(renamed("agents.ada", "a" * 100_000)).encode()
    yield "huge:table name", (to_toml(base()) + f"[{'t' * 100_000}]\nx = 1\n").encode()


def not_utf8() -> Iterator[tuple[str, bytes]]:
    text = to_toml(base()).encode()
    yield "bytes:in a comment", b"# caf\xe9\n" + text
    yield "bytes:in a value", text.replace(b'"Hello."', b'"Hel\xfflo."')
    yield "bytes:around a key", text.replace(b'"Hello."', b'"' + KEY.encode() + b'\xff\xfe"')
    yield "bytes:overlong", text.replace(b"Hello", b"Hel\xc0\xaflo")
    yield "bytes:surrogate", text.replace(b"Hello", b"Hel\xed\xa0\x80lo")
    yield "bytes:utf-16", to_toml(base()).encode("utf-16")
    yield "bytes:truncated", text.replace(b"Hello", b"Hel\xe2\x82")


def unknown_tables() -> Iterator[tuple[str, bytes]]:
    text = to_toml(base())
    yield "table:top", (text + "[surprise]\nx = 1\n").encode()
    yield "table:agent", to_toml(changed("agents.ada.surprise", {"x": 1})).encode()
    yield "table:dialogue", to_toml(changed("dialogue.surprise", {"x": 1})).encode()
    yield "table:script", to_toml(changed("agents.ada.script.deeper", {"x": 1})).encode()
    yield "table:retry", to_toml(changed("retry.extra", {"x": 1})).encode()
    as_array = text.split('["agents"]')[0] + "[[agents]]\nprovider = \"scripted\"\n"
    yield "table:agents as an array of tables", as_array.encode()


WRONG_VALUES: list[Any] = [
    "text", 7, 1.5, True, [1, 2], ["a"], {"a": 1}, {"a": "b"}, [],
    datetime.datetime(1979, 5, 27, 7, 32, tzinfo=datetime.UTC), datetime.date(2001, 1, 1),
    math.nan, math.inf,
]
TABLES: dict[str, dict[str, Field]] = {
    "": TOP, "dialogue": DIALOGUE, "agents.ada": AGENT, "agents.ada.script": SCRIPT,
    "agents.ada.thinking": THINKING, "agents.ada.price": PRICE, "retry": RETRY,
    "detectors": DETECTORS,
}


def type_confusion() -> Iterator[tuple[str, bytes]]:
    for table, schema in TABLES.items():
        for key, spec in schema.items():
            path = f"{table}.{key}" if table else key
            for value in WRONG_VALUES:
                if spec.kind.accepts(value):
                    continue
                name = f"type:{path}={toml_value(value)[:12]}"
                yield name, to_toml(changed(path, value)).encode()


CORPUS = dict([*key_shaped(), *huge(), *not_utf8(), *unknown_tables(), *type_confusion()])


def test_the_corpus_covers_every_key_of_every_table() -> None:
    confused = {name.split("=")[0] for name in CORPUS if name.startswith("type:")}
    assert len(confused) == sum(len(schema) for schema in TABLES.values())
    assert len(CORPUS) > 400


@pytest.mark.parametrize("name", list(CORPUS))
def test_a_broken_pairing_is_one_line_and_exit_2(name: str, tmp_path: Path,
                                                 capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(CORPUS[name])
    for command in (["validate", str(path)], ["run", str(path), "--headless"]):
        code = main(command)  # an unexpected exception fails the test: that is a traceback
        out, err = capsys.readouterr()
        assert code == 2, (command, out, err)
        assert out == ""
        assert len(err.splitlines()) == 1, err[:2000]
        assert len(err) <= SHOWN_LIMIT + 1
        assert KEY[:8] not in err


SAMPLE = ["value:dialogue.first", "name:an unknown key", "value:escaped", "huge:dialogue.first",
          "huge:dialogue.opener_to", "bytes:around a key", "table:top",
          "type:agents.ada.timeout=\"text\"", "type:dialogue=7"]


@pytest.mark.parametrize("name", SAMPLE)
def test_the_real_command_says_the_same(name: str, tmp_path: Path) -> None:
    path = tmp_path / "broken.toml"
    path.write_bytes(CORPUS[name])
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "runs"), "NO_COLOR": "1"}
    for command in (["validate", str(path)], ["run", str(path), "--headless"]):
        done = subprocess.run([sys.executable, "-m", "intermodel", *command], cwd=REPO, env=env,
                              capture_output=True, text=True, timeout=60, check=False)
        assert done.returncode == 2, done.stderr[:2000]
        assert "Traceback" not in done.stderr
        assert len(done.stderr.splitlines()) == 1
        assert KEY[:8] not in done.stderr + done.stdout
    assert not (tmp_path / "runs").exists()  # nothing was started
