"""The command-line options of the findings commands (`agreement`, `phrases`, and what `stats`
gains), kept apart from the parser of the run commands."""

from __future__ import annotations

import argparse
from typing import Any

from intermodel.commands import coding, findings, judging

__all__ = ["add_findings_commands", "add_stats_options"]

_GROUPS = ["model", "agent", "group", "label"]
# intermodel.analysis.phrases.MAX_N: not imported, so building the parser loads nothing heavy.
MAX_N = 10


def add_findings_commands(sub: Any) -> None:
    """`judge`, `code`, `agreement` and `phrases`, on the parser's subcommands `sub`."""
    judge = sub.add_parser(
        "judge", help="code every run, turn or answer with a model, under a scheme",
        description="Code every target of a scheme (each run, turn or panel answer) in a "
                    "transcript or a folder with a model. Labels are appended to the sidecar "
                    "beside each transcript; targets this judge already coded under this "
                    "wording of the scheme are skipped, so running it again carries on.")
    judge.add_argument("path", help="a transcript, or a folder searched for transcripts")
    judge.add_argument("--scheme", required=True, metavar="FILE[:NAME]",
                       help="the scheme file (and the scheme's name when it holds several)")
    judge.add_argument("--judge", required=True, metavar="SPEC",
                       help="the model: local, local:PATH.gguf, scripted[:LABEL], "
                            "openai:MODEL, anthropic:MODEL, or an agent of a pairing or "
                            "panel file as FILE:AGENT")
    judge.add_argument("--blind", action="store_true",
                       help="hide model, agent and provider names from the judge "
                            "(Agent A/B, the model)")
    judge.add_argument("--thinking", action="store_true",
                       help="show the judge the coded models' visible thinking too, marked "
                            "as thinking (default: replies only)")
    judge.add_argument("--attempts", type=_whole(1, 10), default=3, metavar="N",
                       help="requests per target when replies name no label of the scheme "
                            "(default 3); then the target is recorded as unlabelled")
    judge.add_argument("--concurrency", type=_whole(1, 64), metavar="N",
                       help="requests at once (default: 4; 1 for local and scripted judges)")
    judge.add_argument("--requests-per-minute", type=_whole(1, 1_000_000), metavar="N",
                       help="pace requests to the judge's endpoint")
    judge.add_argument("--show-request", nargs="?", const="", metavar="TARGET",
                       help="print the exact first request for one target and exit: "
                            "[RUN:]run, [RUN:]turn:N or [RUN:]answer:AGENT, RUN a run id or "
                            "a transcript's file name (default: the first target)")
    judge.add_argument("--yes", action="store_true", help="start without asking")
    judge.add_argument("--dry-run", action="store_true",
                       help="show the targets and the cost bound, code nothing")
    judge.add_argument("--color", choices=["auto", "always", "never"], default="auto",
                       help="colour in the progress output (default: auto)")
    judge.set_defaults(handler=judging.judge)

    agreement = sub.add_parser("agreement", help="how far coders agree: kappa, alpha and "
                               "confusion matrices from the labels beside transcripts")
    agreement.add_argument("path", help="a transcript, or a folder searched for transcripts")
    agreement.add_argument("--scheme", required=True, metavar="NAME",
                           help="the scheme's name, or its file (FILE or FILE:NAME: only labels "
                                "made under that exact wording count)")
    agreement.add_argument("--format", choices=["table", "json"], default="table")
    agreement.set_defaults(handler=findings.agreement)

    code = sub.add_parser("code", help="code runs, turns or answers by hand in the terminal, "
                          "one target at a time (labels go beside each transcript)")
    code.add_argument("path", help="a transcript, or a folder searched for transcripts")
    code.add_argument("--scheme", required=True, metavar="FILE[:NAME]",
                      help="the scheme file, and which of its schemes when it has several")
    code.add_argument("--coder", metavar="NAME",
                      help="the name your labels are recorded under (default: your login name)")
    code.add_argument("--blind", action="store_true",
                      help="hide agent, model and provider names and shuffle runs and answers "
                           "(the order's seed is recorded with each label, and kept on resume)")
    code.set_defaults(handler=coding.code)

    phrases = sub.add_parser("phrases", help="the most frequent n-grams of the models' replies")
    phrases.add_argument("path", help="a transcript, or a folder searched for transcripts")
    phrases.add_argument("--n", type=_whole(1, MAX_N), default=3, metavar="N",
                         help=f"words per phrase, 1 to {MAX_N} (default 3)")
    phrases.add_argument("--by", choices=["agent", "model"],
                         help="count apart per agent, or per model (provider:model)")
    phrases.add_argument("--top", type=_whole(1, 1_000_000), default=20, metavar="K",
                         help="phrases to list (of each group; default 20)")
    phrases.add_argument("--min-runs", type=_whole(1, 1_000_000_000), default=1, metavar="R",
                         help="only phrases found in at least R runs")
    phrases.add_argument("--thinking", action="store_true",
                         help="count the visible thinking instead of the replies")
    phrases.add_argument("--format", choices=["table", "csv", "json"], default="table")
    phrases.set_defaults(handler=findings.phrases)


def add_stats_options(stats: argparse.ArgumentParser) -> None:
    """End states and label fractions, per model, agent, experiment group or label."""
    stats.add_argument("--by", choices=_GROUPS,
                       help="end states and label fractions per model, agent, experiment "
                            "group, or (end states and turns) per label; with --format csv or "
                            "json, these rows instead of the runs'")
    stats.add_argument("--scheme", metavar="NAME",
                       help="only the labels of this scheme (a name, FILE or FILE:NAME)")
    stats.add_argument("--coder", metavar="NAME",
                       help="only this coder's labels (a person's name, or a judge's spec)")


def _whole(low: int, high: int) -> Any:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a whole number, got {text[:30]!r}") \
                from None
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected a number from {low} to {high}")
        return value

    return parse
