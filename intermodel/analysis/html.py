"""A transcript as one self-contained HTML page, and an index page for a folder of runs.

A run's page shows who talked (models as configured and as the servers reported them), the role
prompts and the opener, then the conversation with the agent who spoke first on the left and the
other on the right, one turn under the other, so the exchange reads top to bottom. A panel's page
shows its message, then the answers side by side, one column per agent in the panel file's order
(in a grid when there are more than two), whatever order they completed in. Thinking is
folded in `<details>`; interjections stand where the agents saw them (just before the turn they
were aimed at); retries, discarded turns, trims, flags, notes and resumes are small notes in
between. A chart of reply length per turn and the per-agent figures of `run_stats` follow.

Pages work offline and from file://: inline CSS, inline SVG, no external resource, and (on the
index) one small inline sorting script. All transcript content is untrusted: see `htmlpage`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote

from intermodel.analysis.groups import group_summary
from intermodel.analysis.htmlcells import models_cell, outcome_cell
from intermodel.analysis.htmlfindings import (
    index_findings_html,
    labels_html,
    run_findings_html,
    run_labels,
)
from intermodel.analysis.htmlpage import chart_svg, esc, page
from intermodel.analysis.report import money
from intermodel.analysis.stats import AgentStats, RunStats, collect, run_stats
from intermodel.coding.labels import sidecar_path
from intermodel.errors import TranscriptError
from intermodel.records import (
    Branch,
    BudgetChange,
    Discard,
    Flag,
    Interjection,
    Note,
    Record,
    Resumption,
    Retry,
    RunEnd,
    Trim,
    Turn,
)
from intermodel.security.files import write_private
from intermodel.transcript.reader import Transcript, read_transcript

__all__ = ["index_html", "run_html", "write_html", "write_index"]


def run_html(transcript: Transcript) -> str:
    stats = run_stats(transcript)
    config = _mapping(transcript.header.get("config"))
    sides = _sides(config, stats)
    labels = run_labels(transcript)
    marks = {index: labels_html(records) for index, records in labels.by_turn.items()}
    if transcript.is_panel:
        return _panel_html(transcript, config, stats, sides, marks)
    body = [
        _run_header(transcript, stats),
        run_findings_html(transcript, labels),
        _prompts(transcript, config, sides),
        '<h2>Conversation</h2>\n<div class="conversation">',
        *_conversation(transcript, sides, stats.inherited_turns, marks),
        "</div>",
        "<h2>Reply length</h2>",
        chart_svg(transcript.turns, sides),
        "<h2>Figures</h2>",
        _figures(stats.agents),
    ]
    return page(f"{stats.pairing} · {stats.run_id}", "\n".join(body))


def _panel_html(transcript: Transcript, config: Mapping[str, Any], stats: RunStats,
                sides: Mapping[str, str], marks: Mapping[int, str]) -> str:
    body = [
        _run_header(transcript, stats),
        run_findings_html(transcript, run_labels(transcript)),
        _panel_prompts(transcript, config, list(sides)),
        _panel_answers(transcript, list(sides), marks),
        "<h2>Figures</h2>",
        _figures(stats.agents, noun="answers"),
    ]
    return page(f"{stats.pairing} · {stats.run_id}", "\n".join(body))


def index_html(runs: Sequence[RunStats], folder: Path, skipped: Sequence[str] = (),
               findings: str = "") -> str:
    """The index of a folder of runs; each run links to the `.html` beside its transcript.
    `findings` is the safe HTML of its end states and labels (`htmlfindings`)."""
    body = [f"<h1>Runs in {esc(folder.name or folder)}</h1>",
            f'<p class="muted">{len(runs)} runs · click a column to sort</p>',
            _runs_table(runs, folder)]
    if findings:
        body.append(findings)
    body.append(_panels_section(runs, folder))
    groups = group_summary(runs)
    if groups:
        body += ["<h2>Experiment groups</h2>",
                 '<p class="muted">End reasons and flags as fractions of each group\'s runs.</p>',
                 _groups_table(groups)]
    if skipped:
        body += ["<h2>Files skipped</h2>", "<ul>",
                 *(f'<li class="text">{esc(line)}</li>' for line in skipped), "</ul>"]
    return page(f"Runs in {folder.name or folder}", "\n".join(body), script=True)


def write_html(path: Path, out: Path | None = None) -> Path:
    """Render the transcript `path` to `out` (by default beside it, ending in `.html`)."""
    target = out or path.with_suffix(".html")
    write_private(target, run_html(read_transcript(path)))
    return target


def write_index(folder: Path) -> tuple[Path, int, list[str]]:
    """Write `index.html` in `folder`, and a page beside every transcript under it whose page is
    missing or older than the transcript. Returns the index, how many runs it lists, and the
    files set aside (each with why)."""
    runs, skipped = collect(folder)
    for run in runs:
        target = run.path.with_suffix(".html")
        # Labels added since the page was written are on the page too: it is made again.
        sources = [run.path, sidecar_path(run.path)]
        newest = max(p.stat().st_mtime for p in sources if p.exists())
        if target.exists() and target.stat().st_mtime >= newest:
            continue
        try:
            write_html(run.path, target)
        except TranscriptError as exc:
            skipped.append(str(exc))
    index = folder / "index.html"
    write_private(index, index_html(runs, folder, skipped, index_findings_html(folder)))
    return index, len(runs), skipped


# ---- the run page ------------------------------------------------------------------------------

def _sides(config: Mapping[str, Any], stats: RunStats) -> dict[str, str]:
    """Agent → "a" (left, spoke first) or "b"; an agent beyond two (a damaged file) goes right.
    A panel's agents keep the file's order, their colours alternating."""
    names = [a.agent for a in stats.agents]
    if stats.is_panel:
        return {name: "ab"[i % 2] for i, name in enumerate(names)}
    first = _mapping(config.get("dialogue")).get("first")
    if first in names:
        names.remove(first)
        names.insert(0, first)
    return {name: "a" if i == 0 else "b" for i, name in enumerate(names)}


def _run_header(transcript: Transcript, stats: RunStats) -> str:
    head = transcript.header
    end = transcript.end if stats.finished else None
    facts = [("run", stats.run_id), ("started", stats.started_at),
             ("ended", end.at if end else "not finished"),
             ("answers" if stats.is_panel else "turns",
              f"{stats.turns} of {stats.max_turns}" if stats.max_turns else stats.turns),
             ("duration", f"{stats.duration:.1f} s" if stats.duration is not None else "—"),
             ("end", _end_text(stats)), ("cost", _money(stats.cost)),
             ("source", head.get("source", "")),
             ("intermodel", _mapping(head.get("versions")).get("intermodel", "?"))]
    if stats.experiment:
        facts.append(("experiment", _pairs(stats.experiment)))
    if stats.parent:
        # The parent's entry also holds its whole config: name the run, not its settings.
        parent = {k: stats.parent.get(k) for k in ("run_id", "transcript", "after_turn")}
        facts.append(("branched from", _pairs(parent)))
    rows = "\n".join(f"<tr><th>{esc(k)}</th><td class=\"text\">{esc(v)}</td></tr>"
                     for k, v in facts)
    models = "\n".join(
        f"<tr><td class=\"who\">{esc(a.agent)}</td><td>{esc(a.provider)}</td>"
        f"<td>{esc(a.model)}</td><td>{esc(', '.join(a.served_models) or '—')}</td></tr>"
        for a in stats.agents)
    description = _mapping(transcript.header.get("config")).get("description")
    return (f"<h1>{esc(stats.pairing)}</h1>\n"
            + (f'<p class="text">{esc(description)}</p>\n' if description else "")
            + f"<table>\n{rows}\n</table>\n<h2>Models</h2>\n<table>\n<thead><tr><th>agent</th>"
            "<th>provider</th><th>model (configured)</th><th>model (as reported)</th></tr>"
            f"</thead>\n<tbody>\n{models}\n</tbody>\n</table>")


def _end_text(stats: RunStats) -> str:
    if not stats.finished:
        return "not finished (crashed, or still running)"
    by = f" by {stats.ended_by}" if stats.ended_by else ""
    detail = f" — {stats.end_detail}" if stats.end_detail else ""
    return f"{stats.end_reason}{by}{detail}"


def _prompts(transcript: Transcript, config: Mapping[str, Any], sides: Mapping[str, str]) -> str:
    dialogue = _mapping(config.get("dialogue"))
    prompts = _role_prompts(transcript, config, list(sides))
    cells = [f'<div><h3 class="who">{esc(name)}</h3><div class="text">'
             f"{esc(prompts[name]) or '<em>(none)</em>'}</div></div>" for name in sides]
    to = "both agents" if dialogue.get("opener_shared") else dialogue.get("opener_to", "?")
    return ("<h2>Role prompts</h2>\n<div class=\"columns\">\n" + "\n".join(cells) + "\n</div>\n"
            f"<h2>Opener <span class=\"muted\">to {esc(to)}</span></h2>\n"
            f"<div class=\"text\">{esc(dialogue.get('opener', ''))}</div>")


def _role_prompts(transcript: Transcript, config: Mapping[str, Any], names: Sequence[str]
                  ) -> dict[str, str]:
    """The role prompts the agents were given, placeholders filled; the raw templates if the
    stored config no longer loads."""
    try:
        pairing = transcript.pairing()
        return {name: pairing.system_prompt(name) for name in names}
    except (TranscriptError, KeyError):
        agents = _mapping(config.get("agents"))
        return {name: str(_mapping(agents.get(name)).get("prompt", "")) for name in names}


def _panel_prompts(transcript: Transcript, config: Mapping[str, Any], names: Sequence[str]
                   ) -> str:
    prompts = _role_prompts(transcript, config, names)
    cells = [f'<div><h3 class="who">{esc(name)}</h3><div class="text">'
             f"{esc(prompts[name]) or '<em>(none)</em>'}</div></div>" for name in names]
    message = transcript.prompt
    shown = f'<div class="text">{esc(message)}</div>' if message is not None else \
        '<div class="empty">(not recorded)</div>'
    return (f'<h2>Role prompts</h2>\n<div class="{_grid(names)}">\n' + "\n".join(cells)
            + '\n</div>\n<h2>Message <span class="muted">to every agent</span></h2>\n' + shown)


def _grid(names: Sequence[str]) -> str:
    """Side by side for two agents; a grid that wraps for more."""
    return "columns" if len(names) <= 2 else "grid"


def _panel_answers(transcript: Transcript, names: Sequence[str], marks: Mapping[int, str]
                   ) -> str:
    """One column per agent, in the panel file's order (answers are recorded as they complete);
    each agent's retries and discarded attempts under its answer, the rest after them."""
    sides = {name: "ab"[i % 2] for i, name in enumerate(names)}
    columns: dict[str, list[str]] = {name: [] for name in names}
    answered: set[str] = set()
    after: list[str] = []
    for record in transcript.records:
        match record:
            case Turn(agent=agent) if agent in columns:
                columns[agent].insert(0, _turn(record, sides[agent], marks.get(record.index, ""),
                                               noun="answer"))
                answered.add(agent)
            case Retry(agent=agent) | Discard(agent=agent) if agent in columns:
                columns[agent].append(_record(record, sides, marks))
            case RunEnd():
                after.append(f'<p class="note end">{esc(_note(record, noun="answers"))}</p>')
            case _:
                after.append(_record(record, sides, marks))
    for name in names:
        if name not in answered:
            columns[name].insert(0, f'<article class="turn {sides[name]}"><header><span '
                                 f'class="who">{esc(name)}</span></header><div class="empty">'
                                 "(no answer)</div></article>")
    cells = [f'<div class="answer">{"".join(parts)}</div>' for parts in columns.values()]
    out = [f'<h2>Answers</h2>\n<div class="{_grid(names)} answers">', *cells, "</div>", *after]
    if transcript.torn is not None:
        out.append(f'<p class="note warn">⚠ the file ends with an incomplete record '
                   f"({transcript.torn_bytes} bytes): the process died while writing it</p>")
    if not _finished(transcript):
        out.append('<p class="note warn">⚠ no final record: the run crashed or is still '
                   "running</p>")
    return "\n".join(out)


