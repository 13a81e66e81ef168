"""End states as fractions per group of an experiment's runs.

Batches repeat one (pairing, opener) entry many times; what matters is how often each ending
happens — a budget reached, a stop phrase, a repetition loop — not any single run. Runs without an
`experiment` header belong to no group. Fractions are over all runs of the group, so an unfinished
run counts under the end reason `unfinished` and the end reasons of a group add up to 1.
"""

from __future__ import annotations

import statistics
from collections import Counter
from collections.abc import Iterable, Sequence
from typing import Any

from intermodel.analysis.stats import RunStats

__all__ = ["UNFINISHED", "group_summary"]

UNFINISHED = "unfinished"


def group_summary(runs: Sequence[RunStats]) -> list[dict[str, Any]]:
    """One dict per (experiment, pairing, opener) group, in order of first appearance:
    `experiment`, `pairing`, `opener` (the labels), `runs`, `finished`, `turns_mean`,
    `end_reasons` (reason → fraction of runs), `ended_by` (agent → fraction of runs it ended),
    `flags` (detector → fraction of runs with at least one of its flags)."""
    groups: dict[tuple[str, str, str], list[RunStats]] = {}
    for run in runs:
        if run.experiment is None:
            continue
        key = (str(run.experiment.get("name") or ""), run.pairing_label, run.opener or "")
        groups.setdefault(key, []).append(run)
    return [_summary(key, members) for key, members in groups.items()]


def _summary(key: tuple[str, str, str], runs: list[RunStats]) -> dict[str, Any]:
    experiment, pairing, opener = key
    total = len(runs)
    return {
        "experiment": experiment,
        "pairing": pairing,
        "opener": opener,
        "runs": total,
        "finished": sum(1 for r in runs if r.finished),
        "turns_mean": statistics.fmean(r.turns for r in runs),
        "end_reasons": _fractions((r.end_reason or UNFINISHED for r in runs), total),
        "ended_by": _fractions((r.ended_by for r in runs if r.ended_by), total),
        "flags": _fractions((d for r in runs for d, n in r.flags.items() if n), total),
    }


def _fractions(values: Iterable[str], total: int) -> dict[str, float]:
    """Each value's share of `total`, most frequent first (ties by name, for a stable order)."""
    counts = Counter(values)
    ordered = sorted(counts.items(), key=lambda item: (-item[1], item[0]))
    return {value: count / total for value, count in ordered}
