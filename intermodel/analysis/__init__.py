"""The morning-after view: figures of recorded runs, per run, per agent and per experiment group.

    runs, skipped = collect("transcripts/")
    print(render_table(runs))          # or to_csv(runs), to_json(runs) for pandas
"""

from __future__ import annotations

from intermodel.analysis.groups import group_summary
from intermodel.analysis.report import render_table, rows, to_csv, to_json
from intermodel.analysis.stats import AgentStats, RunStats, collect, run_stats

__all__ = [
    "AgentStats",
    "RunStats",
    "collect",
    "group_summary",
    "render_table",
    "rows",
    "run_stats",
    "to_csv",
    "to_json",
]