def _conversation(transcript: Transcript, sides: Mapping[str, str], inherited: int,
                  marks: Mapping[int, str] | None = None) -> list[str]:
    out: list[str] = []
    if inherited:
        parent = _mapping(transcript.header.get("parent")).get("run_id", "?")
        out.append(f'<p class="note">⑂ a branch of run {esc(parent)}: its first {inherited} '
                   "turns are the parent's, made under the parent's settings</p>")
    waiting: list[Interjection] = []
    for record in transcript.records:
        match record:
            case Interjection():
                waiting.append(record)  # shown where the agents saw it: just before its turn
                continue
            case Turn(index=index):
                out += [_interjection(i) for i in waiting if i.before_turn <= index]
                waiting = [i for i in waiting if i.before_turn > index]
        out.append(_record(record, sides, marks or {}))
    out += [_interjection(i) for i in waiting]
    if transcript.torn is not None:
        out.append(f'<p class="note warn">⚠ the file ends with an incomplete record '
                   f"({transcript.torn_bytes} bytes): the process died while writing it</p>")
    if not _finished(transcript):
        out.append('<p class="note warn">⚠ no final record: the run crashed or is still '
                   "running</p>")
    return out


def _finished(transcript: Transcript) -> bool:
    last = [r for r in transcript.records if isinstance(r, RunEnd | Resumption)]
    return bool(last) and isinstance(last[-1], RunEnd)


