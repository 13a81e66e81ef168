"""The findings part of the SQL index: each run's end state, the labels beside each transcript,
and views that give label and end-state fractions per model in one SELECT (docs/sql.md).

End states are derived from the transcript, so they are written with the run's other rows, in its
transaction. Labels live in a sidecar that changes while its transcript does not (a judge or a
person codes a finished run), so they are kept up to date on their own: after the runs are
indexed, every indexed run's sidecar whose size or modification time differs from what the index
recorded (or that appeared, or went away) is read again, and its rows replaced in one
transaction. A sidecar that does not read is reported as a skipped file and its rows removed.
"""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path
from typing import Any

from intermodel.analysis.coders import coder_name
from intermodel.analysis.endstates import end_state
from intermodel.coding.labels import Judge, LabelRecord, current, read_labels, sidecar_path
from intermodel.errors import TranscriptInvalid
from intermodel.records import now_iso
from intermodel.transcript.reader import Transcript

__all__ = ["FINDINGS_SCHEMA", "end_state_rows", "sync_labels"]

_RUN = "run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE"

# A run's models as one name, as `intermodel stats` groups runs: its agents' distinct
# `provider:model`, in pairing order, joined by " + ".
_RUN_MODEL = """(SELECT group_concat(m, ' + ') FROM (
        SELECT DISTINCT x.provider || ':' || x.model AS m FROM agents x
         WHERE x.run_id = {run} ORDER BY x.slot))"""

FINDINGS_SCHEMA: tuple[str, ...] = (
    """CREATE TABLE end_states (
        run_id TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
        state TEXT NOT NULL,
        since INTEGER,
        turns INTEGER NOT NULL,
        turns_before_end INTEGER NOT NULL,
        end_reason TEXT,
        evidence TEXT NOT NULL,
        evidence_turns TEXT NOT NULL,
        also TEXT NOT NULL
    )""",
    """CREATE TABLE label_files (
        run_id TEXT PRIMARY KEY REFERENCES runs(run_id) ON DELETE CASCADE,
        path TEXT NOT NULL,
        records INTEGER NOT NULL,
        file_size INTEGER NOT NULL,
        file_mtime_ns INTEGER NOT NULL,
        indexed_at TEXT NOT NULL
    )""",
    f"""CREATE TABLE labels (
        {_RUN},
        seq INTEGER NOT NULL,
        scheme TEXT NOT NULL,
        scheme_hash TEXT NOT NULL,
        scope TEXT NOT NULL,
        turn INTEGER,
        agent TEXT,
        labels TEXT NOT NULL,
        label TEXT,
        unlabelled TEXT,
        rationale TEXT NOT NULL,
        coder TEXT NOT NULL,
        coder_kind TEXT NOT NULL,
        judge_spec TEXT,
        judge_model TEXT,
        served_model TEXT,
        request_hash TEXT,
        attempts INTEGER,
        blind INTEGER NOT NULL,
        seed INTEGER,
        at TEXT NOT NULL,
        current INTEGER NOT NULL,
        PRIMARY KEY (run_id, seq)
    )""",
    "CREATE INDEX labels_by_scheme ON labels (scheme, coder)",
    "CREATE INDEX end_states_by_state ON end_states (state)",
    f"""CREATE VIEW label_targets AS
    SELECT l.run_id, l.scheme, l.scheme_hash, l.scope, l.turn, l.agent, l.coder, l.coder_kind,
           l.labels, l.label, l.unlabelled, l.rationale, l.at,
           COALESCE((SELECT a.provider || ':' || a.model FROM agents a
                      WHERE a.run_id = l.run_id AND a.name = l.agent),
                    {_RUN_MODEL.format(run="l.run_id")}) AS model,
           COALESCE(r.experiment_name || ' / ' || r.experiment_pairing || ' / '
                    || r.experiment_opener, r.pairing) AS experiment_group
      FROM labels l JOIN runs r USING (run_id)
     WHERE l.current""",
    """CREATE VIEW label_fractions AS
    WITH coded AS (SELECT * FROM label_targets WHERE unlabelled IS NULL),
    totals AS (SELECT scheme, coder, model, COUNT(*) AS coded FROM coded
                GROUP BY scheme, coder, model),
    names AS (SELECT DISTINCT c.scheme, j.value AS label FROM coded c, json_each(c.labels) j),
    counts AS (SELECT c.scheme, c.coder, c.model, j.value AS label, COUNT(*) AS targets
                 FROM coded c, json_each(c.labels) j
                GROUP BY c.scheme, c.coder, c.model, j.value)
    SELECT t.scheme, t.coder, t.model, n.label,
           COALESCE(k.targets, 0) AS targets, t.coded,
           1.0 * COALESCE(k.targets, 0) / t.coded AS fraction
      FROM totals t JOIN names n ON n.scheme = t.scheme
      LEFT JOIN counts k ON k.scheme = t.scheme AND k.coder = t.coder AND k.model = t.model
                        AND k.label = n.label""",
    f"""CREATE VIEW end_state_fractions AS
    WITH m AS (SELECT e.*, {_RUN_MODEL.format(run="e.run_id")} AS model FROM end_states e)
    SELECT model, state, COUNT(*) AS runs,
           SUM(COUNT(*)) OVER (PARTITION BY model) AS model_runs,
           1.0 * COUNT(*) / SUM(COUNT(*)) OVER (PARTITION BY model) AS fraction,
           AVG(turns_before_end) AS mean_turns_before_end
      FROM m
     GROUP BY model, state""",
)


