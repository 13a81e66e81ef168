"""`index` holds end states and labels, kept up to date as sidecars grow, and the views and
documented queries answer findings questions in one SELECT."""

from __future__ import annotations

import re
import sqlite3
from contextlib import closing
from pathlib import Path
from typing import Any

from intermodel.coding.labels import Human, Target, sidecar_path
from tests.hostile.support import cli

from .support import REPO, Study, label

DOC = REPO / "docs" / "sql.md"


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def index(study: Study) -> Path:
    result = cli("index", study.runs)
    assert result.code == 0, result.err
    return study.runs / "intermodel.sqlite"


def test_fraction_deflecting_per_model_in_one_select(study: Study) -> None:
    db = index(study)
    rows = query(db, "SELECT model, targets, coded, fraction FROM label_fractions WHERE "
                     "scheme = 'engagement' AND label = 'deflecting' AND coder = ? "
                     "ORDER BY model", "alice")
    assert rows == [("scripted:gemma-x", 0, 4, 0.0), ("scripted:gpt-x", 3, 4, 0.75)]
    judge = query(db, "SELECT model, targets, coded FROM label_fractions WHERE scheme = "
                      "'engagement' AND label = 'deflecting' AND coder LIKE 'judge%' "
                      "ORDER BY model")
    assert judge == [("scripted:gemma-x", 0, 3), ("scripted:gpt-x", 3, 3)]  # unlabelled: out


def test_end_states_are_indexed_with_their_evidence(study: Study) -> None:
    db = index(study)
    rows = query(db, "SELECT r.pairing, e.state, e.since, e.turns_before_end, e.end_reason "
                     "FROM end_states e JOIN runs r USING (run_id) ORDER BY r.pairing")
    assert rows == [("emoji", "emoji_collapse", 3, 2, "max_turns"),
                    ("loop", "self_repetition", 3, 2, "max_turns"),
                    ("ongoing", "ongoing", None, 4, "max_turns"),
                    ("stop", "stop_phrase", None, 3, "stop_phrase")]
    assert query(db, "SELECT COUNT(*) FROM runs") == [(8,)]  # panels: runs, no end state


def test_every_findings_query_in_the_docs_runs_and_finds_something(study: Study) -> None:
    db = index(study)
    findings = DOC.read_text(encoding="utf-8").split("\n## Labels, end states and findings")[1]
    queries = re.findall(r"```sql\n(.*?)```", findings, re.DOTALL)
    assert len(queries) == 6
    for sql in queries:
        assert query(db, sql), sql
    disagreements = query(db, queries[3])
    assert sorted((agent, a, b) for _, agent, a, b, _ in disagreements) == [
        ("gem", "engaged", "mixed"), ("gpt", "mixed", "deflecting")]


def test_labels_follow_their_sidecars_while_transcripts_stay_unchanged(study: Study) -> None:
    db = index(study)
    panel = study.panels[0]
    before = query(db, "SELECT COUNT(*) FROM labels")[0][0]
    label(panel, study.engagement, Target.answer("gem"), ["mixed"], Human("alice"))
    again = cli("index", study.runs)
    assert again.out.endswith("0 added, 0 updated, 8 unchanged, 0 removed, 0 skipped\n")
    assert query(db, "SELECT COUNT(*) FROM labels")[0][0] == before + 1
    assert query(db, "SELECT label, current FROM labels WHERE coder = 'alice' AND agent = 'gem' "
                     "AND run_id = (SELECT run_id FROM label_files WHERE path LIKE ?) "
                     "ORDER BY seq", f"%{sidecar_path(panel).name}") == [
        ("engaged", 0), ("engaged", 0), ("mixed", 1)]

    sidecar_path(panel).write_text('{"kind": "label", "run_id": "nope"}\n')
    damaged = cli("index", study.runs)
    assert damaged.code == 0
    assert damaged.lines[0].startswith(f"intermodel: skipped {sidecar_path(panel)}:1: ")
    assert damaged.lines[-1] == "intermodel: 1 file skipped"
    # That panel's nine records (alice's first two, then alice, bob and the judge on two
    # answers, and the one added above) are gone; the other runs' stay.
    assert query(db, "SELECT COUNT(*) FROM labels")[0][0] == before + 1 - 9

    sidecar_path(panel).unlink()
    assert cli("index", study.runs).err == ""
    assert query(db, "SELECT COUNT(*) FROM label_files") == [(7,)]