def _record(record: Record, sides: Mapping[str, str], marks: Mapping[int, str]) -> str:
    match record:
        case Turn():
            return _turn(record, sides.get(record.agent, "b"), marks.get(record.index, ""))
        case Discard():
            partial = record.text or record.thinking
            inner = f'<div class="text">{esc(partial)}</div>' if partial else ""
            line = (f"✗ turn {record.turn} ({record.agent}) discarded: {record.reason} · "
                    f"{len(record.text)} characters had arrived")
            return f'<details class="note"><summary>{esc(line)}</summary>{inner}</details>'
        case _:
            return f'<p class="{_note_class(record)}">{esc(_note(record))}</p>'


def _note_class(record: Record) -> str:
    match record:
        case RunEnd():
            return "note end"
        case Flag(action=action) if action != "mark":
            return "note warn"
        case _:
            return "note"


def _note(record: Record, *, noun: str = "turns") -> str:
    """The one-line text of every record that is not a turn or an interjection."""
    match record:
        case Retry():
            status = f" {record.status}" if record.status else ""
            return (f"↻ turn {record.turn} ({record.agent}) attempt {record.attempt} failed: "
                    f"{record.error}{status} — {record.message}; "
                    f"retried after {record.wait:.1f} s")
        case Trim():
            return (f"✂ {record.agent}'s view from turn {record.turn}: turns up to "
                    f"{record.dropped_through} dropped ({record.estimated_tokens} tokens "
                    f"estimated, window {record.window}, {record.cause})")
        case Flag():
            return f"⚑ {record.detector} ({record.action}): {record.detail}"
        case Note():
            return f"ℹ {record.message}"
        case BudgetChange():
            return f"+ turn budget now {record.max_turns}"
        case Resumption():
            torn = f"; an incomplete record ({record.torn_bytes} bytes) was cut off" \
                if record.torn_bytes else ""
            return (f"⟳ resumed after turn {record.after_turn} at {record.at}, budget "
                    f"{record.max_turns}{torn}")
        case Branch():
            return (f"⑂ branched after turn {record.after_turn} into run {record.run_id} "
                    f"({record.transcript})")
        case RunEnd():
            by = f" by {record.ended_by}" if record.ended_by else ""
            detail = f" — {record.detail}" if record.detail else ""
            return (f"■ ended: {record.reason}{by}{detail} · {record.turns} {noun} in "
                    f"{record.duration:.1f} s")
        case _:
            return ""


