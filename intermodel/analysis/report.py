"""Run stats as rows (CSV, JSON — for pandas) and as a plain-text table for the terminal.

`rows` gives one flat dict per run and agent, so `pandas.DataFrame(rows(runs))` (or
`pandas.read_csv` / `pandas.read_json` of `to_csv` / `to_json`) is ready to group by model, pairing
or opener. Column names are stable; empty cells are None (CSV: empty; JSON: null).

Run columns, repeated on each of the run's rows:
  path, run_id, pairing (the pairing's name), started_at, experiment (its name), entry,
  experiment_pairing, opener, replicate, seed (the experiment header; empty outside a batch),
  parent_run_id, parent_after_turn (a branch's origin), run_turns, inherited_turns (a branch's
  turns from its parent; the agent columns count only the run's own turns), max_turns,
  duration (seconds), finished, end_reason, ended_by, end_detail, flags_repetition, flags_empty,
  flags_goodbye, flags_self_repetition, flags_emoji_collapse (and flags_<detector> for any other
  detector that raised a flag), run_retries,
  discards, trims, interjections, resumes, torn, run_cost (US dollars).
Agent columns:
  agent, agent_position (1 or 2, in pairing order), provider, model (configured), served_models
  (as reported, joined by ";"), turns, input_tokens, output_tokens, reply_chars_mean,
  reply_chars_median, reply_words_mean, latency_mean, latency_median, ttft_mean, ttft_median
  (seconds), thinking_chars, retries, cost (US dollars), stop_reasons ("end_turn=3;length=1").

The table is for reading: every name and model id goes through `terminal_safe`, since a
transcript's content (even its pairing name) is untrusted.
"""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Mapping, Sequence
from typing import Any

from intermodel.analysis.fitwidth import ColumnFit
from intermodel.analysis.groups import group_summary
from intermodel.analysis.stats import AgentStats, RunStats
from intermodel.security.text import terminal_safe

__all__ = ["money", "render_table", "rows", "to_csv", "to_json"]

DETECTORS = ("repetition", "empty", "goodbye", "self_repetition", "emoji_collapse")
_MAX_CELL = 40  # a name or model id
_MAX_LIST = 100  # a list of counts or fractions


def rows(runs: Sequence[RunStats]) -> list[dict[str, Any]]:
    detectors = [*DETECTORS, *sorted({d for r in runs for d in r.flags} - set(DETECTORS))]
    out: list[dict[str, Any]] = []
    for run in runs:
        head = _run_columns(run, detectors)
        agents: Sequence[AgentStats | None] = run.agents or [None]
        for position, agent in enumerate(agents, start=1):
            out.append({**head, **_agent_columns(agent, position)})
    return out


def to_csv(runs: Sequence[RunStats]) -> str:
    table = rows(runs)
    if not table:
        return ""
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=list(table[0]), lineterminator="\n")
    writer.writeheader()
    writer.writerows(table)
    return buffer.getvalue()


def to_json(runs: Sequence[RunStats]) -> str:
    return json.dumps(rows(runs), indent=1, ensure_ascii=False) + "\n"


def _run_columns(run: RunStats, detectors: Sequence[str]) -> dict[str, Any]:
    experiment: Mapping[str, Any] = run.experiment or {}
    parent: Mapping[str, Any] = run.parent or {}
    return {
        "path": str(run.path), "run_id": run.run_id, "pairing": run.pairing,
        "started_at": run.started_at,
        "experiment": experiment.get("name"), "entry": experiment.get("entry"),
        "experiment_pairing": experiment.get("pairing"), "opener": experiment.get("opener"),
        "replicate": experiment.get("replicate"), "seed": experiment.get("seed"),
        "parent_run_id": parent.get("run_id"), "parent_after_turn": parent.get("after_turn"),
        "run_turns": run.turns, "inherited_turns": run.inherited_turns,
        "max_turns": run.max_turns, "duration": run.duration,
        "finished": run.finished, "end_reason": run.end_reason, "ended_by": run.ended_by,
        "end_detail": run.end_detail,
        **{f"flags_{d}": run.flags.get(d, 0) for d in detectors},
        "run_retries": run.retries, "discards": run.discards, "trims": run.trims,
        "interjections": run.interjections, "resumes": run.resumes, "torn": run.torn,
        "run_cost": run.cost,
    }


def _agent_columns(agent: AgentStats | None, position: int) -> dict[str, Any]:
    if agent is None:
        return dict.fromkeys(_AGENT_COLUMNS)
    return {
        "agent": agent.agent, "agent_position": position, "provider": agent.provider,
        "model": agent.model, "served_models": ";".join(agent.served_models),
        "turns": agent.turns, "input_tokens": agent.input_tokens,
        "output_tokens": agent.output_tokens, "reply_chars_mean": agent.reply_chars_mean,
        "reply_chars_median": agent.reply_chars_median,
        "reply_words_mean": agent.reply_words_mean, "latency_mean": agent.latency_mean,
        "latency_median": agent.latency_median, "ttft_mean": agent.ttft_mean,
        "ttft_median": agent.ttft_median, "thinking_chars": agent.thinking_chars,
        "retries": agent.retries, "cost": agent.cost,
        "stop_reasons": ";".join(f"{k}={v}" for k, v in agent.stop_reasons.items()),
    }


_AGENT_COLUMNS = ("agent", "agent_position", "provider", "model", "served_models", "turns",
                  "input_tokens", "output_tokens", "reply_chars_mean", "reply_chars_median",
                  "reply_words_mean", "latency_mean", "latency_median", "ttft_mean",
                  "ttft_median", "thinking_chars", "retries", "cost", "stop_reasons")

