"""The `intermodel` command: thin wrappers over the library.

Every expected failure (bad config, missing key, unreachable server, unreadable transcript) ends
as one line on stderr and an exit code, never a traceback: 0 done, 1 the run ended in an error,
2 bad config or usage, 130 stopped by a signal.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from functools import partial
from importlib import resources
from pathlib import Path

import anyio

from intermodel.about import __version__
from intermodel.config import Pairing, Panel, load_config
from intermodel.errors import IntermodelError, UsageError
from intermodel.headless import RunOpener
from intermodel.safety import terminal_safe

__all__ = ["main"]

EXIT_OK, EXIT_RUN_ERROR, EXIT_USAGE, EXIT_SIGNAL = 0, 1, 2, 130


def main(argv: Sequence[str] | None = None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["run", *(argv or [])])
    try:
        return int(args.handler(args))
    except IntermodelError as exc:
        return _report(exc)
    except BaseExceptionGroup as group:  # an error that left through a task group
        found = group.subgroup(lambda e: isinstance(e, IntermodelError))
        if found is None:
            raise
        first = found.exceptions[0]
        while isinstance(first, BaseExceptionGroup):
            first = first.exceptions[0]
        return _report(first)
    except KeyboardInterrupt:
        print("intermodel: interrupted", file=sys.stderr)
        return EXIT_SIGNAL
    except BrokenPipeError:  # output piped into something that stopped reading (`| head`)
        return EXIT_RUN_ERROR


def _report(exc: IntermodelError) -> int:
    for line in str(exc).splitlines() or [type(exc).__name__]:
        print(f"intermodel: {terminal_safe(line)}", file=sys.stderr)
    return exc.exit_code


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="intermodel",
        description="Run, watch and record live conversations between two language models.",
    )
    parser.add_argument("--version", action="version", version=f"intermodel {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")

    run = sub.add_parser("run", help="run a pairing (the demo when no file is given)")
    run.add_argument("config", nargs="?", help="pairing TOML file (default: the bundled demo)")
    run.add_argument("--headless", action="store_true",
                     help="plain streamed output instead of the terminal UI")
    run.add_argument("--out", metavar="DIR", help="transcript folder (default: the pairing's)")
    run.add_argument("--turns", type=_positive, metavar="N", help="override the turn budget")
    run.add_argument("--no-transcript", action="store_true", help="do not write a transcript")
    _color_option(run)
    run.set_defaults(handler=_cmd_run)

    validate = sub.add_parser("validate", help="check pairing files without running them")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--strict", action="store_true",
                          help="also fail when a key variable the pairing needs is not set")
    validate.set_defaults(handler=_cmd_validate)

    export = sub.add_parser("export", help="write a transcript (or, as HTML, a folder of them) "
                            "in a readable form")
    export.add_argument("transcript", help="a transcript, or a folder of them with --format html")
    export.add_argument("--format", choices=["md", "html"], default="md")
    export.add_argument("-o", "--output", metavar="FILE",
                        help="output file, or - for stdout (default: beside the transcript)")
    export.set_defaults(handler=_cmd_export)

    stats = sub.add_parser("stats", help="figures of recorded runs: per run, agent and group")
    stats.add_argument("path", help="a transcript, or a folder searched for transcripts")
    stats.add_argument("--format", choices=["table", "csv", "json"], default="table")
    stats.set_defaults(handler=_cmd_stats)

    index = sub.add_parser("index", help="build or update a SQLite database of recorded runs")
    index.add_argument("path", help="a transcript, or a folder searched for transcripts")
    index.add_argument("--db", metavar="FILE",
                       help="the database (default: intermodel.sqlite in the folder)")
    index.add_argument("--rebuild", action="store_true", help="index every file again")
    index.set_defaults(handler=_cmd_index)

    resume = sub.add_parser("resume", help="continue an interrupted run from its transcript")
    resume.add_argument("transcript")
    resume.add_argument("--turns", type=_positive, metavar="N",
                        help="new turn budget (needed to continue a run that finished)")
    resume.add_argument("--headless", action="store_true",
                        help="plain streamed output instead of the terminal UI")
    _color_option(resume)
    resume.set_defaults(handler=_cmd_resume)

    branch = sub.add_parser("branch", help="start a new run from a run's state after turn N")
    branch.add_argument("transcript", help="the parent run's transcript")
    branch.add_argument("--turn", type=_count, required=True, metavar="N",
                        help="branch after this turn (0: from the opener)")
    branch.add_argument("--say", metavar="TEXT", help="a human message for the next turn")
    branch.add_argument("--to", default="both", metavar="WHO", help="who --say is for")
    branch.add_argument("--opener", metavar="TEXT", help="another opener")
    branch.add_argument("--swap", action="append", default=[], metavar="NAME=FILE:AGENT",
                        help="seat another pairing file's agent in NAME's place")
    branch.add_argument("--model", action="append", default=[], metavar="NAME=MODEL",
                        help="another model for agent NAME")
    branch.add_argument("--turns", type=_positive, metavar="N", help="turn budget of the branch")
    branch.add_argument("--out", metavar="DIR", help="transcript folder (default: the parent's)")
    branch.add_argument("--headless", action="store_true",
                        help="plain streamed output instead of the terminal UI")
    _color_option(branch)
    branch.set_defaults(handler=_cmd_branch)

    say = sub.add_parser("say", help="send a human message to a run in progress")
    say.add_argument("transcript", help="the run's transcript")
    say.add_argument("text")
    say.add_argument("--to", default="both", metavar="WHO",
                     help="a, b, both (default) or an agent's name")
    say.set_defaults(handler=_cmd_say)

    control = sub.add_parser("control", help="pause, resume, step, stop or extend a run in "
                             "progress")
    control.add_argument("transcript", help="the run's transcript")
    control.add_argument("action", choices=["pause", "resume", "step", "stop", "extend"])
    control.add_argument("turns", nargs="?", type=_positive, help="for extend: how many turns")
    control.add_argument("--now", action="store_true",
                         help="with stop: discard the streaming turn instead of finishing it")
    control.set_defaults(handler=_cmd_control)

    batch = sub.add_parser("batch", help="run an experiment: pairings x openers x replicates")
    batch.add_argument("experiment", help="experiment TOML file")
    batch.add_argument("--yes", action="store_true", help="start without asking")
    batch.add_argument("--dry-run", action="store_true",
                       help="show the runs and the cost bound, run nothing")
    _color_option(batch)
    batch.set_defaults(handler=_cmd_batch)

    status = sub.add_parser("status", help="list runs in progress")
    status.add_argument("folders", nargs="*", metavar="DIR",
                        help="transcript folders to look in (default: the transcripts folder)")
    status.set_defaults(handler=_cmd_status)

    replay = sub.add_parser("replay", help="watch a recorded run again in the terminal UI")
    replay.add_argument("transcript")
    replay.add_argument("--speed", type=_speed, default=1.0, metavar="X",
                        help="playback speed: 1 is the original pace, 4 four times faster")
    replay.set_defaults(handler=_cmd_replay)

    inspect = sub.add_parser("inspect", help="rebuild a turn's exact request and check its hash")
    inspect.add_argument("transcript")
    inspect.add_argument("--turn", type=_positive, metavar="N",
                         help="the turn to show (default: check every turn)")
    inspect.set_defaults(handler=_cmd_inspect)
    return parser


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError("expected a number of at least 1")
    return value


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError("expected a number of at least 0")
    return value


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{option} {item}: expected NAME=VALUE")
        pairs[name] = value
    return pairs


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError("expected a speed above 0 and at most 1000")
    return value


def _color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour in headless output (default: auto; NO_COLOR is respected)")


def demo_config() -> Path:
    """The bundled demo pairing, wherever the package is installed."""
    return Path(str(resources.files("intermodel.configs") / "demo.toml"))


def _load(path: str | None, turns: int | None = None) -> Pairing | Panel:
    config = load_config(path or demo_config())
    if turns is None:
        return config
    if isinstance(config, Panel):
        raise UsageError("--turns does not apply to a panel (every agent answers once)")
    return config.with_max_turns(turns)


def _cmd_run(args: argparse.Namespace) -> int:
    from intermodel.runner import prepared_run

    pairing = _load(args.config, args.turns)
    return _drive(partial(prepared_run, pairing, out_dir=args.out,
                          record=not args.no_transcript), args)


def _cmd_resume(args: argparse.Namespace) -> int:
    from intermodel.resume import plan_resume, prepared_resume
    from intermodel.transcript.reader import read_transcript

    plan_resume(read_transcript(args.transcript), turns=args.turns)  # refusals, before any UI
    return _drive(partial(prepared_resume, args.transcript, turns=args.turns), args)


def _cmd_branch(args: argparse.Namespace) -> int:
    from intermodel.branch import plan_branch, prepared_branch
    from intermodel.transcript.reader import read_transcript

    changes = {"say": args.say, "to": args.to, "opener": args.opener, "turns": args.turns,
               "swap": _pairs(args.swap, "--swap"), "models": _pairs(args.model, "--model")}
    plan_branch(read_transcript(args.transcript), args.turn, **changes)  # refusals, before a UI
    return _drive(partial(prepared_branch, args.transcript, args.turn, out_dir=args.out,
                          **changes), args)


def _drive(open_run: RunOpener, args: argparse.Namespace) -> int:
    """The terminal UI on a terminal, plain streamed output otherwise (or with --headless)."""
    if not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        from intermodel.tui.app import run_tui

        return run_tui(open_run)
    from intermodel.headless import run_headless

    return anyio.run(run_headless, open_run, args.color)


def _cmd_replay(args: argparse.Namespace) -> int:
    from intermodel.transcript.reader import read_transcript

    path = Path(args.transcript)
    read_transcript(path)  # an unreadable transcript is one clear line, before any UI starts
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("replay needs a terminal; use `intermodel export` for a readable file")
    from intermodel.tui.app import run_replay

    return run_replay(path, speed=args.speed)


def _control_socket(transcript: str) -> Path:
    from intermodel.control_channel import runtime_dir
    from intermodel.transcript.reader import read_transcript

    found = read_transcript(transcript)
    if found.end is not None:
        raise UsageError(f"{transcript} has finished ({found.end.reason}); nothing to steer")
    beside = Path(f"{transcript}.sock")
    return beside if beside.exists() else runtime_dir() / f"{found.run_id}.sock"


def _send(transcript: str, payload: dict[str, object]) -> int:
    from intermodel.control_channel import request

    reply = request(_control_socket(transcript), payload)
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "the run refused the request")))
    return EXIT_OK


def _cmd_say(args: argparse.Namespace) -> int:
    return _send(args.transcript, {"command": "interject", "text": args.text, "to": args.to})


def _cmd_control(args: argparse.Namespace) -> int:
    if args.action == "extend" and args.turns is None:
        raise UsageError("extend needs a number of turns, e.g. `intermodel control RUN extend 4`")
    return _send(args.transcript, {"command": args.action, "turns": args.turns, "now": args.now})


def _cmd_batch(args: argparse.Namespace) -> int:
    from intermodel.experiment.command import run_batch_command

    return run_batch_command(args.experiment, yes=args.yes, dry_run=args.dry_run,
                             color=args.color)


def _cmd_status(args: argparse.Namespace) -> int:
    import os

    from intermodel.control_channel import live_runs

    folders = [Path(f) for f in args.folders] or [
        Path(os.environ.get("INTERMODEL_TRANSCRIPTS") or "transcripts")]
    runs = list(live_runs(folders))
    if not runs:
        print("no runs in progress")
        return EXIT_OK
    for run in runs:
        done = f"{run['turns']}/{run['max_turns']} turns done"
        print(terminal_safe(f"{run['state']:<18} {done:<20} {run['elapsed']:>7.0f} s  "
                            f"pid {run['pid']}  {run['transcript']}"))
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
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
    return EXIT_USAGE if failed else EXIT_OK


def _cmd_export(args: argparse.Namespace) -> int:
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


def _cmd_stats(args: argparse.Namespace) -> int:
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


def _cmd_index(args: argparse.Namespace) -> int:
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


def _cmd_inspect(args: argparse.Namespace) -> int:
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

