"""Cells of the index page's run table that say who talked and how the run ended.

A model is shown by the name it was configured with, so rows stay one line high: a model given
as a file (a local GGUF, or a server configured by path) by the file's name. The full path and
the id the server reported (what actually answered) are on hover. The outcome is the end reason
in words and who ended it ("stop phrase · ada"), its detail (an error's message) on hover.
Everything here comes from a transcript and is escaped by `esc`.
"""

from __future__ import annotations

from pathlib import PurePosixPath

from intermodel.analysis.htmlpage import esc
from intermodel.analysis.stats import AgentStats, RunStats
from intermodel.records import EndReason

__all__ = ["model_name", "models_cell", "outcome_cell", "outcome_text"]

_PATH_STARTS = ("/", "~", "./", "../")


def model_name(provider: str, model: str) -> str:
    """The model as people name it: one given as a file path by the file's base name; a model id
    such as "meta-llama/Llama-3.1-8B" as it is."""
    if provider == "local" or model.endswith(".gguf") or model.startswith(_PATH_STARTS) \
            or "\\" in model:
        return PurePosixPath(model.replace("\\", "/").rstrip("/")).name or model
    return model


def models_cell(run: RunStats) -> str:
    return "<td>" + "; ".join(_model(agent) for agent in run.agents) + "</td>"


def _model(agent: AgentStats) -> str:
    shown = model_name(agent.provider, agent.model)
    hover = [f"configured: {agent.model}"] if shown != agent.model else []
    if agent.served_models:
        hover.append("reported: " + ", ".join(agent.served_models))
    title = f' title="{esc(" · ".join(hover))}"' if hover else ""
    return f"<span{title}>{esc(agent.agent)}: {esc(shown)}</span>"


def outcome_text(run: RunStats) -> str:
    """How the run ended and who ended it: "stop phrase · ada", "max turns", "error". A reason
    this version does not know is shown in its own words, never the file's."""
    if not run.finished or run.end_reason is None:
        return "unfinished, torn" if run.torn else "unfinished"
    words = EndReason.read(run.end_reason).words
    return f"{words} · {run.ended_by}" if run.ended_by else words


def outcome_cell(run: RunStats) -> str:
    title = f' title="{esc(run.end_detail)}"' if run.end_detail else ""
    return f"<td{title}>{esc(outcome_text(run))}</td>"
