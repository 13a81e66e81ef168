"""The SQLite schema of the transcript index, and how a transcript's records become its rows.

docs/sql.md documents every table and column.

Plain tables (not STRICT) and standard SQL, so any tool that reads SQLite 3.25 or later can open
the file. Each record kind of a transcript has a table of its own, keyed by the run and the
record's position in the file (`seq`), so rows of different tables can be put back in the order
they happened. Every table but `meta` refers to `runs` with ON DELETE CASCADE: deleting a run's
row deletes all of it.
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from typing import Any

from intermodel.analysis.sqlfindings import FINDINGS_SCHEMA, end_state_rows
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
    now_iso,
)
from intermodel.transcript.reader import Transcript

__all__ = ["APPLICATION_ID", "SCHEMA", "SCHEMA_VERSION", "Row", "run_rows"]

Row = dict[str, Any]

# Bump on any change to SCHEMA: an index of another version is rebuilt from its transcripts.
SCHEMA_VERSION = 3  # 2: end states and labels (intermodel.analysis.sqlfindings); 3: panels
# Stored in the file header (PRAGMA application_id) so an index is recognised as one, and any
# other database is never altered. "IMDX" in ASCII.
APPLICATION_ID = 0x494D4458

_RUN = "run_id TEXT NOT NULL REFERENCES runs(run_id) ON DELETE CASCADE"

SCHEMA: tuple[str, ...] = (
    """CREATE TABLE meta (
        key TEXT PRIMARY KEY,
        value TEXT NOT NULL
    )""",
    """CREATE TABLE runs (
        run_id TEXT PRIMARY KEY,
        path TEXT NOT NULL UNIQUE,
        pairing TEXT,
        kind TEXT NOT NULL,
        prompt TEXT,
        source TEXT,
        started_at TEXT,
        ended_at TEXT,
        finished INTEGER NOT NULL,
        end_reason TEXT,
        ended_by TEXT,
        end_detail TEXT,
        turns INTEGER NOT NULL,
        max_turns INTEGER,
        duration REAL NOT NULL,
        experiment_name TEXT,
        experiment_entry TEXT,
        experiment_pairing TEXT,
        experiment_opener TEXT,
        experiment_replicate INTEGER,
        experiment_seed INTEGER,
        parent_run_id TEXT,
        parent_transcript TEXT,
        parent_after_turn INTEGER,
        config_json TEXT NOT NULL,
        versions_json TEXT NOT NULL,
        torn_bytes INTEGER NOT NULL,
        file_size INTEGER NOT NULL,
        file_mtime_ns INTEGER NOT NULL,
        indexed_at TEXT NOT NULL
    )""",
    f"""CREATE TABLE agents (
        {_RUN},
        name TEXT NOT NULL,
        slot INTEGER NOT NULL,
        provider TEXT,
        model TEXT,
        base_url TEXT,
        price_input REAL,
        price_output REAL,
        PRIMARY KEY (run_id, name)
    )""",
    f"""CREATE TABLE turns (
        {_RUN},
        idx INTEGER NOT NULL,
        seq INTEGER NOT NULL,
        agent TEXT NOT NULL,
        text TEXT NOT NULL,
        thinking TEXT NOT NULL,
        input_tokens INTEGER,
        output_tokens INTEGER,
        reasoning_tokens INTEGER,
        latency REAL,
        ttft REAL,
        stop_reason TEXT,
        model TEXT,
        attempts INTEGER,
        request_hash TEXT,
        at TEXT,
        reply_chars INTEGER NOT NULL,
        reply_words INTEGER NOT NULL,
        inherited INTEGER NOT NULL,
        PRIMARY KEY (run_id, idx)
    )""",
    f"""CREATE TABLE interjections (
        {_RUN}, seq INTEGER NOT NULL,
        before_turn INTEGER NOT NULL,
        to_agents TEXT NOT NULL,
        text TEXT NOT NULL,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE retries (
        {_RUN}, seq INTEGER NOT NULL,
        turn INTEGER NOT NULL,
        agent TEXT NOT NULL,
        attempt INTEGER NOT NULL,
        error TEXT NOT NULL,
        message TEXT,
        status INTEGER,
        wait REAL,
        partial_chars INTEGER,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE discards (
        {_RUN}, seq INTEGER NOT NULL,
        turn INTEGER NOT NULL,
        agent TEXT NOT NULL,
        reason TEXT NOT NULL,
        text TEXT NOT NULL,
        thinking TEXT NOT NULL,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE trims (
        {_RUN}, seq INTEGER NOT NULL,
        agent TEXT NOT NULL,
        turn INTEGER NOT NULL,
        dropped_through INTEGER NOT NULL,
        dropped TEXT NOT NULL,
        estimated_tokens INTEGER,
        window_tokens INTEGER,
        cause TEXT,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE flags (
        {_RUN}, seq INTEGER NOT NULL,
        detector TEXT NOT NULL,
        turn INTEGER NOT NULL,
        agent TEXT NOT NULL,
        action TEXT NOT NULL,
        detail TEXT,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE notes (
        {_RUN}, seq INTEGER NOT NULL,
        message TEXT NOT NULL,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE budgets (
        {_RUN}, seq INTEGER NOT NULL,
        max_turns INTEGER NOT NULL,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE resumes (
        {_RUN}, seq INTEGER NOT NULL,
        after_turn INTEGER NOT NULL,
        max_turns INTEGER NOT NULL,
        torn_bytes INTEGER NOT NULL,
        versions_json TEXT NOT NULL,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE branches (
        {_RUN}, seq INTEGER NOT NULL,
        child_run_id TEXT NOT NULL,
        child_transcript TEXT,
        after_turn INTEGER NOT NULL,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    f"""CREATE TABLE ends (
        {_RUN}, seq INTEGER NOT NULL,
        reason TEXT NOT NULL,
        detail TEXT,
        ended_by TEXT,
        turns INTEGER,
        duration REAL,
        at TEXT,
        PRIMARY KEY (run_id, seq)
    )""",
    "CREATE INDEX runs_by_experiment ON runs (experiment_name, experiment_pairing, "
    "experiment_opener)",
    "CREATE INDEX runs_by_pairing ON runs (pairing)",
    "CREATE INDEX runs_by_kind ON runs (kind)",
    "CREATE INDEX runs_by_start ON runs (started_at)",
    "CREATE INDEX runs_by_parent ON runs (parent_run_id)",
    "CREATE INDEX agents_by_model ON agents (model)",
    "CREATE INDEX turns_by_agent ON turns (agent)",
    "CREATE INDEX retries_by_time ON retries (at)",
    "CREATE INDEX flags_by_detector ON flags (detector)",
    "CREATE INDEX branches_by_child ON branches (child_run_id)",
    # One row per run and agent. A branch's inherited turns belong to its parent, so they are left
    # out here and sums over runs count every reply (and every dollar) once.
    """CREATE VIEW run_summary AS
    SELECT a.run_id, a.name AS agent, a.slot, a.provider, a.model,
           COUNT(t.idx) AS turns,
           SUM(t.input_tokens) AS input_tokens,
           SUM(t.output_tokens) AS output_tokens,
           SUM(t.reasoning_tokens) AS reasoning_tokens,
           AVG(t.reply_chars) AS mean_reply_chars,
           AVG(t.reply_words) AS mean_reply_words,
           AVG(t.latency) AS mean_latency,
           (SELECT COUNT(*) FROM retries x
             WHERE x.run_id = a.run_id AND x.agent = a.name) AS retries,
           CASE WHEN a.price_input IS NULL OR a.price_output IS NULL THEN NULL
                ELSE (COALESCE(SUM(t.input_tokens), 0) * a.price_input
                      + COALESCE(SUM(t.output_tokens), 0) * a.price_output) / 1e6
           END AS cost
      FROM agents a
      LEFT JOIN turns t ON t.run_id = a.run_id AND t.agent = a.name AND t.inherited = 0
     GROUP BY a.run_id, a.name""",
    """CREATE VIEW run_pairs AS
    SELECT r.run_id, a.name AS agent_a, a.model AS model_a, b.name AS agent_b,
           b.model AS model_b, a.model || ' + ' || b.model AS model_pair
      FROM runs r
      JOIN agents a ON a.run_id = r.run_id AND a.slot = 0
      JOIN agents b ON b.run_id = r.run_id AND b.slot = 1
     WHERE r.kind = 'pairing'""",
    # One row per answer of a panel, with the message it answered, the agent's model and the
    # experiment entry, so answers compare across models and replicates without a join.
    """CREATE VIEW answers AS
    SELECT r.run_id, r.pairing AS panel, r.prompt,
           r.experiment_name, r.experiment_entry, r.experiment_pairing, r.experiment_opener,
           r.experiment_replicate, r.experiment_seed,
           t.agent, a.slot, a.provider, a.model, t.model AS served_model,
           t.text, t.thinking, t.input_tokens, t.output_tokens, t.reasoning_tokens,
           t.latency, t.ttft, t.stop_reason, t.attempts, t.reply_chars, t.reply_words, t.at
      FROM runs r
      JOIN turns t ON t.run_id = r.run_id
      LEFT JOIN agents a ON a.run_id = t.run_id AND a.name = t.agent
     WHERE r.kind = 'panel'""",
    """CREATE VIEW experiment_outcomes AS
    SELECT experiment_name, experiment_pairing, experiment_opener,
           COALESCE(end_reason, 'unfinished') AS end_reason,
           COUNT(*) AS runs,
           SUM(COUNT(*)) OVER
               (PARTITION BY experiment_name, experiment_pairing, experiment_opener) AS cell_runs,
           1.0 * COUNT(*) / SUM(COUNT(*)) OVER
               (PARTITION BY experiment_name, experiment_pairing, experiment_opener) AS fraction
      FROM runs
     WHERE experiment_name IS NOT NULL
     GROUP BY experiment_name, experiment_pairing, experiment_opener,
              COALESCE(end_reason, 'unfinished')""",
    *FINDINGS_SCHEMA,
)


# -- a transcript as rows ----------------------------------------------------------------------


def run_rows(transcript: Transcript, path: str, size: int, mtime_ns: int
             ) -> dict[str, list[Row]]:
    """Every row of one run, by table; `runs` first, as the others refer to it. Raises KeyError,
    TypeError, ValueError or AttributeError on a malformed header."""
    run = _run_row(transcript, path, size, mtime_ns)
    tables: dict[str, list[Row]] = {"runs": [run], "agents": _agent_rows(transcript)}
    inherited = run["parent_after_turn"] or 0
    for seq, record in enumerate(transcript.records, start=1):
        table, row = _record_row(record)
        if table == "turns":
            row["inherited"] = row["idx"] <= inherited
        tables.setdefault(table, []).append({"run_id": transcript.run_id, "seq": seq, **row})
    tables.update(end_state_rows(transcript))
    return tables


def _run_row(transcript: Transcript, path: str, size: int, mtime_ns: int) -> Row:
    header = transcript.header
    final = _final_end(transcript.records)
    experiment = header.get("experiment") or {}
    parent = header.get("parent") or {}
    ends = [r for r in transcript.records if isinstance(r, RunEnd)]
    return {
        "run_id": transcript.run_id, "path": path, "pairing": header.get("pairing"),
        "kind": "panel" if transcript.is_panel else "pairing", "prompt": transcript.prompt,
        "source": header.get("source"), "started_at": header.get("started_at"),
        "finished": final is not None, **_ending(final),
        "turns": len(transcript.turns), "max_turns": transcript.max_turns,
        # Each process that ended the run recorded its own time; a crash adds none.
        "duration": round(sum(e.duration for e in ends), 3),
        **{f"experiment_{k}": experiment.get(k)
           for k in ("name", "entry", "pairing", "opener", "replicate", "seed")},
        "parent_run_id": parent.get("run_id"), "parent_transcript": parent.get("transcript"),
        "parent_after_turn": parent.get("after_turn"),
        "config_json": _json(header["config"]), "versions_json": _json(header.get("versions")),
        "torn_bytes": transcript.torn_bytes, "file_size": size,
        "file_mtime_ns": mtime_ns, "indexed_at": now_iso(),
    }


def _final_end(records: Iterable[Record]) -> RunEnd | None:
    """The end record that closes the run: the last one, unless a resume came after it."""
    final: RunEnd | None = None
    for record in records:
        if isinstance(record, RunEnd):
            final = record
        elif isinstance(record, Resumption):
            final = None
    return final


def _ending(final: RunEnd | None) -> Row:
    if final is None:  # crashed, or still running
        return dict.fromkeys(("ended_at", "end_reason", "ended_by", "end_detail"))
    return {"ended_at": final.at, "end_reason": final.reason, "ended_by": final.ended_by,
            "end_detail": final.detail}


def _agent_rows(transcript: Transcript) -> list[Row]:
    # Read from the stored config as written, so a config that no longer validates still indexes.
    rows = []
    for slot, (name, table) in enumerate(transcript.header["config"]["agents"].items()):
        price = table.get("price") or {}
        rows.append({"run_id": transcript.run_id, "name": name, "slot": slot,
                     "provider": table.get("provider"), "model": table.get("model"),
                     "base_url": table.get("base_url"), "price_input": price.get("input"),
                     "price_output": price.get("output")})
    return rows


def _record_row(record: Record) -> tuple[str, Row]:
    match record:
        case Turn(usage=usage):
            return "turns", {
                "idx": record.index, "agent": record.agent, "text": record.text,
                "thinking": record.thinking, "input_tokens": usage.input_tokens,
                "output_tokens": usage.output_tokens, "reasoning_tokens": usage.reasoning_tokens,
                "latency": record.latency, "ttft": record.ttft,
                "stop_reason": record.stop_reason, "model": record.model,
                "attempts": record.attempts, "request_hash": record.request_hash,
                "at": record.at, "reply_chars": len(record.text),
                "reply_words": len(record.text.split())}
        case Interjection():
            return "interjections", {"before_turn": record.before_turn,
                                     "to_agents": _json(list(record.to)), "text": record.text,
                                     "at": record.at}
        case Retry():
            return "retries", _fields(record, "turn", "agent", "attempt", "error", "message",
                                      "status", "wait", "partial_chars", "at")
        case Discard():
            return "discards", _fields(record, "turn", "agent", "reason", "text", "thinking",
                                       "at")
        case Trim():
            return "trims", {**_fields(record, "agent", "turn", "dropped_through",
                                       "estimated_tokens", "cause", "at"),
                             "dropped": _json(list(record.dropped)),
                             "window_tokens": record.window}
        case Flag():
            return "flags", _fields(record, "detector", "turn", "agent", "action", "detail",
                                    "at")
        case Note():
            return "notes", _fields(record, "message", "at")
        case BudgetChange():
            return "budgets", _fields(record, "max_turns", "at")
        case Resumption():
            return "resumes", {**_fields(record, "after_turn", "max_turns", "torn_bytes", "at"),
                               "versions_json": _json(dict(record.versions))}
        case Branch():
            return "branches", {"child_run_id": record.run_id,
                                "child_transcript": record.transcript,
                                "after_turn": record.after_turn, "at": record.at}
        case RunEnd():
            return "ends", _fields(record, "reason", "detail", "ended_by", "turns", "duration",
                                   "at")


def _fields(record: Record, *names: str) -> Row:
    return {name: getattr(record, name) for name in names}


def _json(value: Any) -> str:
    return json.dumps(value, ensure_ascii=False)
