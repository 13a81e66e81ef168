"""Researchers keep their own tables in the index database (coding tables beside the turns): a
rebuild, or a schema upgrade, drops and builds again only what intermodel created."""

from __future__ import annotations

import sqlite3
from contextlib import closing
from pathlib import Path

import pytest

from intermodel.analysis.sqlindex import build_index, default_db
from intermodel.errors import UsageError
from tests.conftest import PairingFactory

from .test_sqlindex import query, record

pytestmark = pytest.mark.anyio

CODES = [("turn 1 is a greeting", 1, "greeting"), ("turn 2 agrees", 2, "agreement")]


async def indexed_with_our_own_table(make_pairing: PairingFactory, folder: Path) -> Path:
    """An index of one run, with a researcher's coding table (and its index and a view that
    joins it to the turns) added by hand."""
    await record(make_pairing(), folder)
    db = default_db(folder)
    build_index([folder], db)
    [(run,)] = query(db, "SELECT run_id FROM runs")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("CREATE TABLE my_codes (run_id TEXT, turn INTEGER, code TEXT, note TEXT)")
        conn.executemany("INSERT INTO my_codes VALUES (?, ?, ?, ?)",
                         [(run, turn, code, note) for note, turn, code in CODES])
        conn.execute("CREATE INDEX my_codes_by_code ON my_codes (code)")
        conn.execute("CREATE VIEW my_coded_turns AS SELECT t.agent, t.text, c.code FROM turns t "
                     "JOIN my_codes c ON c.run_id = t.run_id AND c.turn = t.idx")
    return db


def ours_rebuilt(db: Path, before: str) -> None:
    assert query(db, "SELECT value FROM meta WHERE key = 'created_at'") != [(before,)]
    assert query(db, "SELECT COUNT(*) FROM turns") == [(4,)]


def theirs_intact(db: Path) -> None:
    assert query(db, "SELECT code, note FROM my_codes ORDER BY turn") == [
        ("greeting", "turn 1 is a greeting"), ("agreement", "turn 2 agrees")]
    assert query(db, "SELECT agent, code FROM my_coded_turns ORDER BY code") == [
        ("bo", "agreement"), ("ada", "greeting")]
    assert query(db, "SELECT name FROM sqlite_master WHERE name = 'my_codes_by_code'") == [
        ("my_codes_by_code",)]


def created_at(db: Path) -> str:
    [(value,)] = query(db, "SELECT value FROM meta WHERE key = 'created_at'")
    return str(value)


async def test_a_rebuild_keeps_the_tables_it_did_not_create(make_pairing: PairingFactory,
                                                            tmp_path: Path) -> None:
    db = await indexed_with_our_own_table(make_pairing, tmp_path)
    before = created_at(db)
    report = build_index([tmp_path], db, rebuild=True)
    assert report.rebuilt and len(report.added) == 1
    ours_rebuilt(db, before)
    theirs_intact(db)


async def test_a_schema_upgrade_keeps_them_too_even_in_an_index_from_before_it_said_what_it_made(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    db = await indexed_with_our_own_table(make_pairing, tmp_path)
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("DELETE FROM meta WHERE key = 'objects'")  # as indexes built before
        conn.execute("PRAGMA user_version = 1")
    before = created_at(db)
    assert build_index([tmp_path], db).rebuilt
    ours_rebuilt(db, before)
    theirs_intact(db)


async def test_a_table_of_theirs_with_a_name_the_index_needs_is_named_not_dropped(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    db = await indexed_with_our_own_table(make_pairing, tmp_path)
    # As if `ends` were new in this version, and theirs from before.
    [(made,)] = query(db, "SELECT value FROM meta WHERE key = 'objects'")
    with closing(sqlite3.connect(db)) as conn, conn:
        conn.execute("UPDATE meta SET value = ? WHERE key = 'objects'",
                     (made.replace('"ends", ', "").replace(', "ends"', ""),))
    with pytest.raises(UsageError, match=r"a table ends .* rename it"):
        build_index([tmp_path], db, rebuild=True)
    assert query(db, "SELECT COUNT(*) FROM ends") == [(1,)]
    theirs_intact(db)
