"""Commands that run something: run, resume, branch, replay, batch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING

import anyio

from intermodel.config import Pairing, RunSpec, load_config
from intermodel.engine.prepare import Run, RunOpener
from intermodel.errors import UntrustedTranscript, UsageError
from intermodel.security.text import terminal_safe

if TYPE_CHECKING:
    from intermodel.lineage.trust import Approval, Assessment

__all__ = ["batch", "branch", "demo_config", "replay", "resume", "run"]


def demo_config() -> Path:
    """The bundled demo pairing, wherever the package is installed."""
    return Path(str(resources.files("intermodel.configs") / "demo.toml"))


def _load(path: str | None, turns: int | None = None) -> RunSpec:
    config = load_config(path or demo_config())
    if turns is None:
        return config
    if not isinstance(config, Pairing):
        raise UsageError("--turns does not apply to a panel (every agent answers once)")
    return config.with_max_turns(turns)


def run(args: argparse.Namespace) -> int:
    from intermodel.engine.prepare import prepared_run

    pairing = _load(args.config, args.turns)
    return _drive(partial(prepared_run, pairing, out_dir=args.out,
                          record=not args.no_transcript), args)


def resume(args: argparse.Namespace) -> int:
    from intermodel.lineage.resume import assess_resume, plan_resume, prepared_resume
    from intermodel.transcript.reader import read_transcript

    transcript = read_transcript(args.transcript)
    plan = plan_resume(transcript, turns=args.turns)  # refusals, before any UI
    approve = _consent(assess_resume(transcript, plan), args)
    return _drive(partial(prepared_resume, args.transcript, turns=args.turns, approve=approve),
                  args)


def branch(args: argparse.Namespace) -> int:
    from intermodel.lineage.branch import assess_branch, plan_branch, prepared_branch
    from intermodel.transcript.reader import read_transcript

    changes = {"say": args.say, "to": args.to, "opener": args.opener, "turns": args.turns,
               "swap": _pairs(args.swap, "--swap"), "models": _pairs(args.model, "--model")}
    parent = read_transcript(args.transcript)
    plan = plan_branch(parent, args.turn, **changes)  # refusals, before a UI
    approve = _consent(assess_branch(parent, plan, changes["swap"]), args)
    return _drive(partial(prepared_branch, args.transcript, args.turn, out_dir=args.out,
                          approve=approve, **changes), args)


def _consent(assessment: Assessment, args: argparse.Namespace) -> Approval:
    """Whether a run may use seats no pairing file of yours vouches for: --trust says yes; on a
    terminal the person is shown them and asked (default no); headless, the answer is no."""
    from intermodel.lineage.trust import refuse, trust_all, trust_exactly

    if assessment.trusted:
        return refuse  # nothing to consent to; a changed transcript is checked again
    if args.trust:
        return trust_all
    if args.headless or not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UntrustedTranscript(assessment.refusal())
    print(f"{terminal_safe(str(assessment.path))} names endpoints or key variables that no "
          "pairing file of yours vouches for")
    print(f"({assessment.reason}). Going on sends each agent's key, and the variables its "
          "headers name, to its endpoint:")
    for line in assessment.lines():
        print(f"  {line}")
    print("(! = vouched for by no pairing file of yours.) Say yes only if you trust whoever "
          "wrote this transcript.")
    try:
        answer = input(f"{assessment.action.capitalize()} it with these? [y/N] ")
    except EOFError:
        answer = ""
    if answer.strip().lower() not in ("y", "yes"):
        raise UntrustedTranscript(f"not {assessment.action}d: you did not consent")
    return trust_exactly(assessment.seats)


def _drive(open_run: Callable[..., AbstractAsyncContextManager[Run]],
           args: argparse.Namespace) -> int:
    """The terminal UI on a terminal, plain streamed output otherwise (or with --headless).
    Someone watching the UI decides what happens when the cost budget is reached (the run
    pauses); a headless run stops."""
    if not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        from intermodel.tui.app import run_tui

        return int(run_tui(partial(open_run, cost_action="pause")))
    from intermodel.console.headless import run_headless

    opener: RunOpener = partial(open_run, cost_action="stop")
    return anyio.run(run_headless, opener, args.color)


def replay(args: argparse.Namespace) -> int:
    if args.follow:
        return _follow(args)
    from intermodel.transcript.reader import read_transcript

    path = Path(args.transcript)
    # A transcript that cannot be replayed is one clear line, before any UI starts: every
    # record is checked as it is read, and the stored config must load.
    read_transcript(path).config()
    if args.headless or not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("replay needs a terminal; use `intermodel export` for a readable file, "
                         "or --follow to print a run as it is written")
    from intermodel.tui.app import run_replay

    return int(run_replay(path, speed=args.speed))


def _follow(args: argparse.Namespace) -> int:
    """`replay --follow`: the UI on a terminal, printed like a live headless run otherwise."""
    from intermodel.transcript.reader import GrowingTranscript

    if args.speed != 1.0:
        raise UsageError("--speed does not apply to --follow: the run being written sets the pace")
    growing = GrowingTranscript(args.transcript)
    # What is there already is checked before any UI starts (a run just starting may not have
    # written its header yet: that is waited for).
    growing.poll()
    if growing.failure is not None:  # a bad line after good ones: refused, as replay does
        raise growing.failure
    if growing.transcript is not None:
        growing.transcript.config()
    if not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        from intermodel.tui.app import run_replay

        return int(run_replay(Path(args.transcript), follow=growing))
    from intermodel.console.follow import follow_headless

    return anyio.run(follow_headless, growing, args.color)


def batch(args: argparse.Namespace) -> int:
    from intermodel.commands.batch import run_batch_command

    return run_batch_command(args.experiment, yes=args.yes, dry_run=args.dry_run,
                             color=args.color, headless=args.headless)


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{option} {item}: expected NAME=VALUE")
        pairs[name] = value
    return pairs
