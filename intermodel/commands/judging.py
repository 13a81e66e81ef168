"""`intermodel judge PATH --scheme FILE[:NAME] --judge SPEC`: code every target with a model.

Plan (targets, what was coded before), cost bound, confirm, code, report; or, with
`--show-request`, print the exact request for one target and exit, as `inspect` does for turns.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING

import anyio

from intermodel.coding.labels import Target
from intermodel.coding.scheme import load_scheme
from intermodel.errors import EXIT_OK, EXIT_RUN_ERROR, EXIT_SIGNAL, UsageError
from intermodel.security.text import safe_line, terminal_safe

if TYPE_CHECKING:
    from intermodel.console.progress import JudgeProgress
    from intermodel.experiment.judges import JudgeModel
    from intermodel.experiment.judging import Job, Judging, JudgingReport

__all__ = ["judge", "parse_target"]


def judge(args: argparse.Namespace) -> int:
    from intermodel.analysis.study import read_study
    from intermodel.commands.findings import skipped_files
    from intermodel.config.credentials import resolve_credentials
    from intermodel.console.progress import JudgeProgress
    from intermodel.console.render import use_color
    from intermodel.experiment.judges import resolve_judge
    from intermodel.experiment.judging import Judging

    scheme = load_scheme(args.scheme)
    judge_model = resolve_judge(args.judge, scheme)
    runs, skipped = read_study(args.path)
    view = JudgeProgress(sys.stdout, color=use_color(sys.stdout, args.color),
                         live=sys.stdout.isatty())
    judging = Judging([(run.transcript, run.labels.current()) for run in runs], scheme,
                      judge_model, blind=args.blind, thinking=args.thinking,
                      attempts=args.attempts, concurrency=_concurrency(args, judge_model),
                      requests_per_minute=args.requests_per_minute, listener=view.on_change)
    view.attach(judging)
    if args.show_request is not None:
        return _show_request(judging, args.show_request, len(runs), skipped)
    if skipped:
        skipped_files(skipped, read=len(runs))
    resolve_credentials(judge_model.run_spec, os.environ)  # a missing key, before anything
    _describe(judging, len(runs))
    if args.dry_run or not judging.jobs:
        return EXIT_OK if runs or not skipped else skipped_files([], read=0)
    if not args.yes and sys.stdin.isatty() and input("start? [y/N] ").strip().lower() not in (
            "y", "yes"):
        print("not started")
        return EXIT_OK
    report = anyio.run(_run, judging, view)
    coded, unlabelled = report.count("coded"), report.count("unlabelled")
    failed, interrupted = report.count("failed"), report.count("interrupted")
    left = report.count("pending") + interrupted
    print(f"\n{coded} coded, {unlabelled} unlabelled of {len(report.jobs)} targets "
          f"({report.skipped} coded before), {failed} failed; labels beside each transcript "
          f"(*.labels.jsonl)")
    for job in report.jobs:
        if job.status == "failed":
            print(safe_line(f"intermodel: {job.name}: {job.detail}"), file=sys.stderr)
    if failed:
        if left:
            print(f"{left} targets not coded: run the same command again to carry on")
        return EXIT_RUN_ERROR
    if left:
        print(f"{left} targets not coded: run the same command again to carry on")
        return EXIT_SIGNAL
    return EXIT_OK


def _concurrency(args: argparse.Namespace, judge_model: JudgeModel) -> int:
    if args.concurrency is not None:
        return int(args.concurrency)
    # One local model answers one request at a time; a server takes several.
    return 1 if judge_model.agent.provider in ("local", "scripted") else 4


def _describe(judging: Judging, runs: int) -> None:
    scheme, agent = judging.scheme, judging.judge.agent
    blind = ", blind" if judging.blind else ""
    print(terminal_safe(f"judge {judging.judge.spec} ({agent.provider}:{agent.model}{blind}) "
                        f"codes {scheme.name} ({scheme.scope}s, {scheme.digest[:19]}…)"))
    print(f"{len(judging.jobs)} targets to code in {runs} runs ({judging.skipped} coded before "
          f"by this judge under this scheme; {judging.total} in all)")
    if judging.runs_without_targets:
        kind = {"turn": "panels have no turns", "answer": "conversations have no answers"}.get(
            scheme.scope, "")
        print(f"{judging.runs_without_targets} runs have no {scheme.scope} to code ({kind})"
              if kind else f"{judging.runs_without_targets} runs have nothing to code")
    print(f"cost: {judging.cost()}")


async def _run(judging: Judging, view: JudgeProgress) -> JudgingReport:
    from intermodel.engine.signals import stop_on_signals

    async with anyio.create_task_group() as tg:
        tg.start_soon(view.tick)
        await tg.start(stop_on_signals, judging.stop, tg.cancel_scope.cancel)
        await judging.run()
        tg.cancel_scope.cancel()
    view.show_status()
    return judging.report()  # also after a second Ctrl-C cut it short


# -- --show-request ------------------------------------------------------------------------------


def parse_target(text: str) -> tuple[str | None, Target | None]:
    """`--show-request` names a target as `[RUN:]WHAT`: WHAT is `run`, `turn:N` (or a bare N)
    or `answer:AGENT` (or a bare AGENT); RUN is a run id or a transcript's file name (needed
    when PATH is a folder of several runs). Empty: the first target."""
    text = text.strip()
    if not text:
        return None, None
    head, colon, rest = text.partition(":")
    if colon and head not in ("turn", "answer", "run"):
        run, what = head, rest
    else:
        run, what = None, text
    kind, colon, value = what.partition(":")
    if not colon:
        kind, value = ("run", "") if what == "run" else (
            ("turn", what) if what.isdigit() else ("answer", what))
    if kind == "run" and not value:
        return run, Target.run()
    if kind == "turn" and value.isdigit() and int(value) >= 1:
        return run, Target.of_turn(int(value))
    if kind == "answer" and value:
        return run, Target.answer(value)
    raise UsageError(f"--show-request {text[:60]!r}: expected [RUN:]run, [RUN:]turn:N or "
                     "[RUN:]answer:AGENT (RUN: a run id or a transcript's file name)")


def _show_request(judging: Judging, given: str, runs: int, skipped: list[str]) -> int:
    run, target = parse_target(given)
    found: list[Job] = []
    for job in judging.every_target():
        path = job.transcript.path
        if run is not None and run not in (job.transcript.run_id, path.name, path.stem,
                                           str(path)):
            continue
        if target is None or job.target == target:
            found.append(job)
    if not found:
        listed = list(dict.fromkeys(_named(job) for job in judging.every_target()))[:5]
        raise UsageError(f"--show-request {given[:60]!r}: no such target in {runs} runs (a "
                         f"{judging.scheme.scope} scheme; targets like: {', '.join(listed)})"
                         if listed else f"--show-request: no {judging.scheme.scope} to code in "
                         f"{runs} runs")
    paths = {job.transcript.path for job in found}
    if target is not None and len(paths) > 1:
        raise UsageError(f"--show-request {given[:60]!r}: {len(paths)} runs have this target; "
                         "name the run as RUN:WHAT (a run id or a transcript's file name)")
    job = found[0]
    request = judging.request(job)
    print(terminal_safe(json.dumps(request.to_json(), indent=2, ensure_ascii=False)))
    print(terminal_safe(f"{job.transcript.path} ({job.transcript.run_id}), {job.target}: "
                        f"{request.digest()} (the first request; a retry adds the reply and a "
                        "correction)"))
    if skipped:
        print(f"intermodel: {len(skipped)} files skipped", file=sys.stderr)
    return EXIT_OK


def _named(job: Job) -> str:
    what = {"run": "run", "turn": f"turn:{job.target.turn}",
            "answer": f"answer:{job.target.agent}"}[job.target.scope]
    return f"{job.transcript.run_id}:{what}"