def _turn(turn: Turn, side: str, labels: str = "", *, noun: str = "turn") -> str:
    """A turn (or a panel's answer: `noun`); `labels` is the safe HTML of the labels coders gave
    it."""
    facts = [turn.model, f"{turn.usage.output_tokens} tokens"
             if turn.usage.output_tokens is not None else "", f"{turn.latency:.2f} s",
             f"first token {turn.ttft:.2f} s" if turn.ttft is not None else "",
             turn.stop_reason, f"{turn.attempts} attempts" if turn.attempts > 1 else ""]
    thinking = (f'<details class="thinking"><summary>thinking · {len(turn.thinking)} '
                f'characters</summary><div class="text">{esc(turn.thinking)}</div></details>'
                if turn.thinking else "")
    text = (f'<div class="text">{esc(turn.text)}</div>' if turn.text.strip()
            else '<div class="empty">(empty reply)</div>')
    # Even numbers are escaped: the reader does not check a record's types.
    return (f'<article class="turn {side}" id="t{esc(turn.index)}"><header>'
            f'<span class="who">{esc(turn.agent)}</span> · {noun} {esc(turn.index)} '
            f'<span class="facts">{esc(" · ".join(f for f in facts if f))}</span></header>'
            f"{thinking}{text}{labels}</article>")


