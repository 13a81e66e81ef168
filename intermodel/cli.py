"""The `intermodel` command: the parser, and one-line reports of expected failures. The command
handlers, thin wrappers over the library, live in `intermodel.commands` and are referenced here
directly, so mypy checks each against `Handler`. Their modules are light to import (what one
command needs, an SDK, the terminal UI, SQLite, is imported inside its handler), so `--help` and
argument errors stay quick.

Every expected failure (bad config, missing key, unreachable server, unreadable transcript) ends
as one line on stderr and an exit code, never a traceback: 0 done, 1 the run ended in an error,
2 bad config or usage, 130 stopped by a signal.
"""

from __future__ import annotations

import argparse
import functools
import gc
import sys
from collections.abc import Callable, Sequence
from typing import cast

from intermodel.commands import attaching, reading, running, steering
from intermodel.commands.findings_args import add_findings_commands, add_stats_options
from intermodel.errors import EXIT_RUN_ERROR, EXIT_SIGNAL, IntermodelError
from intermodel.security.bounds import MAX_TURNS
from intermodel.security.text import message_lines, safe_line
from intermodel.transcript.versions import __version__

__all__ = ["Handler", "main"]

Handler = Callable[[argparse.Namespace], int]


def main(argv: Sequence[str] | None = None) -> int:
    """The program (`argv` None: the command line). Returns the exit code."""
    try:
        return _main(argv)
    finally:
        if argv is None:  # the process exits next
            # Its last garbage collection would walk every object the SDKs created: a second
            # or more on a busy machine, between a stopped run and its exit. Frozen, they are
            # left to the operating system.
            gc.freeze()


def _main(argv: Sequence[str] | None) -> int:
    parser = _parser()
    args = parser.parse_args(argv)
    if not getattr(args, "command", None):
        args = parser.parse_args(["run", *(argv or [])])
    try:
        handler = cast(Handler, args.handler)
        return int(handler(args))
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
    for line in message_lines(str(exc)) or [type(exc).__name__]:
        print(f"intermodel: {safe_line(line)}", file=sys.stderr)
    return exc.exit_code


def _handled_by(parser: argparse.ArgumentParser, handler: Handler) -> None:
    # Typed, unlike set_defaults: a handler of the wrong shape is a mypy error here.
    parser.set_defaults(handler=handler)