# ---- the terminal table ----------------------------------------------------------------------

_RUN_HEAD = ("RUN", "PAIRING", "STARTED", "TURNS", "TIME", "END", "BY", "FLAGS", "EVENTS", "COST")
_AGENT_HEAD = ("  AGENT", "MODEL", "TURNS", "TOKENS IN/OUT", "CHARS MEAN/MED", "WORDS",
               "LATENCY MEAN/MED", "TTFT MEAN/MED", "THINKING", "RETRIES", "STOP", "COST")
_GROUP_HEAD = ("EXPERIMENT", "PAIRING", "OPENER", "RUNS", "FINISHED", "TURNS", "ENDS", "FLAGS")


# What a narrow terminal leaves out first; the columns not named here always stay.
_RUN_DROP = ("STARTED", "TIME", "COST", "EVENTS", "FLAGS", "TURNS", "BY")
_AGENT_DROP = ("TTFT MEAN/MED", "RETRIES", "WORDS", "THINKING", "COST", "CHARS MEAN/MED",
               "LATENCY MEAN/MED", "STOP", "TOKENS IN/OUT", "TURNS")
_GROUP_DROP = ("FINISHED", "FLAGS", "TURNS", "EXPERIMENT")


def render_table(runs: Sequence[RunStats], fit: ColumnFit | None = None) -> str:
    """One line per run, a line per agent under it, then the experiment groups, if any. Every
    column, unless `fit` narrows the tables to a width (its `hint()` then says what it left
    out)."""
    if not runs:
        return "no runs\n"
    fit = fit or ColumnFit(None)
    run_lines = fit.lines(_RUN_HEAD, [_run_cells(run) for run in runs], _RUN_DROP)
    agent_lines = fit.lines(_AGENT_HEAD, [_agent_cells(a) for run in runs for a in run.agents],
                            _AGENT_DROP)
    out = [run_lines[0], agent_lines[0]]
    agents = iter(agent_lines[1:])
    for run, line in zip(runs, run_lines[1:], strict=True):
        out.append(line)
        out += [next(agents) for _ in run.agents]
    groups = [_group_cells(g) for g in group_summary(runs)]
    if groups:
        out += ["", "Experiment groups (fractions of runs):"]
        out += fit.lines(_GROUP_HEAD, groups, _GROUP_DROP)
    return "\n".join(out) + "\n"


def _run_cells(run: RunStats) -> list[str]:
    label = run.pairing_label
    if run.experiment is not None:
        label += f" / {run.opener or '-'} / r{run.experiment.get('replicate', '?')}"
    end = run.end_reason or ("unfinished, torn" if run.torn else "unfinished")
    events = [_count(n, word) for n, word in ((run.retries, "retry/retries"),
                                              (run.discards, "discard"), (run.trims, "trim"),
                                              (run.interjections, "interjection"),
                                              (run.resumes, "resume")) if n]
    budget = f"/{run.max_turns}" if run.max_turns is not None else ""
    return [_cell(run.run_id), _cell(label), _cell(run.started_at.replace("T", " ")[:19]),
            f"{run.turns}{budget}", _seconds(run.duration), _cell(end), _cell(run.ended_by),
            _cell(", ".join(f"{d} {n}" for d, n in run.flags.items()), _MAX_LIST) or "-",
            ", ".join(events) or "-", money(run.cost)]


def _agent_cells(agent: AgentStats) -> list[str]:
    model = f"{agent.provider}:{agent.model}"
    served = [m for m in agent.served_models if m != agent.model]
    if served:
        model += " → " + ", ".join(served)
    return ["  " + _cell(agent.agent), _cell(model), str(agent.turns),
            f"{_int(agent.input_tokens)}/{_int(agent.output_tokens)}",
            f"{_num(agent.reply_chars_mean)}/{_num(agent.reply_chars_median)}",
            _num(agent.reply_words_mean),
            f"{_num(agent.latency_mean, 2)}/{_num(agent.latency_median, 2)} s",
            f"{_num(agent.ttft_mean, 2)}/{_num(agent.ttft_median, 2)} s",
            str(agent.thinking_chars), str(agent.retries),
            _cell(", ".join(f"{k} {v}" for k, v in agent.stop_reasons.items()), _MAX_LIST)
            or "-",
            money(agent.cost)]


def _group_cells(group: Mapping[str, Any]) -> list[str]:
    def shares(values: Mapping[str, float]) -> str:
        return _cell(", ".join(f"{k} {v:.0%}" for k, v in values.items()), _MAX_LIST) or "-"

    return [_cell(group["experiment"]), _cell(group["pairing"]), _cell(group["opener"]),
            str(group["runs"]), str(group["finished"]), f"{group['turns_mean']:.1f}",
            shares(group["end_reasons"]), shares(group["flags"])]


def _cell(value: object, limit: int = _MAX_CELL) -> str:
    """Untrusted text as one inert, bounded table cell."""
    if value is None:
        return "-"
    text = terminal_safe(str(value)).replace("\n", "␤").replace("\t", " ")
    return text if len(text) <= limit else text[:limit - 1] + "…"


def _count(n: int, word: str) -> str:
    one, _, many = word.partition("/")
    return f"{n} {one if n == 1 else many or one + 's'}"


def _int(value: int | None) -> str:
    return "-" if value is None else str(value)


def _num(value: float | None, digits: int = 1) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _seconds(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def money(value: float | None, missing: str = "-") -> str:
    """Dollars: cents from $1 up, below that enough digits to show what small runs cost."""
    if value is None:
        return missing
    if value >= 1 or value == 0:
        return f"${value:.2f}"
    return "$" + f"{value:.6f}".rstrip("0")
