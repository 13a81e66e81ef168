"""`intermodel attach`: watch and steer a run going on in another process."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from intermodel.errors import UsageError
from intermodel.security.text import safe_line

__all__ = ["attach"]


def attach(args: argparse.Namespace) -> int:
    if args.target is not None:
        from intermodel.control.client import find_batch

        if find_batch(args.target) is not None:  # experiments/NAME.toml, its name, a batch id
            from intermodel.tui.dashboard import run_dashboard_remote

            return int(run_dashboard_remote(args.target))
    socket, transcript = _target(args.target)
    if args.headless or not (sys.stdin.isatty() and sys.stdout.isatty()):
        import anyio

        from intermodel.console.attached import attach_headless

        return anyio.run(attach_headless, socket, transcript, args.color)
    from intermodel.tui.app import run_attach

    return int(run_attach(socket, transcript, back=args.back))


def _target(target: str | None) -> tuple[Path, str | None]:
    """The socket and transcript of the run `target` names: a transcript, a run id (or its
    first characters), or nothing for the one run in progress."""
    if target is not None and Path(target).is_file():
        return _by_transcript(target)
    runs = _live_runs()
    if target is not None:
        runs = [run for run in runs if str(run.get("run_id", "")).startswith(target)]
        if not runs:
            raise UsageError(f"no run in progress has the id {target!r} (`intermodel status` "
                             "lists them), and no transcript is there")
    if not runs:
        raise UsageError("no run in progress to attach to")
    run = runs[0] if len(runs) == 1 else _choose(runs)
    transcript = run.get("transcript")
    return Path(str(run["socket"])), transcript if isinstance(transcript, str) else None


def _by_transcript(transcript: str) -> tuple[Path, str]:
    from intermodel.control.client import find_socket
    from intermodel.transcript.reader import read_transcript

    found = read_transcript(transcript)
    if found.end is not None:
        raise UsageError(f"{transcript} has finished ({found.end.reason}); `intermodel replay` "
                         "shows it")
    return find_socket(transcript, found.run_id), transcript


def _live_runs() -> list[dict[str, Any]]:
    from intermodel.control.client import live_runs

    folder = Path(os.environ.get("INTERMODEL_TRANSCRIPTS") or "transcripts")
    return [run for run in live_runs([folder]) if run.get("kind", "run") != "batch"]


def _describe(run: dict[str, Any]) -> str:
    return safe_line(f"{run.get('run_id')}  {run.get('pairing')}  {run.get('state')}  "
                     f"{run.get('turns')}/{run.get('max_turns')} turns  {run.get('transcript')}")


def _choose(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Ask which run, on a terminal; elsewhere, say which there are."""
    listing = "\n".join(f"  {n}. {_describe(run)}" for n, run in enumerate(runs, start=1))
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        raise UsageError(f"{len(runs)} runs are in progress; name one (its run id or "
                         f"transcript):\n{listing}")
    print(f"{len(runs)} runs are in progress:\n{listing}")
    try:
        answer = input(f"Attach to which? [1-{len(runs)}] ").strip()
    except EOFError:
        answer = ""
    if not answer.isdigit() or not 1 <= int(answer) <= len(runs):
        raise UsageError("no run chosen")
    return runs[int(answer) - 1]
