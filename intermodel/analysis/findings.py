"""The figures of a paper's results section: how runs ended and how targets were labelled, as
fractions with 95% Wilson intervals, per model, agent, experiment group or label.

    runs, skipped = read_study("experiments/demo")
    table = findings(runs, by="model")
    print(render_findings(table))

End states (`intermodel.analysis.endstates`) are computed for every conversation (panels have
none), with the turns before the ending: the turns before the first turn of the pattern it ended
in, or all its turns when it did not end in a pattern. Label fractions count, for each scheme,
coder and group, the targets given each label among the targets that coder labelled (records
without a label are not in the denominator); with a multiple-choice scheme a target counts
towards each of its labels, so the fractions of a group may add up to more than 1.

Groups:
- `model`: a target's model is its agent's (`provider:model`, as configured); a run's, the models
  of its agents (`a + b`, or one name for a self-dialogue);
- `agent`: the agent whose text was coded; a run's, its agents (`ada + bo`);
- `group`: the experiment cell (`experiment / pairing / opener`), or the pairing's name for a run
  outside an experiment;
- `label`: end states and turns of the runs that carry each label (a run carries a label when it,
  or one of its turns or answers, was given it).
"""

from __future__ import annotations

import statistics
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from intermodel.analysis.coders import coder_name
from intermodel.analysis.endstates import STATES, EndState, end_state
from intermodel.analysis.fitwidth import ColumnFit
from intermodel.analysis.intervals import Proportion, wilson
from intermodel.analysis.study import (
    Coding,
    StudyRun,
    agent_models,
    run_model,
    scheme_codings,
    scheme_names,
)
from intermodel.analysis.textcells import cell, table
from intermodel.coding.labels import Human, Judge
from intermodel.coding.scheme import Scheme

__all__ = ["By", "EndRow", "Findings", "LabelRow", "findings", "render_findings", "rows"]

By = Literal["model", "agent", "group", "label"]


@dataclass(frozen=True)
class EndRow:
    group: str
    state: str
    share: Proportion  # runs of the group that ended so
    turns_mean: float  # turns of those runs
    before_mean: float  # turns before their ending
    before_median: float


@dataclass(frozen=True)
class LabelRow:
    scheme: str
    coder: str
    group: str
    label: str
    share: Proportion  # targets given the label, of those the coder labelled in the group


@dataclass
class Findings:
    by: By
    ends: list[EndRow] = field(default_factory=list)
    labels: list[LabelRow] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def run_group(run: StudyRun) -> str:
    experiment = run.transcript.header.get("experiment")
    if isinstance(experiment, dict):
        return " / ".join(str(experiment.get(key) or "-")
                          for key in ("name", "pairing", "opener"))
    return str(run.transcript.header.get("pairing") or "-")


def coder_matches(coding: Coding, wanted: str | None) -> bool:
    """`--coder`: a person's name, a judge's spec, or the coder as tables show it."""
    if wanted is None:
        return True
    coder = coding.record.coder
    names = {coder_name(coder)}
    names.add(coder.name if isinstance(coder, Human) else coder.spec)
    if isinstance(coder, Judge):
        names.add(f"{coder.spec}:{coder.model}")
    return wanted in names


def findings(runs: Sequence[StudyRun], *, by: By = "model", scheme: str | None = None,
             loaded: Scheme | None = None, coder: str | None = None) -> Findings:
    """End states and label fractions of `runs`, grouped `by`; only the scheme `scheme` (with
    `loaded`, only labels made under its wording) and the coder `coder` when given."""
    result = Findings(by)
    ended = [(run, state) for run in runs if (state := end_state(run.transcript)) is not None]
    codings: list[Coding] = []
    for name in [scheme] if scheme else scheme_names(runs):
        found, aside = scheme_codings(runs, name, scheme=loaded if scheme else None)
        codings += [c for c in found if coder_matches(c, coder)]
        result.notes += [f"{name}: {line}" for line in aside.lines()]
    if by == "label":
        result.ends = _ends_by_label(ended, codings)
        return result
    key = _run_key(by)
    result.ends = _end_rows([(key(run), state) for run, state in ended])
    result.labels = _label_rows(codings, by, loaded if scheme else None)
    return result


def _run_key(by: By) -> Callable[[StudyRun], str]:
    if by == "model":
        return lambda run: run_model(run.transcript)
    if by == "agent":
        return lambda run: " + ".join(agent_models(run.transcript))
    return run_group


def _end_rows(grouped: Iterable[tuple[str, EndState]]) -> list[EndRow]:
    groups: dict[str, list[EndState]] = {}
    for group, state in grouped:
        groups.setdefault(group, []).append(state)
    rows: list[EndRow] = []
    for group in sorted(groups):
        states = groups[group]
        for name in STATES:
            chosen = [s for s in states if s.state == name]
            if not chosen:
                continue
            before = [_before(s) for s in chosen]
            rows.append(EndRow(group, name, wilson(len(chosen), len(states)),
                               statistics.fmean(s.turns for s in chosen),
                               statistics.fmean(before), float(statistics.median(before))))
    return rows


