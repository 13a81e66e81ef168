"""`intermodel code PATH --scheme FILE[:NAME] [--coder NAME] [--blind]`: a person codes the
targets of a scheme in the terminal, one at a time (the screen is `intermodel.tui.code`).

Everything that can be wrong is said in one line before the screen opens: a path with no
transcripts, a scheme file that does not load, a scheme with no targets in what was read, a bad
coder name, and a standard input or output that is not a terminal.
"""

from __future__ import annotations

import argparse
import getpass
import sys

from intermodel.errors import EXIT_USAGE, UsageError

__all__ = ["code"]


def code(args: argparse.Namespace) -> int:
    from intermodel.analysis.study import read_study
    from intermodel.coding.labels import Human, coder_name_problem
    from intermodel.coding.scheme import load_scheme
    from intermodel.coding.session import CodingSession, RunLabels
    from intermodel.commands.findings import skipped_files

    coder = args.coder if args.coder is not None else _login_name()
    problem = coder_name_problem(coder)
    if problem is not None:
        raise UsageError(f"--coder {coder[:40]!r}: {problem}")
    scheme = load_scheme(args.scheme)
    runs, skipped = read_study(args.path)
    if skipped_files(skipped, read=len(runs)) == EXIT_USAGE or not runs:
        raise UsageError(f"{args.path}: no transcripts to code")
    session = CodingSession.start([RunLabels(run.transcript, run.labels) for run in runs],
                                  scheme, Human(coder), blind=args.blind)
    if not (sys.stdin.isatty() and sys.stdout.isatty()):
        session.close()
        raise UsageError("code needs a terminal (standard input and output)")
    from intermodel.tui.code import run_coding

    before = session.coded
    status = int(run_coding(session))
    after = session.coded
    print(f"coded {session.coded_now} target{'s' if session.coded_now != 1 else ''} this "
          f"session ({after - before} new); {session.progress()} under {scheme.name}")
    return status


def _login_name() -> str:
    try:
        return getpass.getuser()
    except (OSError, KeyError):  # no LOGNAME/USER and no passwd entry (a bare container)
        raise UsageError("cannot tell who you are: give --coder NAME") from None