def _interjection(record: Interjection) -> str:
    return (f'<div class="interjection"><span class="who">✎ Human → '
            f"{esc(' and '.join(record.to))}</span> <span class=\"facts\">before turn "
            f'{esc(record.before_turn)}</span><div class="text">{esc(record.text)}</div></div>')


def _figures(agents: Sequence[AgentStats], *, noun: str = "turns") -> str:
    def pair(a: float | None, b: float | None, unit: str = "") -> str:
        return f"{_num(a)} / {_num(b)}{unit}"

    lines: list[tuple[str, list[str]]] = [
        (noun, [str(a.turns) for a in agents]),
        ("tokens in / out", [f"{_num(a.input_tokens)} / {_num(a.output_tokens)}"
                             for a in agents]),
        ("reply characters mean / median", [pair(a.reply_chars_mean, a.reply_chars_median)
                                            for a in agents]),
        ("reply words mean", [_num(a.reply_words_mean) for a in agents]),
        ("latency mean / median", [pair(a.latency_mean, a.latency_median, " s")
                                   for a in agents]),
        ("first token mean / median", [pair(a.ttft_mean, a.ttft_median, " s") for a in agents]),
        ("thinking characters", [str(a.thinking_chars) for a in agents]),
        ("retries", [str(a.retries) for a in agents]),
        ("stop reasons", [", ".join(f"{k} {v}" for k, v in a.stop_reasons.items()) or "—"
                          for a in agents]),
        ("cost", [_money(a.cost) for a in agents]),
    ]
    head = "".join(f'<th class="who">{esc(a.agent)}</th>' for a in agents)
    body = "\n".join(f"<tr><th>{esc(label)}</th>" + "".join(f'<td class="n">{esc(v)}</td>'
                                                            for v in values) + "</tr>"
                     for label, values in lines)
    return f"<table>\n<thead><tr><th></th>{head}</tr></thead>\n<tbody>\n{body}\n</tbody>\n</table>"


# ---- the index page ----------------------------------------------------------------------------

_RUN_COLUMNS = ("run", "started", "pairing", "opener", "replicate", "models", "turns",
                "duration", "outcome", "flags", "retries", "cost")


