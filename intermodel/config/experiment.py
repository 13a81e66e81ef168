"""The experiment file (TOML): which pairings, which openers, how many replicates, how fast.

    name = "self-talk"
    replicates = 20          # runs per pairing x opener
    seed = 1000              # replicate r gets seed 1000 + r - 1, where the API takes seeds
    turns = 30               # overrides every pairing's max_turns
    concurrency = 4          # runs at once

    [[pairings]]
    file = "configs/self-dialogue.toml"
    label = "claude"

    [[openers]]
    label = "freedom"
    text = "You have complete freedom. Feel free to pursue whatever you want."

    [limits.anthropic]       # shared by every run: per provider name, or per base_url
    streams = 2
    requests_per_minute = 50
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intermodel.config import RunSpec, load_config
from intermodel.config.loader import parse_toml, read_text_file
from intermodel.config.schema import INT, NUMBER, STR, TABLE, Checker, Field, Kind, between
from intermodel.errors import ConfigError, ConfigIssue
from intermodel.security.bounds import MAX_CONCURRENCY, MAX_INT, MAX_REPLICATES, MAX_TURNS, MIN_INT
from intermodel.security.files import UnreadableFile

__all__ = ["Experiment", "Limit", "Opener", "is_experiment_table", "load_experiment"]

MAX_REQUESTS_PER_MINUTE = 1_000_000
_LABEL = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$")
TABLE_LIST = Kind("a list of tables ([[...]])",
                  lambda v: isinstance(v, list) and all(isinstance(t, dict) for t in v))

EXPERIMENT: dict[str, Field] = {
    "name": Field(STR, "Name of the experiment (default: the file name)."),
    "description": Field(STR, "Free text for people.", ""),
    "out": Field(STR, "Folder for the experiment's transcripts and manifest "
                      "(default: experiments/NAME)."),
    "replicates": Field(INT, "Runs per pairing x opener.", 1, between(1, MAX_REPLICATES)),
    # Replicate r gets seed + r - 1: that too must be a seed a pairing could hold.
    "seed": Field(INT, "Base seed: replicate r gets seed + r - 1 (where the API takes seeds).",
                  None, between(MIN_INT, MAX_INT - MAX_REPLICATES)),
    "turns": Field(INT, "Turn budget for every run (overrides the pairings').", None,
                   between(1, MAX_TURNS)),
    "concurrency": Field(INT, "Runs at once.", 2, between(1, MAX_CONCURRENCY)),
    "pairings": Field(TABLE_LIST, "The pairings ([[pairings]] file, label).", None),
    "openers": Field(TABLE_LIST, "Openers ([[openers]] text or file, label); default: each "
                                 "pairing's own.", None),
    "limits": Field(TABLE, "Shared limits per provider or base_url ([limits.NAME]).", {}),
}
PAIRING_ENTRY: dict[str, Field] = {
    "file": Field(STR, "The pairing file (relative to the experiment file)."),
    "label": Field(STR, "A short label for tables and ids (default: the pairing's name)."),
}
OPENER_ENTRY: dict[str, Field] = {
    "text": Field(STR, "The opening message."),
    "file": Field(STR, "A file holding the opening message."),
    "label": Field(STR, "A short label for tables and ids."),
}
LIMIT: dict[str, Field] = {
    "streams": Field(INT, "Requests streaming at once.", None, between(1, MAX_CONCURRENCY)),
    "requests_per_minute": Field(NUMBER, "Requests started per minute.", None,
                                 between(0.1, MAX_REQUESTS_PER_MINUTE)),
}


# Keys only an experiment has at its top level, and tables only a pairing or a panel has.
_EXPERIMENT_ONLY = frozenset(EXPERIMENT) - {"name", "description"}
_RUN_SPEC_ONLY = frozenset({"agents", "dialogue", "panel"})


def is_experiment_table(raw: dict[str, Any]) -> bool:
    """True when a file's top-level table reads as an experiment: it holds an experiment's own
    keys and none of a pairing's or a panel's tables (a file with both is left to the pairing
    checks, which say what does not belong)."""
    keys = set(raw)
    return bool(keys & _EXPERIMENT_ONLY) and not keys & _RUN_SPEC_ONLY


@dataclass(frozen=True)
class Opener:
    label: str
    text: str | None  # None: each pairing's own opener


@dataclass(frozen=True)
class Limit:
    streams: int | None = None
    requests_per_minute: float | None = None


@dataclass(frozen=True)
class Experiment:
    name: str
    description: str
    source: Path
    out: Path
    pairings: dict[str, RunSpec]  # label -> pairing (or panel)
    openers: tuple[Opener, ...]
    replicates: int
    seed: int | None
    turns: int | None
    concurrency: int
    limits: dict[str, Limit] = field(default_factory=dict)
    resolved: dict[str, Any] = field(default_factory=dict)  # as validated, for the manifest


def load_experiment(path: str | Path) -> Experiment:
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise ConfigError(shown, [ConfigIssue("", f"cannot read: {exc.strerror}")]) from None
    except UnicodeDecodeError:
        raise ConfigError(shown, [ConfigIssue("", "cannot read: not UTF-8 text")]) from None
    raw = parse_toml(text, shown)
    check = Checker()
    top = check.table(raw, "", EXPERIMENT)
    name = top.get("name", path.stem)
    pairings = _pairings(check, top.get("pairings"), path.parent)
    openers = _openers(check, top.get("openers"), path.parent)
    limits = {key: Limit(**check.table(value, f"limits.{key}", LIMIT))
              for key, value in top.get("limits", {}).items() if _is_table(check, key, value)}
    if check.issues:
        raise ConfigError(shown, check.issues)
    return Experiment(
        name=name, description=top["description"], source=path,
        out=Path(top.get("out") or Path("experiments") / name), pairings=pairings,
        openers=openers, replicates=top["replicates"], seed=top.get("seed"),
        turns=top.get("turns"), concurrency=top["concurrency"], limits=limits, resolved=top,
    )


def _is_table(check: Checker, key: str, value: Any) -> bool:
    if isinstance(value, dict):
        return True
    check.fail(f"limits.{key}", "expected a table like [limits.anthropic]")
    return False


def _pairings(check: Checker, entries: list[dict[str, Any]] | None,
              base: Path) -> dict[str, RunSpec]:
    if not entries:
        check.fail("pairings", "missing; an experiment needs at least one [[pairings]] file")
        return {}
    found: dict[str, RunSpec] = {}
    for n, entry in enumerate(entries):
        where = f"pairings[{n}]"
        table = check.table(entry, where, PAIRING_ENTRY)
        if "file" not in table:
            check.fail(f"{where}.file", "missing; the pairing file to run")
            continue
        try:
            pairing = load_config(base / table["file"])
        except ConfigError as exc:
            for issue in exc.issues:
                check.fail(where, f"{exc.file}: {issue}")
            continue
        label = table.get("label", pairing.name)
        if _label_ok(check, f"{where}.label", label, found):
            found[label] = pairing
    return found


def _openers(check: Checker, entries: list[dict[str, Any]] | None,
             base: Path) -> tuple[Opener, ...]:
    if not entries:
        return (Opener("default", None),)
    found: dict[str, Opener] = {}
    for n, entry in enumerate(entries):
        where = f"openers[{n}]"
        table = check.table(entry, where, OPENER_ENTRY)
        text = table.get("text")
        if "file" in table:
            try:
                text = read_text_file(base / table["file"]).strip()
            except UnreadableFile as exc:
                check.fail(f"{where}.file", f"cannot read {table['file']!r}: {exc}")
                continue
        if not text or ("text" in table) == ("file" in table):
            check.fail(where, "give exactly one of text or file, not empty")
            continue
        label = table.get("label", f"opener{n + 1}")
        if _label_ok(check, f"{where}.label", label, found):
            found[label] = Opener(label, text)
    return tuple(found.values())


def _label_ok(check: Checker, where: str, label: str, taken: dict[str, Any]) -> bool:
    if not _LABEL.match(label):
        check.fail(where, f"labels use letters, digits, '.', '-' and '_' (got {label!r})")
        return False
    if label in taken:
        check.fail(where, f"the label {label!r} is used twice")
        return False
    return True
