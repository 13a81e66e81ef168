"""Coding schemes: what coders (people or judge models) may say about a run, a turn or an answer.

A scheme file is TOML holding one or more schemes under `[schemes.NAME]`; each has a scope
(`run`, `turn` or `answer`: a panel's answer), `single` or `multiple` choice, instructions for
coders and its labels, each with a definition and optionally an example:

    [schemes.engagement]
    scope = "answer"
    instructions = "Read the answer, not the thinking. ..."

    [schemes.engagement.labels.engaged]
    definition = "Takes up the invitation ..."
    example = "..."

Labels keep the order of the file: it is the order coders see them in (and the keys they press).
Files are checked like pairing files: every problem at once, as `file: dotted.path: what was
expected`, with the same limits (a regular file of at most 1 MiB, tables nested at most 32 deep).

A scheme's hash (`Scheme.digest`) is `intermodel.config.digest.canonical_digest` of
`Scheme.canonical()`:
its name, scope, choice, instructions and labels (name, definition, example, in order). Label
records carry it, so a label is always tied to the exact wording its coder saw; where a scheme
file lives, and how its TOML is laid out, does not change it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Any, Literal, cast

from intermodel.config.digest import canonical_digest
from intermodel.config.loader import parse_toml
from intermodel.config.schema import REQUIRED, STR, TABLE, Checker, Field, shown_value
from intermodel.errors import ConfigError, ConfigIssue
from intermodel.security.bounds import MAX_TEXT_FILE
from intermodel.security.files import UnreadableFile, read_regular

__all__ = [
    "LABEL",
    "MAX_LABELS",
    "MAX_SCHEMES",
    "NAME",
    "SCHEME",
    "SCOPES",
    "TOP",
    "UNLABELLED",
    "Choice",
    "Label",
    "Scheme",
    "Scope",
    "load_scheme",
    "load_schemes",
    "parse_schemes",
    "split_selection",
]

Scope = Literal["run", "turn", "answer"]
Choice = Literal["single", "multiple"]
SCOPES: tuple[Scope, ...] = ("run", "turn", "answer")
CHOICES: tuple[Choice, ...] = ("single", "multiple")

MAX_LABELS = 20  # labels of one scheme: a coder has to hold them all in mind
MAX_SCHEMES = 100  # schemes in one file
# Scheme and label names end up in command lines (FILE:NAME), CSV columns and SQL.
NAME = re.compile(r"[A-Za-z][A-Za-z0-9_-]{0,39}")
_NAME_RULE = "a letter, then letters, digits, - and _ (at most 40)"
# What a label record says when no label was given; no scheme may use it as a label.
UNLABELLED = "unlabelled"

TOP: dict[str, Field] = {
    "schemes": Field(TABLE, "The schemes, each a table [schemes.NAME].", REQUIRED),
}
SCHEME: dict[str, Field] = {
    "scope": Field(STR, "What is coded: `run`, `turn`, or `answer` (a panel's answer).", REQUIRED,
                   choices=SCOPES),
    "choice": Field(STR, "`single` (one label per target) or `multiple` (one or more).",
                    "single", choices=CHOICES),
    "instructions": Field(STR, "What every coder reads before coding (people and judges alike).",
                          REQUIRED),
    "labels": Field(TABLE, "The labels, each a table [schemes.NAME.labels.LABEL].", REQUIRED),
}
LABEL: dict[str, Field] = {
    "definition": Field(STR, "When this label applies.", REQUIRED),
    "example": Field(STR, "A short example of text that gets this label.", ""),
}


@dataclass(frozen=True)
class Label:
    name: str
    definition: str
    example: str = ""


@dataclass(frozen=True)
class Scheme:
    name: str
    scope: Scope
    choice: Choice
    instructions: str
    labels: tuple[Label, ...]
    source: str = field(default="", compare=False)  # the file it came from; not hashed

    @property
    def label_names(self) -> tuple[str, ...]:
        return tuple(label.name for label in self.labels)

    def label(self, name: str) -> Label:
        for label in self.labels:
            if label.name == name:
                return label
        raise KeyError(name)

    def canonical(self) -> dict[str, Any]:
        """What the hash covers: everything a coder is shown, nothing about where it lives."""
        return {
            "name": self.name,
            "scope": self.scope,
            "choice": self.choice,
            "instructions": self.instructions,
            "labels": [{"name": label.name, "definition": label.definition,
                        "example": label.example} for label in self.labels],
        }

    @cached_property
    def digest(self) -> str:
        """`sha256:<hex>` of the canonical JSON of `canonical()`."""
        return canonical_digest(self.canonical())

    def check_labels(self, labels: Sequence[str]) -> str | None:
        """What is wrong with `labels` as a coding under this scheme, or None when they fit:
        known names, no repeats, exactly one for a single-choice scheme, at least one for a
        multiple-choice one."""
        known = ", ".join(self.label_names)
        unknown = [name for name in labels if name not in self.label_names]
        if unknown:
            return f"{shown_value(unknown[0])} is not a label of {self.name} (its labels: {known})"
        if len(set(labels)) != len(labels):
            return "a label is given twice"
        if self.choice == "single" and len(labels) != 1:
            return f"{self.name} takes exactly one label (one of {known}), got {len(labels)}"
        if not labels:
            return f"{self.name} takes one or more of its labels ({known}), got none"
        return None


def load_scheme(selection: str | Path) -> Scheme:
    """The scheme `FILE:NAME` names, or the only scheme of `FILE`. ConfigError (exit code 2)
    for any problem in the file, a NAME it does not define, or a file with several schemes and
    no NAME."""
    path, name = split_selection(selection)
    schemes = load_schemes(path)
    shown = str(path)
    if name is None:
        if len(schemes) == 1:
            return schemes[0]
        names = ", ".join(s.name for s in schemes)
        raise ConfigError(shown, [ConfigIssue("", f"defines {len(schemes)} schemes ({names}); "
                                              f"choose one as {shown}:NAME")])
    for scheme in schemes:
        if scheme.name == name:
            return scheme
    names = ", ".join(s.name for s in schemes)
    raise ConfigError(shown, [ConfigIssue("schemes", f"no scheme named {name!r} (this file "
                                          f"defines: {names})")])


def split_selection(selection: str | Path) -> tuple[Path, str | None]:
    """`FILE:NAME` as (FILE, NAME); a bare FILE as (FILE, None). A colon belongs to the file
    name when what follows it is not a scheme name, or when the whole text names a file."""
    text = str(selection)
    path, colon, name = text.rpartition(":")
    if colon and path and NAME.fullmatch(name) and not Path(text).exists():
        return Path(path), name
    return Path(text), None


def load_schemes(path: str | Path) -> tuple[Scheme, ...]:
    """Every scheme in the file `path`, in file order."""
    shown = str(path)
    try:
        data = read_regular(path, limit=MAX_TEXT_FILE)
    except UnreadableFile as exc:
        raise ConfigError(shown, [ConfigIssue("", f"cannot read it: {exc}")]) from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise ConfigError(shown, [ConfigIssue("", "cannot read it: not UTF-8 text")]) from None
    return parse_schemes(text, source=shown)


def parse_schemes(text: str, *, source: str) -> tuple[Scheme, ...]:
    """The schemes in TOML `text`; ConfigError listing every problem found."""
    raw = parse_toml(text, source)
    check = Checker()
    top = check.table(raw, "", TOP)
    schemes: list[Scheme] = []
    tables = top.get("schemes", {})
    if "schemes" in top and not 1 <= len(tables) <= MAX_SCHEMES:
        check.fail("schemes", f"expected 1 to {MAX_SCHEMES} schemes, found {len(tables)}")
    for name, table in tables.items():
        scheme = _scheme(check, name, table, source)
        if scheme is not None:
            schemes.append(scheme)
    _no_twins(check, "schemes", list(tables))
    if check.issues:
        raise ConfigError(source, check.issues)
    return tuple(schemes)


def _scheme(check: Checker, name: str, raw: Any, source: str) -> Scheme | None:
    path = f"schemes.{name}"
    if not NAME.fullmatch(name):
        check.fail(path, f"expected a scheme name: {_NAME_RULE}")
    if not isinstance(raw, dict):
        check.fail(path, f"expected a table like [schemes.{name}]")
        return None
    before = len(check.issues)
    table = check.table(raw, path, SCHEME)
    instructions = _text(check, table, "instructions", path)
    labels = _labels(check, table.get("labels"), f"{path}.labels")
    if len(check.issues) > before or instructions is None:
        return None
    return Scheme(name=name, scope=cast(Scope, table["scope"]),
                  choice=cast(Choice, table["choice"]), instructions=instructions,
                  labels=labels, source=source)


def _labels(check: Checker, raw: Mapping[str, Any] | None, path: str) -> tuple[Label, ...]:
    if raw is None:
        return ()  # missing or not a table: already reported
    if not 2 <= len(raw) <= MAX_LABELS:
        check.fail(path, f"expected 2 to {MAX_LABELS} labels, found {len(raw)}")
    labels: list[Label] = []
    for name, table in raw.items():
        where = f"{path}.{name}"
        if not NAME.fullmatch(name):
            check.fail(where, f"expected a label name: {_NAME_RULE}")
        elif name.lower() == UNLABELLED:
            check.fail(where, f"{UNLABELLED!r} is reserved: label records use it for a target "
                       "no coder could label")
        if not isinstance(table, dict):
            check.fail(where, f"expected a table like [{where}] with a definition")
            continue
        fields = check.table(table, where, LABEL)
        definition = _text(check, fields, "definition", where)
        example = fields.get("example", "").strip()
        if definition is not None:
            labels.append(Label(name, definition, example))
    _no_twins(check, path, list(raw))
    return tuple(labels)


def _text(check: Checker, table: Mapping[str, Any], key: str, path: str) -> str | None:
    """A required text, outer whitespace removed (a trailing newline is not a new wording);
    None when it is missing (already reported) or blank."""
    if key not in table:
        return None
    text = str(table[key]).strip()
    if not text:
        check.fail(f"{path}.{key}", "expected some text, got an empty string")
        return None
    return text


def _no_twins(check: Checker, path: str, names: list[str]) -> None:
    """Names that differ only in case would be the same column in a spreadsheet."""
    seen: dict[str, str] = {}
    for name in names:
        first = seen.setdefault(name.lower(), name)
        if first != name:
            check.fail(f"{path}.{name}", f"differs from {first!r} only in case")
