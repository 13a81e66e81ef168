"""Commands that steer a run in progress from outside its process: say, control, status."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from intermodel.errors import EXIT_OK, UsageError
from intermodel.security.text import safe_line

__all__ = ["control", "say", "status"]


def _control_socket(transcript: str) -> Path:
    """The socket of the run recorded in `transcript`, or of the live run with that id."""
    from intermodel.control.client import find_socket, registered_run
    from intermodel.security.runid import is_run_id
    from intermodel.transcript.reader import read_transcript

    if is_run_id(transcript) and not Path(transcript).exists():
        return registered_run(transcript)
    found = read_transcript(transcript)
    if found.end is not None:
        raise UsageError(f"{transcript} has finished ({found.end.reason}); nothing to steer")
    return find_socket(transcript, found.run_id)


def _send(transcript: str, payload: dict[str, object]) -> int:
    from intermodel.control.client import request

    reply = request(_control_socket(transcript), payload)
    if not reply.get("ok"):
        raise UsageError(str(reply.get("error", "the run refused the request")))
    # One line of what the run took the request to mean (a run from before this said nothing).
    print(safe_line(f"accepted: {reply.get('accepted') or payload['command']}"))
    return EXIT_OK


def say(args: argparse.Namespace) -> int:
    return _send(args.transcript, {"command": "interject", "text": args.text, "to": args.to})


def control(args: argparse.Namespace) -> int:
    if args.action == "extend" and args.turns is None:
        raise UsageError("extend needs a number of turns, e.g. `intermodel control RUN extend 4`")
    return _send(args.transcript, {"command": args.action, "turns": args.turns, "now": args.now})


def status(args: argparse.Namespace) -> int:
    from intermodel.control.client import live_runs

    folders = [Path(f) for f in args.folders] or [
        Path(os.environ.get("INTERMODEL_TRANSCRIPTS") or "transcripts")]
    notes: list[str] = []
    runs = list(live_runs(folders, notes))
    for note in notes:
        print(f"intermodel: note: {safe_line(note)}", file=sys.stderr)
    if not runs:
        print("no runs in progress")
        return EXIT_OK
    # Batches first, with their progress; then every run, a batch's entries among them.
    for batch in (r for r in runs if r.get("kind") == "batch"):
        print(safe_line(f"batch {batch['experiment']}: {batch_progress(batch)} · "
                        f"{batch['state']}  pid {batch['pid']}  {batch['file']}"))
    for run in (r for r in runs if r.get("kind") != "batch"):
        done = f"{run['turns']}/{run['max_turns']} turns done"
        print(safe_line(f"{run['state']:<18} {done:<20} {run['elapsed']:>7.0f} s  "
                        f"pid {run['pid']}  {run['transcript']}"))
    return EXIT_OK


def batch_progress(batch: dict[str, object]) -> str:
    """`3/12 done · 2 running · 1 retrying · 0 failed · about 4m left`, from a batch's snapshot."""
    line = (f"{batch['done']}/{batch['total']} done · {batch['running']} running · "
            f"{batch['retrying']} retrying · {batch['failed']} failed")
    eta = batch.get("eta")
    if isinstance(eta, int | float):
        line += f" · about {clock(eta)} left"
    return line


def clock(seconds: float) -> str:
    seconds = int(seconds)
    return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m" if seconds >= 3600 else \
        f"{seconds // 60}m{seconds % 60:02d}s"
