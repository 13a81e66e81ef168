"""How far the coders of a study agree under one scheme: the report `intermodel agreement` prints.

The units are the targets (a run, a turn, an answer) of every run read; each coder's value for a
unit is the label of their record in force, or, for a multiple-choice scheme, the set of labels
(compared as a whole; each label is also compared on its own, as "chosen or not"). A record that
says no label was given (`unlabelled`) is a missing value, like a target the coder never saw, and
is counted apart. Coders are people by name and judges by spec and model, shown as
`judge SPEC (MODEL)`.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass, field
from typing import Any

from intermodel.analysis.agreement import (
    Coefficient,
    Confusion,
    coders_of,
    krippendorff_alpha,
    pairwise,
    presence,
)
from intermodel.analysis.study import StudyRun, hashes, scheme_codings, scheme_names
from intermodel.analysis.textcells import cell, table
from intermodel.coding.labels import Coder, Human, LabelRecord
from intermodel.coding.scheme import Scheme
from intermodel.errors import UsageError

__all__ = ["AgreementReport", "agreement_report", "coder_name", "render_agreement"]


def coder_name(coder: Coder) -> str:
    """A coder as tables show it: a person's name, or `judge SPEC (MODEL)`."""
    return coder.name if isinstance(coder, Human) else f"judge {coder.spec} ({coder.model})"


@dataclass
class AgreementReport:
    scheme: str
    scope: str
    choice: str
    categories: list[str]
    coders: list[str]
    coded: dict[str, int]  # coder → targets they labelled
    unlabelled: dict[str, int]  # coder → targets they left without a label
    units: int  # targets labelled by anyone
    alpha: Coefficient
    confusions: list[Confusion]
    per_label: list[tuple[str, Coefficient]] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)

    def to_json(self) -> dict[str, Any]:
        def coefficient(c: Coefficient) -> dict[str, Any]:
            return {"value": c.value, "observed": c.observed, "expected": c.expected,
                    "units": c.units, "values": c.values, "reason": c.reason or None}

        return {
            "scheme": self.scheme, "scope": self.scope, "choice": self.choice,
            "labels": self.categories, "units": self.units,
            "coders": [{"coder": c, "coded": self.coded.get(c, 0),
                        "unlabelled": self.unlabelled.get(c, 0)} for c in self.coders],
            "alpha": coefficient(self.alpha),
            "pairs": [{"first": m.first, "second": m.second,
                       "kappa": coefficient(m.kappa()), "labels": list(map(str, m.categories)),
                       "confusion": [list(row) for row in m.counts]} for m in self.confusions],
            "per_label": [{"label": label, "alpha": coefficient(c)}
                          for label, c in self.per_label],
            "notes": self.notes,
        }


def agreement_report(runs: Sequence[StudyRun], name: str, scheme: Scheme | None
                     ) -> AgreementReport:
    """Agreement under the scheme `name` (`scheme`: the scheme itself, when a file was given)."""
    codings, aside = scheme_codings(runs, name, scheme=scheme)
    notes = aside.lines()
    if not codings:
        found = ", ".join(scheme_names(runs)) or "none"
        raise UsageError(f"no labels under the scheme {name!r} in {len(runs)} run"
                         f"{'s' if len(runs) != 1 else ''} (schemes labelled there: {found})")
    if scheme is None:
        wordings = hashes(runs, name)
        if len(wordings) > 1:
            counted = ", ".join(f"{digest[:15]}… {count}" for digest, count in
                                wordings.most_common())
            notes.append(f"the labels under {name} were made under {len(wordings)} wordings "
                         f"of it ({counted}); they are compared together: give --scheme "
                         "FILE:NAME to compare only the labels of one wording")
    multiple = (scheme.choice == "multiple" if scheme is not None
                else any(len(c.record.labels) > 1 for c in codings))
    order = list(scheme.label_names) if scheme is not None else sorted(
        {label for c in codings for label in c.record.labels})
    rank = {label: i for i, label in enumerate(order)}
    values: dict[Hashable, dict[str, str | None]] = {}
    sets: dict[Hashable, dict[str, tuple[str, ...] | None]] = {}
    unlabelled: Counter[str] = Counter()
    for coding in codings:
        coder = coder_name(coding.record.coder)
        labels = _ordered(coding.record, rank)
        if not labels:
            unlabelled[coder] += 1
        values.setdefault(coding.unit, {})[coder] = "+".join(labels) if labels else None
        sets.setdefault(coding.unit, {})[coder] = labels or None
    coders = sorted({coder_name(c.record.coder) for c in codings})
    coded = Counter(coder for unit in values.values() for coder, v in unit.items()
                    if v is not None)
    categories = order if not multiple else sorted(
        {v for unit in values.values() for v in unit.values() if v is not None},
        key=lambda v: [rank.get(label, len(rank)) for label in v.split("+")])
    per_label = ([(label, krippendorff_alpha(presence(sets, label))) for label in order]
                 if multiple else [])
    return AgreementReport(
        scheme=name,
        scope=scheme.scope if scheme is not None else codings[0].record.target.scope,
        choice="multiple" if multiple else "single",
        categories=list(categories),
        coders=coders,
        coded=dict(coded),
        unlabelled=dict(unlabelled),
        units=sum(1 for unit in values.values() if any(v is not None for v in unit.values())),
        alpha=krippendorff_alpha(values),
        confusions=pairwise(values, [c for c in coders if c in coders_of(values)], categories),
        per_label=per_label,
        notes=notes,
    )


def _ordered(record: LabelRecord, rank: dict[str, int]) -> tuple[str, ...]:
    return tuple(sorted(record.labels, key=lambda label: (rank.get(label, len(rank)), label)))


def _figure(c: Coefficient) -> str:
    if c.value is None:
        return f"—  ({c.reason})"
    assert c.observed is not None and c.expected is not None
    return (f"{c.value:.3f}  (observed {c.observed:.3f}, expected by chance {c.expected:.3f}; "
            f"{c.units} units, {c.values} values)")


def render_agreement(report: AgreementReport) -> str:
    out = [f"scheme {cell(report.scheme)} ({report.scope}, {report.choice} choice): "
           f"{report.units} targets labelled by {len(report.coders)} coder"
           f"{'s' if len(report.coders) != 1 else ''}\n",
           table(["CODER", "LABELLED", "UNLABELLED"],
                 [[cell(c, 60), str(report.coded.get(c, 0)), str(report.unlabelled.get(c, 0))]
                  for c in report.coders], indent="  "),
           "\nKrippendorff's alpha (nominal), all coders: " + _figure(report.alpha) + "\n"]
    if report.per_label:
        out.append("  each label on its own (chosen or not):\n")
        out.append(table(["LABEL", "ALPHA"], [[cell(label), _figure(c)]
                                              for label, c in report.per_label], indent="    "))
    if report.confusions:
        out.append("\nCohen's kappa, each pair of coders:\n")
        out.append(table(["PAIR", "KAPPA"], [
            [cell(f"{m.first} × {m.second}", 80), _figure(m.kappa())]
            for m in report.confusions], indent="  "))
    for matrix in report.confusions:
        out.append(f"\n{cell(matrix.first, 60)} (rows) × {cell(matrix.second, 60)} (columns): "
                   f"{matrix.units} targets, {matrix.agreed} agree\n")
        labels = [cell(str(c)) for c in matrix.categories]
        rows = [[labels[i], *map(str, row)] for i, row in enumerate(matrix.counts)]
        out.append(table(["", *labels], rows, indent="  "))
    return "".join(out)