def end_state_rows(transcript: Transcript) -> dict[str, list[dict[str, Any]]]:
    """The `end_states` row of a conversation (none for a panel)."""
    state = end_state(transcript)
    if state is None:
        return {}
    return {"end_states": [{
        "run_id": transcript.run_id, "state": state.state, "since": state.since,
        "turns": state.turns,
        "turns_before_end": state.since - 1 if state.since is not None else state.turns,
        "end_reason": state.end_reason, "evidence": state.evidence.detail,
        "evidence_turns": json.dumps(list(state.evidence.turns)),
        "also": json.dumps([evidence.state for evidence in state.also]),
    }]}


def sync_labels(conn: sqlite3.Connection, home: Path) -> list[tuple[Path, str, int | None]]:
    """Bring the labels of every indexed run up to date with its sidecar; returns the sidecars
    that could not be read: (path, why, line)."""
    recorded = {run_id: (size, mtime) for run_id, size, mtime in
                conn.execute("SELECT run_id, file_size, file_mtime_ns FROM label_files")}
    failed: list[tuple[Path, str, int | None]] = []
    for run_id, path in conn.execute("SELECT run_id, path FROM runs").fetchall():
        sidecar = sidecar_path(Path(os.path.normpath(home / path)))
        try:
            stat = sidecar.lstat()
        except OSError:
            if run_id in recorded:
                _replace(conn, run_id, None, [])
            continue
        if recorded.get(run_id) == (stat.st_size, stat.st_mtime_ns):
            continue
        try:
            records = read_labels(sidecar, run_id=run_id).records
        except TranscriptInvalid as exc:
            failed.append((sidecar, exc.reason, exc.line))
            _replace(conn, run_id, None, [])
            continue
        speakers = dict(conn.execute("SELECT idx, agent FROM turns WHERE run_id = ?", (run_id,)))
        info = {"run_id": run_id, "path": os.path.relpath(sidecar, home),
                "records": len(records), "file_size": stat.st_size,
                "file_mtime_ns": stat.st_mtime_ns, "indexed_at": now_iso()}
        _replace(conn, run_id, info, _label_rows(records, speakers))
    return failed


def _label_rows(records: list[LabelRecord], speakers: dict[int, str]) -> list[dict[str, Any]]:
    in_force = {id(record) for record in current(records)}
    rows = []
    for seq, record in enumerate(records, start=1):
        target, coder = record.target, record.coder
        agent = speakers.get(target.turn or 0) if target.scope == "turn" else target.agent
        judge = coder if isinstance(coder, Judge) else None
        rows.append({
            "run_id": record.run_id, "seq": seq, "scheme": record.scheme,
            "scheme_hash": record.scheme_hash, "scope": target.scope, "turn": target.turn,
            "agent": agent, "labels": json.dumps(list(record.labels), ensure_ascii=False),
            "label": record.labels[0] if len(record.labels) == 1 else None,
            "unlabelled": record.unlabelled, "rationale": record.rationale,
            "coder": coder_name(coder), "coder_kind": "judge" if judge else "human",
            "judge_spec": judge.spec if judge else None,
            "judge_model": judge.model if judge else None,
            "served_model": (judge.served_model or None) if judge else None,
            "request_hash": record.request_hash, "attempts": record.attempts,
            "blind": record.blind, "seed": record.seed, "at": record.at,
            "current": id(record) in in_force,
        })
    return rows


def _replace(conn: sqlite3.Connection, run_id: str, info: dict[str, Any] | None,
             rows: list[dict[str, Any]]) -> None:
    """One run's label rows, replaced in one transaction."""
    conn.execute("BEGIN IMMEDIATE")
    try:
        conn.execute("DELETE FROM labels WHERE run_id = ?", (run_id,))
        conn.execute("DELETE FROM label_files WHERE run_id = ?", (run_id,))
        for table, items in (("label_files", [info] if info else []), ("labels", rows)):
            if items:
                columns = list(items[0])
                # Table and column names come from this module, never from a sidecar.
                conn.executemany(f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
                                 f"({', '.join(':' + c for c in columns)})", items)
    except BaseException:
        conn.execute("ROLLBACK")
        raise
    conn.execute("COMMIT")
