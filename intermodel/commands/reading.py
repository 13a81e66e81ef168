"""Commands that read what runs left behind: validate, export, stats, index, inspect."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from intermodel.config import RunSpec, load_config
from intermodel.errors import EXIT_OK, EXIT_RUN_ERROR, EXIT_USAGE, ConfigError, UsageError
from intermodel.security.text import message_lines, safe_line, terminal_safe

__all__ = ["export", "index", "inspect", "stats", "validate"]


def validate(args: argparse.Namespace) -> int:
    from intermodel.commands.findings import is_scheme_file, validate_schemes

    failed = False
    for file in args.files:
        if is_scheme_file(file):  # recognised by its content: a `schemes` table
            failed = not validate_schemes(file) or failed
            continue
        if _is_experiment_file(file):  # recognised by its content too
            failed = not _validate_experiment(file, strict=args.strict) or failed
            continue
        try:
            pairing = load_config(file)
        except ConfigError as exc:
            failed = True
            _print_issues(exc)
            continue
        agents = ", ".join(f"{a.name}: {a.provider} {a.model}" for a in pairing.agents)
        print(safe_line(f"ok  {file}  ({agents})"))
        failed = not _check_credentials(pairing, strict=args.strict, indent="    ") or failed
    return EXIT_USAGE if failed else EXIT_OK


def _print_issues(exc: ConfigError) -> None:
    for line in message_lines(str(exc)):
        print(safe_line(line), file=sys.stderr)


def _is_experiment_file(file: str) -> bool:
    import tomllib

    from intermodel.config.experiment import is_experiment_table
    from intermodel.security.bounds import MAX_TEXT_FILE
    from intermodel.security.files import UnreadableFile, read_regular

    try:
        raw = tomllib.loads(read_regular(file, limit=MAX_TEXT_FILE).decode("utf-8"))
    except (UnreadableFile, UnicodeDecodeError, ValueError, RecursionError):
        return False  # the pairing checks say what is wrong with it
    return is_experiment_table(raw)


def _validate_experiment(file: str, *, strict: bool) -> bool:
    """Check an experiment file whole: its own keys, every pairing and panel it names, and each
    run it plans (an opener must make a valid pairing too). Prints `ok` and its matrix, or one
    line per problem on stderr. True when it is valid (and, with `strict`, every key is set)."""
    import os

    from intermodel.config.experiment import load_experiment
    from intermodel.experiment.plan import plan

    try:
        experiment = load_experiment(file)
        runs = len(plan(experiment))
    except ConfigError as exc:
        _print_issues(exc)
        return False
    pairings, openers = len(experiment.pairings), len(experiment.openers)
    print(safe_line(
        f"ok  {file}  (experiment {experiment.name}: {pairings} pairing{'s' * (pairings != 1)} "
        f"x {openers} opener{'s' * (openers != 1)} x {experiment.replicates} "
        f"replicate{'s' * (experiment.replicates != 1)} = {runs} runs)"))
    ok = True
    for label, spec in experiment.pairings.items():
        agents = ", ".join(f"{a.name}: {a.provider} {a.model}" for a in spec.agents)
        print(safe_line(f"    {label}: {os.path.normpath(spec.source)} ({spec.kind}; {agents})"))
        ok = _check_credentials(spec, strict=strict, indent="      ") and ok
    return ok


def _check_credentials(spec: RunSpec, *, strict: bool, indent: str) -> bool:
    """Say which key variables `spec` needs and lacks (errors with `strict`, else notes). False
    when that fails the check."""
    import os

    from intermodel.config.credentials import resolve_credentials
    from intermodel.errors import MissingKeyError

    try:
        resolve_credentials(spec, os.environ)
    except MissingKeyError as exc:
        for issue in exc.issues:
            print(safe_line(f"{indent}{'error' if strict else 'note'}: {issue}"))
        return not strict
    except ConfigError as exc:  # a variable that is set, but could never be sent
        for issue in exc.issues:
            print(safe_line(f"{indent}error: {issue}"))
        return False
    return True


def export(args: argparse.Namespace) -> int:
    from intermodel.analysis.markdown import to_markdown
    from intermodel.security.files import write_private
    from intermodel.transcript.reader import read_transcript

    source = Path(args.transcript)
    if args.format == "html":
        from intermodel.analysis.html import write_html, write_index

        if source.is_dir():
            index, listed, skipped = write_index(source)
            print(f"wrote {index} (and a page per run beside its transcript)")
            return _skipped(skipped, read=listed)
        print(f"wrote {write_html(source, Path(args.output) if args.output else None)}")
        return EXIT_OK
    transcript = read_transcript(args.transcript)
    text = to_markdown(transcript)
    if args.output == "-":
        sys.stdout.write(terminal_safe(text) if sys.stdout.isatty() else text)
        return EXIT_OK
    target = Path(args.output) if args.output else Path(args.transcript).with_suffix(".md")
    write_private(target, text)
    print(f"wrote {target}")
    return EXIT_OK


def stats(args: argparse.Namespace) -> int:
    from intermodel.analysis import collect, render_table, run_stats, to_csv, to_json
    from intermodel.transcript.reader import read_transcript

    path = Path(args.path)
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{args.path}: no such file or folder")
    if args.format != "table" and (args.by or args.scheme or args.coder):
        from intermodel.commands.findings import stats_rows

        return stats_rows(args)  # end-state and label rows instead of the runs'
    skipped: list[str] = []
    if path.is_dir():
        runs, skipped = collect(path)
    else:  # one file: it is read, or the command fails
        runs = [run_stats(read_transcript(path))]
    if args.format == "csv":
        sys.stdout.write(to_csv(runs))
    elif args.format == "json":
        sys.stdout.write(to_json(runs) + "\n")
    elif not runs:
        print("no transcripts found")
    else:
        from intermodel.analysis.fitwidth import ColumnFit, output_width
        from intermodel.commands.findings import stats_section

        fit = ColumnFit(output_width(sys.stdout, wide=args.wide))
        print(render_table(runs, fit))
        sys.stdout.write(stats_section(args, fit))
        if fit.hint():
            print(fit.hint())
    return _skipped(skipped, read=len(runs))


def index(args: argparse.Namespace) -> int:
    from intermodel.analysis.sqlindex import build_index, default_db
    from intermodel.transcript.reader import read_transcript

    path = Path(args.path)
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{args.path}: no such file or folder")
    if not path.is_dir():
        read_transcript(path)  # one file: it is read, or the command fails before any change
    db = Path(args.db) if args.db else default_db(path)
    report = build_index([path], db, rebuild=args.rebuild)
    for torn in report.torn:
        print(terminal_safe(f"intermodel: note: {torn}: incomplete last line ignored"),
              file=sys.stderr)
    print(terminal_safe(report.summary()))
    indexed = len(report.added) + len(report.updated) + len(report.unchanged)
    return _skipped([str(s) for s in report.skipped], read=indexed)


def _skipped(skipped: list[str], *, read: int) -> int:
    """Name each file a command over a folder set aside, and why, then how many there were.
    The exit code: 0 when at least one transcript was read (or there were none to read), 2 when
    there were some and none could be read."""
    for line in sorted(skipped):  # each starts with its file's path
        print(f"intermodel: skipped {terminal_safe(line)}", file=sys.stderr)
    if skipped:
        files = "file" if len(skipped) == 1 else "files"
        print(f"intermodel: {len(skipped)} {files} skipped", file=sys.stderr)
    return EXIT_USAGE if skipped and not read else EXIT_OK


def inspect(args: argparse.Namespace) -> int:
    import json

    from intermodel.lineage.audit import rebuild_request, verify_config, verify_transcript
    from intermodel.transcript.reader import read_transcript

    transcript = read_transcript(args.transcript)
    config = verify_config(transcript)
    if config.recorded is None:
        print(f"note     config       the header has no config hash (written before they were "
              f"kept); its config is {config.digest}")
    else:
        mark = "ok      " if config.matches else "MISMATCH"
        recorded = "" if config.matches else \
            f"  (the header records {terminal_safe(config.recorded)})"
        print(f"{mark} config       {config.digest}{recorded}")
    config_bad = config.recorded is not None and not config.matches
    if args.turn is None:
        results = verify_transcript(transcript)
        kind = "answer" if transcript.is_panel else "turn"  # a panel's agents answer once each
        for result in results:
            mark = "ok      " if result.matches else "MISMATCH"
            print(f"{mark} {kind} {result.turn.index:>4}  {terminal_safe(result.turn.agent)}  "
                  f"{result.digest}")
        bad = sum(not r.matches for r in results)
        print(f"{len(results) - bad} of {len(results)} {kind}s match their recorded request hash"
              + ("; the config DOES NOT MATCH its recorded hash" if config_bad else ""))
        return EXIT_RUN_ERROR if bad or config_bad else EXIT_OK
    result = rebuild_request(transcript, args.turn)
    body = json.dumps(result.request.to_json(), indent=2, ensure_ascii=False)
    print(terminal_safe(body))
    verdict = "matches the recorded hash" if result.matches else (
        f"DOES NOT MATCH the recorded {terminal_safe(result.turn.request_hash)}")
    # A pooled agent's turn names its server; the server is in no request, so not in the hash.
    server = f", answered by {terminal_safe(result.turn.endpoint)}" if result.turn.endpoint else ""
    print(f"turn {result.turn.index} ({terminal_safe(result.turn.agent)}{server}): "
          f"{result.digest} {verdict}")
    return EXIT_OK if result.matches and not config_bad else EXIT_RUN_ERROR
