"""Commands that run something: run, resume, branch, replay, batch."""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from functools import partial
from importlib import resources
from pathlib import Path

import anyio

from intermodel.config import Pairing, Panel, load_config
from intermodel.errors import UsageError
from intermodel.headless import RunOpener
from intermodel.runner import Run

__all__ = ["batch", "branch", "demo_config", "replay", "resume", "run"]


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


def run(args: argparse.Namespace) -> int:
    from intermodel.runner import prepared_run

    pairing = _load(args.config, args.turns)
    return _drive(partial(prepared_run, pairing, out_dir=args.out,
                          record=not args.no_transcript), args)


def resume(args: argparse.Namespace) -> int:
    from intermodel.resume import plan_resume, prepared_resume
    from intermodel.transcript.reader import read_transcript

    plan_resume(read_transcript(args.transcript), turns=args.turns)  # refusals, before any UI
    return _drive(partial(prepared_resume, args.transcript, turns=args.turns), args)


def branch(args: argparse.Namespace) -> int:
    from intermodel.branch import plan_branch, prepared_branch
    from intermodel.transcript.reader import read_transcript

    changes = {"say": args.say, "to": args.to, "opener": args.opener, "turns": args.turns,
               "swap": _pairs(args.swap, "--swap"), "models": _pairs(args.model, "--model")}
    plan_branch(read_transcript(args.transcript), args.turn, **changes)  # refusals, before a UI
    return _drive(partial(prepared_branch, args.transcript, args.turn, out_dir=args.out,
                          **changes), args)


def _drive(open_run: Callable[..., AbstractAsyncContextManager[Run]],
           args: argparse.Namespace) -> int:
    """The terminal UI on a terminal, plain streamed output otherwise (or with --headless).
    Someone watching the UI decides what happens when the cost budget is reached (the run
    pauses); a headless run stops."""
    if not args.headless and sys.stdin.isatty() and sys.stdout.isatty():
        from intermodel.tui.app import run_tui

        return int(run_tui(partial(open_run, cost_action="pause")))
    from intermodel.headless import run_headless

    opener: RunOpener = partial(open_run, cost_action="stop")
    return anyio.run(run_headless, opener, args.color)


def replay(args: argparse.Namespace) -> int:
    from intermodel.transcript.reader import read_transcript

    path = Path(args.transcript)
    # A transcript that cannot be replayed is one clear line, before any UI starts: every
    # record is checked as it is read, and the stored config must load.
    read_transcript(path).config()
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError("replay needs a terminal; use `intermodel export` for a readable file")
    from intermodel.tui.app import run_replay

    return int(run_replay(path, speed=args.speed))


def batch(args: argparse.Namespace) -> int:
    from intermodel.experiment.command import run_batch_command

    return run_batch_command(args.experiment, yes=args.yes, dry_run=args.dry_run,
                             color=args.color)


def _pairs(items: list[str], option: str) -> dict[str, str]:
    pairs = {}
    for item in items:
        name, sep, value = item.partition("=")
        if not sep or not name or not value:
            raise UsageError(f"{option} {item}: expected NAME=VALUE")
        pairs[name] = value
    return pairs