@functools.cache  # built once per process: tests and scripts call `main` many times
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
    _handled_by(run, running.run)

    validate = sub.add_parser("validate", help="check pairing and scheme files without running "
                              "them")
    validate.add_argument("files", nargs="+", metavar="FILE")
    validate.add_argument("--strict", action="store_true",
                          help="also fail when a key variable the pairing needs is not set")
    _handled_by(validate, reading.validate)

    export = sub.add_parser("export", help="write a transcript (or, as HTML, a folder of them) "
                            "in a readable form")
    export.add_argument("transcript", help="a transcript, or a folder of them with --format html")
    export.add_argument("--format", choices=["md", "html"], default="md")
    export.add_argument("-o", "--output", metavar="FILE",
                        help="output file, or - for stdout (default: beside the transcript)")
    _handled_by(export, reading.export)

    stats = sub.add_parser("stats", help="figures of recorded runs: per run, agent and group")
    stats.add_argument("path", help="a transcript, or a folder searched for transcripts")
    stats.add_argument("--format", choices=["table", "csv", "json"], default="table")
    stats.add_argument("--wide", action="store_true",
                       help="every column, however narrow the terminal (by default a terminal's "
                            "table leaves out what does not fit, and says so; a pipe or file "
                            "always gets every column)")
    add_stats_options(stats)
    _handled_by(stats, reading.stats)

    index = sub.add_parser("index", help="build or update a SQLite database of recorded runs")
    index.add_argument("path", help="a transcript, or a folder searched for transcripts")
    index.add_argument("--db", metavar="FILE",
                       help="the database (default: intermodel.sqlite in the folder)")
    index.add_argument("--rebuild", action="store_true",
                       help="build the index's own tables again from every file (tables you "
                            "added to the database stay)")
    _handled_by(index, reading.index)

    resume = sub.add_parser("resume", help="continue an interrupted run from its transcript")
    resume.add_argument("transcript")
    resume.add_argument("--turns", type=_positive, metavar="N",
                        help="new turn budget (needed to continue a run that finished)")
    resume.add_argument("--headless", action="store_true",
                        help="plain streamed output instead of the terminal UI")
    _trust_option(resume)
    _color_option(resume)
    _handled_by(resume, running.resume)

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
    _trust_option(branch)
    _color_option(branch)
    _handled_by(branch, running.branch)

    say = sub.add_parser("say", help="send a human message to a run in progress")
    say.add_argument("transcript", help="the run's transcript")
    say.add_argument("text")
    say.add_argument("--to", default="both", metavar="WHO",
                     help="a, b, both (default) or an agent's name")
    _handled_by(say, steering.say)

    control = sub.add_parser("control", help="pause, resume, step, stop or extend a run in "
                             "progress")
    control.add_argument("transcript", help="the run's transcript")
    control.add_argument("action", choices=["pause", "resume", "step", "stop", "extend"])
    control.add_argument("turns", nargs="?", type=_positive, help="for extend: how many turns")
    control.add_argument("--now", action="store_true",
                         help="with stop: discard the streaming turn instead of finishing it")
    _handled_by(control, steering.control)

    attach = sub.add_parser("attach", help="watch and steer a run going on in another process "
                            "(q detaches; the run goes on)")
    attach.add_argument("target", nargs="?", metavar="RUN",
                        help="a run id (or its first characters) or the run's transcript; "
                        "without it, the one run in progress, or a choice of them")
    attach.add_argument("--headless", action="store_true",
                        help="print the run as it goes, like `tail -f` (also when not on a "
                        "terminal); Ctrl-C detaches")
    attach.add_argument("--back", action="store_true", help=argparse.SUPPRESS)  # Esc detaches
    _color_option(attach)
    _handled_by(attach, attaching.attach)

    batch = sub.add_parser("batch", help="run an experiment: pairings x openers x replicates")
    batch.add_argument("experiment", help="experiment TOML file")
    batch.add_argument("--yes", action="store_true", help="start without asking")
    batch.add_argument("--dry-run", action="store_true",
                       help="show the runs and the cost bound, run nothing")
    batch.add_argument("--headless", action="store_true",
                       help="write the progress log instead of showing the dashboard")
    _color_option(batch)
    _handled_by(batch, running.batch)

    status = sub.add_parser("status", help="list runs in progress")
    status.add_argument("folders", nargs="*", metavar="DIR",
                        help="transcript folders to look in (default: the transcripts folder)")
    _handled_by(status, steering.status)

    replay = sub.add_parser(
        "replay", help="watch a recorded run again in the terminal UI",
        description="Watch a recorded run again in the terminal UI. With --follow, watch a run "
                    "that is still being written (say, on another machine, its transcript on a "
                    "shared disk): what is there is shown at once, then each record as it is "
                    "written, until the run's end record.")
    replay.add_argument("transcript")
    replay.add_argument("--speed", type=_speed, default=1.0, metavar="X",
                        help="playback speed: 1 is the original pace, 4 four times faster")
    replay.add_argument("--follow", action="store_true",
                        help="follow a transcript that is still being written, turn by turn, "
                             "until its end record (headless, or when output is not a "
                             "terminal: print it like a live run and exit with its code)")
    replay.add_argument("--headless", action="store_true",
                        help="with --follow: print to the terminal instead of the UI")
    _color_option(replay)
    _handled_by(replay, running.replay)

    inspect = sub.add_parser("inspect", help="rebuild a turn's exact request and check its hash")
    inspect.add_argument("transcript")
    inspect.add_argument("--turn", type=_positive, metavar="N",
                         help="the turn to show (default: check every turn)")
    _handled_by(inspect, reading.inspect)

    add_findings_commands(sub)
    return parser


def _whole(minimum: int, maximum: int = MAX_TURNS) -> Callable[[str], int]:
    """An argument type: a whole number from `minimum` to `maximum` (every whole-number option
    counts turns)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:  # also for more digits than Python converts
            raise argparse.ArgumentTypeError(
                f"expected a whole number, got {text[:30]!r}") from None
        if not minimum <= value <= maximum:
            raise argparse.ArgumentTypeError(f"expected a number from {minimum} to {maximum}")
        return value

    return parse


_positive, _count = _whole(1), _whole(0)


def _speed(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not 0 < value <= 1000:
        raise argparse.ArgumentTypeError("expected a speed above 0 and at most 1000")
    return value


def _trust_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--trust", action="store_true",
                        help="use the endpoints, key variables and headers the transcript names "
                             "even when no pairing file of yours vouches for them "
                             "(see docs/security.md)")


def _color_option(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                        help="colour in headless output (default: auto; NO_COLOR is respected)")