def _runs_table(runs: Sequence[RunStats], folder: Path) -> str:
    head = "".join(f"<th>{c}</th>" for c in _RUN_COLUMNS)
    ordered = sorted(runs, key=lambda run: (run.started_at, str(run.path)))
    body = "\n".join(_run_row(run, folder) for run in ordered)
    return (f'<table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody>\n</table>")


def _run_row(run: RunStats, folder: Path) -> str:
    experiment = run.experiment or {}
    flags = ", ".join(f"{d} {n}" for d, n in run.flags.items())
    cells = [
        f'<td><a href="{esc(_link(run.path, folder))}">{esc(run.run_id)}</a></td>',
        _td(run.started_at), _td(run.pairing_label), _td(run.opener or ""),
        _td(experiment.get("replicate", ""), numeric=True), models_cell(run),
        _td(run.turns, numeric=True),
        _td(_num(run.duration, " s"), sort=run.duration, numeric=True), outcome_cell(run),
        _td(flags), _td(run.retries, numeric=True),
        _td(_money(run.cost), sort=run.cost, numeric=True),
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _panels_section(runs: Sequence[RunStats], folder: Path) -> str:
    """The panels among `runs`, each with its message (cut short; the run's page has it
    whole); nothing when there are none."""
    panels = sorted((run for run in runs if run.is_panel),
                    key=lambda run: (run.started_at, str(run.path)))
    if not panels:
        return ""
    head = "".join(f"<th>{c}</th>" for c in ("run", "started", "panel", "opener", "replicate",
                                              "answers", "message"))
    rows = "\n".join(_panel_row(run, folder) for run in panels)
    return (f"<h2>Panels</h2>\n<p class=\"muted\">{len(panels)} panels: one message to several "
            "agents, each answering once</p>\n<table class=\"sortable\">\n<thead><tr>"
            f"{head}</tr></thead>\n<tbody>\n{rows}\n</tbody>\n</table>")


_PROMPT_SHOWN = 160  # characters of a panel's message on the index


def _panel_row(run: RunStats, folder: Path) -> str:
    experiment = run.experiment or {}
    prompt = run.prompt if run.prompt is not None else "(not recorded)"
    if len(prompt) > _PROMPT_SHOWN:
        prompt = prompt[:_PROMPT_SHOWN - 1] + "…"
    answers = f"{run.turns} of {run.max_turns}" if run.max_turns else str(run.turns)
    cells = [
        f'<td><a href="{esc(_link(run.path, folder))}">{esc(run.run_id)}</a></td>',
        _td(run.started_at), _td(run.pairing_label), _td(run.opener or ""),
        _td(experiment.get("replicate", ""), numeric=True), _td(answers, sort=run.turns,
                                                                numeric=True),
        f'<td class="text">{esc(prompt)}</td>',
    ]
    return "<tr>" + "".join(cells) + "</tr>"


def _link(path: Path, folder: Path) -> str:
    """The run page's address relative to the index, percent-encoded: no character of a file
    name can turn it into a scheme (`javascript:`) or break out of the attribute."""
    page_path = path.with_suffix(".html")
    try:
        relative = page_path.relative_to(folder)
    except ValueError:
        relative = Path(page_path.name)
    return quote(relative.as_posix())


def _groups_table(groups: Sequence[Mapping[str, Any]]) -> str:
    def shares(values: Mapping[str, float]) -> str:
        return ", ".join(f"{k} {v:.0%}" for k, v in values.items()) or "—"

    head = "".join(f"<th>{c}</th>" for c in ("experiment", "pairing", "opener", "runs",
                                              "finished", "mean turns", "ends", "ended by",
                                              "flags"))
    body = "\n".join(
        "<tr>" + "".join([_td(g["experiment"]), _td(g["pairing"]), _td(g["opener"]),
                          _td(g["runs"], numeric=True), _td(g["finished"], numeric=True),
                          _td(f"{g['turns_mean']:.1f}", numeric=True), _td(shares(
                              g["end_reasons"])), _td(shares(g["ended_by"])),
                          _td(shares(g["flags"]))]) + "</tr>" for g in groups)
    return (f'<table class="sortable">\n<thead><tr>{head}</tr></thead>\n<tbody>\n{body}\n'
            "</tbody>\n</table>")


_SAME = object()


def _td(value: object, *, sort: object = _SAME, numeric: bool = False) -> str:
    """A cell; a numeric one carries the value it sorts by ("" when there is none)."""
    if not numeric:
        return f"<td>{esc(value)}</td>"
    key = value if sort is _SAME else "" if sort is None else sort
    return f'<td class="n" data-v="{esc(key)}">{esc(value)}</td>'


# ---- small helpers -----------------------------------------------------------------------------

def _pairs(values: Mapping[str, Any]) -> str:
    return ", ".join(f"{k} {'—' if v is None else v}" for k, v in values.items())


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _num(value: float | None, unit: str = "") -> str:
    if value is None:
        return "—"
    return f"{value}{unit}" if isinstance(value, int) else f"{value:.2f}{unit}"


def _money(value: float | None) -> str:
    return money(value, missing="—")
