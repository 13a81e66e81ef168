"""Commands that turn recorded runs into findings: `agreement`, `phrases`, what `stats` shows of
end states and labels, and the scheme files `validate` recognises."""

from __future__ import annotations

import argparse
import json
import sys
import tomllib
from pathlib import Path
from typing import TYPE_CHECKING

from intermodel.coding.scheme import NAME, Scheme, load_scheme, load_schemes, split_selection
from intermodel.errors import ConfigError, UsageError
from intermodel.security.bounds import MAX_TEXT_FILE
from intermodel.security.files import UnreadableFile, read_regular
from intermodel.security.text import message_lines, safe_line, terminal_safe

if TYPE_CHECKING:
    from intermodel.analysis.findings import Findings
    from intermodel.analysis.fitwidth import ColumnFit
    from intermodel.analysis.phrases import Phrase

__all__ = [
    "agreement",
    "is_scheme_file",
    "phrases",
    "resolve_scheme",
    "stats_rows",
    "stats_section",
    "validate_schemes",
]


# -- validate --------------------------------------------------------------------------------------


def is_scheme_file(path: str | Path) -> bool:
    """True when `path` reads as TOML whose top level holds `schemes` and none of a pairing's or
    a panel's tables: a scheme file, whatever its name. Anything else (unreadable, not TOML) is
    left to the pairing checks, which say what is wrong with it."""
    try:
        raw = tomllib.loads(read_regular(path, limit=MAX_TEXT_FILE).decode("utf-8"))
    except (UnreadableFile, UnicodeDecodeError, ValueError, RecursionError):
        return False
    return "schemes" in raw and not {"agents", "dialogue", "panel"} & set(raw)


def validate_schemes(file: str) -> bool:
    """Check the scheme file `file` as `intermodel validate` does: `ok` and its schemes, or one
    line per problem on stderr. True when it is valid."""
    try:
        schemes = load_schemes(file)
    except ConfigError as exc:
        for line in message_lines(str(exc)):
            print(safe_line(line), file=sys.stderr)
        return False
    listed = ", ".join(f"{s.name}: {s.scope}, {len(s.labels)} labels" for s in schemes)
    print(safe_line(f"ok  {file}  (scheme{'s' if len(schemes) > 1 else ''} {listed})"))
    return True


# -- choosing a scheme -----------------------------------------------------------------------------


def resolve_scheme(given: str) -> tuple[str, Scheme | None]:
    """`--scheme` as (name, scheme): FILE or FILE:NAME loads the scheme (its labels order the
    tables, and only labels made under its exact wording count); a bare NAME matches the
    records by name."""
    path, _ = split_selection(given)
    if path.exists() or path.is_symlink() or path.suffix == ".toml":
        scheme = load_scheme(given)
        return scheme.name, scheme
    if NAME.fullmatch(given):
        return given, None
    raise UsageError(f"--scheme {given[:60]!r}: expected a scheme name, or a scheme file "
                     "(FILE or FILE:NAME)")


# -- agreement -------------------------------------------------------------------------------------


def agreement(args: argparse.Namespace) -> int:
    from intermodel.analysis.coders import agreement_report, render_agreement
    from intermodel.analysis.study import read_study

    name, scheme = resolve_scheme(args.scheme)
    runs, skipped = read_study(args.path)
    report = agreement_report(runs, name, scheme)
    for line in report.notes:
        print(f"intermodel: note: {terminal_safe(line)}", file=sys.stderr)
    if args.format == "json":
        sys.stdout.write(json.dumps(report.to_json(), indent=1, ensure_ascii=False) + "\n")
    else:
        sys.stdout.write(terminal_safe(render_agreement(report)))
    return skipped_files(skipped, read=len(runs))


# -- stats -----------------------------------------------------------------------------------------


def _findings(args: argparse.Namespace) -> tuple[Findings, list[str], int]:
    from intermodel.analysis.findings import findings
    from intermodel.analysis.study import read_study

    name, scheme = resolve_scheme(args.scheme) if args.scheme else (None, None)
    runs, skipped = read_study(args.path)
    result = findings(runs, by=args.by or "model", scheme=name, loaded=scheme, coder=args.coder)
    for line in result.notes:
        print(f"intermodel: note: {terminal_safe(line)}", file=sys.stderr)
    return result, skipped, len(runs)


def stats_section(args: argparse.Namespace, fit: ColumnFit | None = None) -> str:
    """What `stats` adds below its run table: end states and label fractions. Files it cannot
    read were already reported by the run table."""
    from intermodel.analysis.findings import render_findings

    result, _, _ = _findings(args)
    return "\n" + terminal_safe(render_findings(result, fit))


def stats_rows(args: argparse.Namespace) -> int:
    """`stats --by X --format csv|json`: end-state and label rows, for pandas."""
    from intermodel.analysis.findings import rows

    result, skipped, read = _findings(args)
    table = rows(result)
    if args.format == "json":
        sys.stdout.write(json.dumps(table, indent=1, ensure_ascii=False) + "\n")
    else:
        import csv

        columns = ["kind", "by", "group", "scheme", "coder", "value", "k", "n", "fraction", "low",
                   "high", "turns_mean", "before_mean", "before_median"]
        writer = csv.DictWriter(sys.stdout, fieldnames=columns, lineterminator="\n")
        writer.writeheader()
        writer.writerows(table)
    return skipped_files(skipped, read=read)


# -- phrases ---------------------------------------------------------------------------------------


def phrases(args: argparse.Namespace) -> int:
    from intermodel.analysis.phrases import PhraseCounter
    from intermodel.analysis.study import transcript_files
    from intermodel.errors import TranscriptError
    from intermodel.transcript.reader import read_transcript

    path = Path(args.path)
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{args.path}: no such file or folder")
    counter = PhraseCounter(n=args.n, by=args.by, thinking=args.thinking)
    skipped: list[str] = []
    if path.is_dir():
        for file in transcript_files(path):
            try:
                counter.add(read_transcript(file))
            except TranscriptError as exc:
                skipped.append(str(exc))
    else:
        counter.add(read_transcript(path))
    found = counter.most_common(args.top, min_runs=args.min_runs)
    if args.format == "json":
        rows = [{"group": p.group, "phrase": p.text, "count": p.count, "runs": p.runs}
                for p in found]
        sys.stdout.write(json.dumps(rows, indent=1, ensure_ascii=False) + "\n")
    elif args.format == "csv":
        import csv

        writer = csv.writer(sys.stdout, lineterminator="\n")
        writer.writerow(["group", "phrase", "count", "runs"])
        writer.writerows([p.group or "", p.text, p.count, p.runs] for p in found)
    else:
        sys.stdout.write(terminal_safe(_phrase_table(found, counter.transcripts, args.by)))
    return skipped_files(skipped, read=counter.transcripts)


def _phrase_table(found: list[Phrase], runs: int, by: str | None) -> str:
    from intermodel.analysis.textcells import cell, table

    if not found:
        return f"no phrases found in {runs} run{'s' if runs != 1 else ''}\n"
    head = ["PHRASE", "COUNT", "RUNS"]
    if by:
        head.insert(0, by.upper())
    lines = []
    for phrase in found:
        cells = [cell(phrase.text, 60), str(phrase.count), f"{phrase.runs}/{runs}"]
        if by:
            cells.insert(0, cell(phrase.group))
        lines.append(cells)
    return table(head, lines)


def skipped_files(skipped: list[str], *, read: int) -> int:
    """As the other folder commands: each file set aside and why, then how many; exit code 2
    when there were files and none could be read."""
    from intermodel.commands.reading import _skipped

    return _skipped(skipped, read=read)