def _before(state: EndState) -> int:
    """Turns of conversation before it ended: before the pattern it ended in, or all of them."""
    return state.since - 1 if state.since is not None else state.turns


def _ends_by_label(ended: Sequence[tuple[StudyRun, EndState]],
                   codings: Sequence[Coding]) -> list[EndRow]:
    carried: dict[str, set[str]] = {}  # "scheme:label (coder)" → run ids
    for coding in codings:
        for label in coding.record.labels:
            key = f"{coding.record.scheme}:{label} ({coder_name(coding.record.coder)})"
            carried.setdefault(key, set()).add(coding.record.run_id)
    return _end_rows((key, state) for key, ids in carried.items()
                     for run, state in ended if run.run_id in ids)


def _label_rows(codings: Sequence[Coding], by: By, loaded: Scheme | None) -> list[LabelRow]:
    cells: dict[tuple[str, str, str], list[Coding]] = {}
    for coding in codings:
        if not coding.record.labels:
            continue  # unlabelled: not among the targets the coder labelled
        group = _target_group(coding, by)
        cells.setdefault((coding.record.scheme, coder_name(coding.record.coder), group),
                         []).append(coding)
    order = _label_order(codings)
    if loaded is not None:
        order[loaded.name] = list(loaded.label_names)
    rows: list[LabelRow] = []
    for (scheme, coder, group), members in sorted(cells.items()):
        for label in order[scheme]:
            k = sum(1 for c in members if label in c.record.labels)
            rows.append(LabelRow(scheme, coder, group, label, wilson(k, len(members))))
    return rows


def _target_group(coding: Coding, by: By) -> str:
    transcript = coding.run.transcript
    if by == "model":
        models = agent_models(transcript)
        return models.get(coding.agent, "?") if coding.agent else run_model(transcript)
    if by == "agent":
        return coding.agent or " + ".join(agent_models(transcript))
    return run_group(coding.run)


def _label_order(codings: Sequence[Coding]) -> dict[str, list[str]]:
    """Each scheme's labels as the data give them, alphabetically (in the scheme's order when its
    file is given): a label nobody gave in a group still gets its 0 there, as long as someone
    gave it somewhere."""
    found: dict[str, set[str]] = {}
    for coding in codings:
        found.setdefault(coding.record.scheme, set()).update(coding.record.labels)
    return {scheme: sorted(labels) for scheme, labels in found.items()}


# -- output ----------------------------------------------------------------------------------------

_NAMES = {"model": "MODEL", "agent": "AGENT", "group": "GROUP", "label": "LABEL"}


def render_findings(result: Findings, fit: ColumnFit | None = None) -> str:
    """Both tables as text; `fit` narrows them to a width (see `render_table`)."""
    head = _NAMES[result.by]
    fit = fit or ColumnFit(None)
    out: list[str] = []
    if result.ends:
        out.append(fit.wrap(f"End states by {result.by} (of conversations; 95% Wilson "
                            "intervals):") + "\n")
        out.append(table([head, "END STATE", "RUNS", "TURNS", "TURNS BEFORE ENDING MEAN/MED"], [
            [cell(r.group, 60), r.state, str(r.share), f"{r.turns_mean:.1f}",
             f"{r.before_mean:.1f}/{r.before_median:g}"] for r in result.ends],
            fit=fit, drop=("TURNS BEFORE ENDING MEAN/MED", "TURNS")))
    if result.labels:
        out.append("\n" + fit.wrap(f"Labels by {result.by} (of the targets each coder "
                                   "labelled; 95% Wilson intervals):") + "\n")
        out.append(table(["SCHEME", "CODER", head, "LABEL", "TARGETS"], [
            [cell(r.scheme), cell(r.coder, 60), cell(r.group, 60), cell(r.label), str(r.share)]
            for r in result.labels], fit=fit, drop=("CODER", "SCHEME")))
    if not out:
        return "no end states or labels to show\n"
    return "".join(out)


def rows(result: Findings) -> list[dict[str, Any]]:
    """Both tables as flat rows for CSV and JSON: `kind` is `end_state` or `label`."""
    def share(p: Proportion) -> dict[str, Any]:
        return {"k": p.k, "n": p.n, "fraction": p.estimate, "low": p.low, "high": p.high}

    out: list[dict[str, Any]] = []
    for end in result.ends:
        out.append({"kind": "end_state", "by": result.by, "group": end.group, "scheme": None,
                    "coder": None, "value": end.state, **share(end.share),
                    "turns_mean": end.turns_mean, "before_mean": end.before_mean,
                    "before_median": end.before_median})
    for row in result.labels:
        out.append({"kind": "label", "by": result.by, "group": row.group, "scheme": row.scheme,
                    "coder": row.coder, "value": row.label, **share(row.share),
                    "turns_mean": None, "before_mean": None, "before_median": None})
    return out
