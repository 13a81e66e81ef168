"""Commands that read what runs left behind: validate, export, stats, index, inspect."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from intermodel.commands import EXIT_OK, EXIT_RUN_ERROR, EXIT_USAGE
from intermodel.config import load_config
from intermodel.errors import UsageError
from intermodel.safety import terminal_safe

__all__ = ["export", "index", "inspect", "stats", "validate"]


def validate(args: argparse.Namespace) -> int:
    import os

    from intermodel.errors import ConfigError, MissingKeyError
    from intermodel.secrets import resolve_credentials

    failed = False
    for file in args.files:
        try:
            pairing = load_config(file)
        except ConfigError as exc:
            failed = True
            for line in str(exc).splitlines():
                print(terminal_safe(line), file=sys.stderr)
            continue
        agents = ", ".join(f"{a.name}: {a.provider} {a.model}" for a in pairing.agents)
        print(terminal_safe(f"ok  {file}  ({agents})"))
        try:
            resolve_credentials(pairing, os.environ)
        except MissingKeyError as exc:
            failed = failed or args.strict
            for issue in exc.issues:
                print(terminal_safe(f"    {'error' if args.strict else 'note'}: {issue}"))
        except ConfigError as exc:  # a variable that is set, but could never be sent
            failed = True
            for issue in exc.issues:
                print(terminal_safe(f"    error: {issue}"))
    return EXIT_USAGE if failed else EXIT_OK


def export(args: argparse.Namespace) -> int:
    from intermodel.transcript.markdown import to_markdown
    from intermodel.transcript.reader import read_transcript

    source = Path(args.transcript)
    if args.format == "html":
        from intermodel.transcript.html import write_html, write_index

        if source.is_dir():
            print(f"wrote {write_index(source)} (and a page per run beside its transcript)")
        else:
            print(f"wrote {write_html(source, Path(args.output) if args.output else None)}")
        return EXIT_OK
    transcript = read_transcript(args.transcript)
    text = to_markdown(transcript)
    if args.output == "-":
        sys.stdout.write(terminal_safe(text) if sys.stdout.isatty() else text)
        return EXIT_OK
    target = Path(args.output) if args.output else Path(args.transcript).with_suffix(".md")
    try:
        target.write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {target}: {exc.strerror}") from None
    print(f"wrote {target}")
    return EXIT_OK


def stats(args: argparse.Namespace) -> int:
    from intermodel.analysis import collect, render_table, to_csv, to_json

    if not Path(args.path).exists():
        raise UsageError(f"{args.path}: no such file or folder")
    runs, skipped = collect(args.path)
    for line in skipped:
        print(f"intermodel: skipped {terminal_safe(line)}", file=sys.stderr)
    if args.format == "csv":
        sys.stdout.write(to_csv(runs))
    elif args.format == "json":
        sys.stdout.write(to_json(runs) + "\n")
    else:
        print(render_table(runs) if runs else "no transcripts found")
    return EXIT_OK


def index(args: argparse.Namespace) -> int:
    from intermodel.analysis.sqlindex import build_index, default_db

    path = Path(args.path)
    if not path.exists():
        raise UsageError(f"{args.path}: no such file or folder")
    db = Path(args.db) if args.db else default_db(path)
    report = build_index([path], db, rebuild=args.rebuild)
    for skipped in report.skipped:
        print(terminal_safe(f"intermodel: skipped {skipped.path}: {skipped.reason}"),
              file=sys.stderr)
    for torn in report.torn:
        print(terminal_safe(f"intermodel: note: {torn}: incomplete last line ignored"),
              file=sys.stderr)
    print(terminal_safe(report.summary()))
    return EXIT_OK


def inspect(args: argparse.Namespace) -> int:
    import json

    from intermodel.audit import rebuild_request, verify_transcript
    from intermodel.transcript.reader import read_transcript

    transcript = read_transcript(args.transcript)
    if args.turn is None:
        results = verify_transcript(transcript)
        for result in results:
            mark = "ok      " if result.matches else "MISMATCH"
            print(f"{mark} turn {result.turn.index:>4}  {terminal_safe(result.turn.agent)}  "
                  f"{result.digest}")
        bad = sum(not r.matches for r in results)
        print(f"{len(results) - bad} of {len(results)} turns match their recorded request hash")
        return EXIT_RUN_ERROR if bad else EXIT_OK
    result = rebuild_request(transcript, args.turn)
    body = json.dumps(result.request.to_json(), indent=2, ensure_ascii=False)
    print(terminal_safe(body))
    verdict = "matches the recorded hash" if result.matches else (
        f"DOES NOT MATCH the recorded {result.turn.request_hash}")
    print(f"turn {result.turn.index} ({terminal_safe(result.turn.agent)}): {result.digest} "
          f"{verdict}")
    return EXIT_OK if result.matches else EXIT_RUN_ERROR
