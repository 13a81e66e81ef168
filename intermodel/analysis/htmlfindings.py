"""Findings on the HTML pages: labels beside each turn or answer, a run's end state and labels,
and, on the index, end states and a chart of label fractions per model.

Labels come from the sidecar beside the transcript; a sidecar that does not read is named on the
page, never fatal to the export. Everything a sidecar or a transcript holds is untrusted and
reaches the page only through `esc`; the chart is inline SVG whose only numbers are computed here
(the pages' security policy allows no inline style attributes, so bars are SVG rectangles).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from intermodel.analysis.coders import coder_name
from intermodel.analysis.endstates import EndState, end_state
from intermodel.analysis.findings import EndRow, LabelRow, findings
from intermodel.analysis.htmlpage import esc
from intermodel.analysis.study import read_study
from intermodel.coding.labels import LabelRecord, read_sidecar
from intermodel.errors import TranscriptError
from intermodel.transcript.reader import Transcript

__all__ = ["RunLabels", "index_findings_html", "run_findings_html", "run_labels"]

# Label colours on the chart, in turn.
PALETTE = ("#2563a8", "#c2610c", "#15803d", "#9333ea", "#b91c1c", "#0e7490", "#a16207",
           "#4b5563")


@dataclass
class RunLabels:
    """The labels in force beside one transcript, by what they are about."""

    by_turn: dict[int, list[LabelRecord]] = field(default_factory=dict)
    run: list[LabelRecord] = field(default_factory=list)
    problem: str | None = None  # why the sidecar could not be read


def run_labels(transcript: Transcript) -> RunLabels:
    found = RunLabels()
    try:
        records = read_sidecar(transcript.path, run_id=transcript.run_id).current()
    except TranscriptError as exc:
        found.problem = str(exc)
        return found
    answers = {turn.agent: turn.index for turn in transcript.turns}
    turns = {turn.index for turn in transcript.turns}
    for record in records:
        target = record.target
        if target.scope == "run":
            found.run.append(record)
        elif target.scope == "turn" and target.turn in turns and not transcript.is_panel:
            found.by_turn.setdefault(target.turn, []).append(record)
        elif target.scope == "answer" and transcript.is_panel and target.agent in answers:
            found.by_turn.setdefault(answers[target.agent], []).append(record)
    return found


def labels_html(records: Sequence[LabelRecord]) -> str:
    """A row of small tags, one per coder: `scheme: label · coder` (rationales are in the run's
    findings table)."""
    if not records:
        return ""
    tags = []
    for record in records:
        said = ", ".join(record.labels) if record.labels else "no label"
        kind = "label" if record.labels else "label none"
        tags.append(f'<span class="{kind}">{esc(record.scheme)}: {esc(said)} · '
                    f"{esc(coder_name(record.coder))}</span>")
    return f'<div class="labels">{"".join(tags)}</div>'


def run_findings_html(transcript: Transcript, labels: RunLabels) -> str:
    """The run's summary: its end state with the evidence, and the labels of the run and of its
    turns or answers, one table row per label record in force."""
    out = ["<h2>Findings</h2>"]
    state = end_state(transcript)
    if state is not None:
        out.append(_end_state(state))
    if labels.problem:
        out.append(f'<p class="note warn">⚠ labels not shown: {esc(labels.problem)}</p>')
    rows = [("the run", record) for record in labels.run]
    rows += [(f"turn {index}" if record.target.scope == "turn" else
              f"the answer of {record.target.agent}", record)
             for index in sorted(labels.by_turn) for record in labels.by_turn[index]]
    if rows:
        body = "\n".join(
            f"<tr><td>{esc(target)}</td><td>{esc(r.scheme)}</td>"
            f"<td>{esc(', '.join(r.labels) or '(none)')}</td><td>{esc(coder_name(r.coder))}"
            f"{' (blind)' if r.blind else ''}</td>"
            f'<td class="text">{esc(r.rationale or r.unlabelled or "")}</td></tr>'
            for target, r in rows)
        out.append("<table>\n<thead><tr><th>target</th><th>scheme</th><th>labels</th>"
                   f"<th>coder</th><th>rationale</th></tr></thead>\n<tbody>\n{body}\n</tbody>"
                   "\n</table>")
    elif not labels.problem:
        out.append('<p class="muted">No labels yet.</p>')
    return "\n".join(out)


def _end_state(state: EndState) -> str:
    also = ", ".join(e.state for e in state.also)
    extra = f' <span class="muted">(also: {esc(also)})</span>' if also else ""
    return (f"<p>End state: <span class='end'>{esc(state.state)}</span>{extra}</p>\n"
            f'<p class="text muted">{esc(state.evidence.detail)}</p>')


# -- the index -------------------------------------------------------------------------------------


def index_findings_html(folder: Path) -> str:
    """End states and label fractions of the runs under `folder`, per model."""
    runs, _ = read_study(folder)  # files it cannot read are listed by the index already
    result = findings(runs, by="model")
    out: list[str] = []
    if result.ends:
        out += ["<h2>End states</h2>",
                '<p class="muted">How the conversations of each model (or pair of models) '
                "ended, with 95% Wilson intervals.</p>", _end_table(result.ends)]
    if result.labels:
        out += ["<h2>Labels</h2>",
                '<p class="muted">The share of the targets each coder labelled that got each '
                "label, per model; the line is the 95% Wilson interval.</p>"]
        cells: dict[tuple[str, str], list[LabelRow]] = {}
        for row in result.labels:
            cells.setdefault((row.scheme, row.coder), []).append(row)
        for (scheme, coder), rows in cells.items():
            out += [f"<h3>{esc(scheme)} · {esc(coder)}</h3>", label_chart(rows)]
    return "\n".join(out)


def _end_table(rows: Sequence[EndRow]) -> str:
    body = "\n".join(
        f"<tr><td>{esc(r.group)}</td><td>{esc(r.state)}</td>"
        f'<td class="n">{esc(r.share)}</td><td class="n">{r.turns_mean:.1f}</td>'
        f'<td class="n">{r.before_mean:.1f}</td></tr>' for r in rows)
    return ("<table>\n<thead><tr><th>model</th><th>end state</th><th>runs</th><th>mean turns"
            "</th><th>mean turns before ending</th></tr></thead>\n<tbody>\n"
            f"{body}\n</tbody>\n</table>")


_W, _ROW, _LEFT, _BAR = 760, 18, 300, 340


def label_chart(rows: Sequence[LabelRow]) -> str:
    """One bar per model and label: the fraction, its interval, and k/n."""
    labels = list(dict.fromkeys(r.label for r in rows))
    colour = {label: PALETTE[i % len(PALETTE)] for i, label in enumerate(labels)}
    height = _ROW * len(rows) + 24
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {_W} {height}" '
             f'width="{_W}" height="{height}" role="img" aria-label="label fractions per '
             'model">']
    group = None
    for n, row in enumerate(rows):
        top = 4 + n * _ROW
        name = row.group if row.group != group else ""
        group = row.group
        fraction = row.share.estimate or 0.0
        parts.append(f'<text x="0" y="{top + 12}">{esc(_cut(name, 44))}</text>')
        parts.append(f'<text x="{_LEFT - 6}" y="{top + 12}" text-anchor="end">'
                     f"{esc(_cut(row.label, 20))}</text>")
        parts.append(f'<rect x="{_LEFT}" y="{top + 2}" width="{fraction * _BAR:.1f}" '
                     f'height="{_ROW - 5}" fill="{colour[row.label]}"><title>'
                     f"{esc(row.label)}: {esc(row.share)}</title></rect>")
        low, high = _LEFT + row.share.low * _BAR, _LEFT + row.share.high * _BAR
        middle = top + 2 + (_ROW - 5) / 2
        parts.append(f'<line x1="{low:.1f}" y1="{middle:.1f}" x2="{high:.1f}" '
                     f'y2="{middle:.1f}" stroke="#111827" stroke-width="1.5"/>')
        parts.append(f'<text x="{_LEFT + _BAR + 8}" y="{top + 12}">'
                     f"{row.share.k}/{row.share.n}</text>")
    base = 4 + len(rows) * _ROW + 2
    for tick in (0, 0.5, 1):
        x = _LEFT + tick * _BAR
        parts.append(f'<text x="{x:.1f}" y="{base + 12}" text-anchor="middle">{tick:g}</text>')
    parts.append("</svg>")
    return "\n".join(parts)


def _cut(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit - 1] + "…"
