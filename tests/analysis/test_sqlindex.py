from __future__ import annotations

import json
import os
import re
import sqlite3
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.analysis.sqlindex import build_index, default_db
from intermodel.analysis.sqlschema import SCHEMA_VERSION
from intermodel.config.model import AgentConfig, Pairing
from intermodel.engine.events import Event, TurnStarted
from intermodel.engine.prepare import ProviderFactory, prepared_run
from intermodel.errors import RateLimited, StreamInterrupted, UsageError
from intermodel.lineage.branch import prepared_branch
from intermodel.lineage.resume import prepared_resume
from intermodel.providers.base import Provider
from intermodel.providers.registry import make_provider
from intermodel.providers.scripted import ScriptedProvider
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.analysis.support import PANEL_OPENER, run_panel_batch
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import FailingProvider

pytestmark = pytest.mark.anyio

DOC = Path(__file__).parents[2] / "docs" / "sql.md"

PRICED = SCRIPTED.replace('"ada two"', '"am I conscious?"') + """
[agents.ada.price]
input = 3.0
output = 15.0
[agents.bo.price]
input = 0.5
output = 1.5
"""
# bo repeats whatever it was last told, so the repetition detector flags (marks) its turns.
ECHO = SCRIPTED.replace('replies = ["bo one", "bo two", "bo three"]', 'rule = "echo"') + """
[retry]
backoff_initial = 0.01
backoff_max = 0.02
"""
STOPPING = SCRIPTED.replace("max_turns = 4", 'max_turns = 10\nstop_phrases = ["^C^C"]').replace(
    '"bo two"', '"enough ^C^C"')
LONG = SCRIPTED.replace("max_turns = 4", "max_turns = 6")


def experiment(opener: str) -> dict[str, Any]:
    return {"experiment": {"name": "openers", "entry": f"test-pair/{opener}/r1",
                           "pairing": "test-pair", "opener": opener, "replicate": 1,
                           "seed": None}}


def flaky_ada(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
    inner = ScriptedProvider(agent, partner)
    if agent.name != "ada":
        return inner
    return FailingProvider(inner, [RateLimited("slow down", provider="fake", status=429,
                                               retry_after=0.01),
                                   StreamInterrupted("cut", provider="fake")])


async def record(pairing: Pairing, folder: Path, *, origin: dict[str, Any] | None = None,
                 interject_at: int | None = None, stop_at: int | None = None,
                 provider_factory: ProviderFactory = make_provider) -> Path:
    """Run a scripted pairing into `folder`; optionally interject to both agents while turn
    `interject_at` streams, or stop it at once (as Ctrl-C would) when turn `stop_at` starts."""
    async with prepared_run(pairing, out_dir=folder, origin=origin,
                            provider_factory=provider_factory) as run:
        events = run.session.subscribe()

        async def steer() -> None:
            event: Event
            async for event in events:
                if isinstance(event, TurnStarted) and event.turn == interject_at:
                    run.session.controls.interject("Please be brief.", to="both")
                if isinstance(event, TurnStarted) and event.turn == stop_at:
                    run.session.controls.stop(now=True, reason="interrupted")

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(steer)
                await run.session.run()
                tg.cancel_scope.cancel()
    assert run.transcript is not None
    return run.transcript


async def resume(path: Path, turns: int | None = None) -> None:
    async with prepared_resume(path, turns=turns) as run:
        await run.session.run()


@dataclass
class Archive:
    folder: Path
    chat: Path  # priced, an interjection, a mention of "conscious"; parent of `branch`
    flaky: Path  # two retries; bo echoes, so its turns are flagged
    stopped: Path  # experiment "openers", cell "warm": ended by bo's stop phrase
    resumed: Path  # experiment "openers", cell "cold": interrupted at turn 3, then resumed
    branch: Path  # branched from `chat` after turn 2
    torn: Path  # a run whose last record was cut in half
    foreign: Path  # JSON Lines, but not a transcript


async def make_archive(make_pairing: PairingFactory, folder: Path) -> Archive:
    chat = await record(make_pairing(PRICED), folder, interject_at=2)
    flaky = await record(make_pairing(ECHO), folder, provider_factory=flaky_ada)
    cells = folder / "openers"
    stopped = await record(make_pairing(STOPPING), cells, origin=experiment("warm"))
    resumed = await record(make_pairing(LONG), cells, origin=experiment("cold"), stop_at=3)
    await resume(resumed)
    async with prepared_branch(chat, 2, say="Change the subject.") as run:
        await run.session.run()
    assert run.transcript is not None
    torn = await record(make_pairing(), folder)
    data = torn.read_bytes()
    torn.write_bytes(data[:data.rstrip(b"\n").rfind(b"\n") + 1] + b'{"kind":"end","rea')
    foreign = folder / "notes.jsonl"
    foreign.write_text('{"note": "not a run"}\n')
    return Archive(folder, chat, flaky, stopped, resumed, run.transcript, torn, foreign)


@pytest.fixture
async def archive(make_pairing: PairingFactory, tmp_path: Path) -> Archive:
    return await make_archive(make_pairing, tmp_path / "runs")


def query(db: Path, sql: str, *params: Any) -> list[tuple[Any, ...]]:
    with closing(sqlite3.connect(db)) as conn:
        return conn.execute(sql, params).fetchall()


def run_id(path: Path) -> str:
    return read_transcript(path).run_id


def test_the_default_database_lives_in_the_folder(tmp_path: Path) -> None:
    (tmp_path / "a.jsonl").write_text("")
    assert default_db(tmp_path) == tmp_path / "intermodel.sqlite"
    assert default_db(tmp_path / "a.jsonl") == tmp_path / "intermodel.sqlite"


async def test_every_record_of_every_run_is_indexed(archive: Archive) -> None:
    db = default_db(archive.folder)
    report = build_index([archive.folder], db)
    assert report.rebuilt
    assert len(report.added) == 6 and not report.updated and not report.removed
    assert [(s.path, s.reason) for s in report.skipped] == [
        (archive.foreign, "not an intermodel transcript (no header record)")]
    assert report.torn == [archive.torn]
    assert query(db, "PRAGMA journal_mode") == [("wal",)]
    assert query(db, "SELECT value FROM meta WHERE key = 'schema_version'") == [
        (str(SCHEMA_VERSION),)]
    for path in (archive.chat, archive.flaky, archive.stopped, archive.resumed, archive.branch):
        transcript = read_transcript(path)
        rid = transcript.run_id
        rows = query(db, "SELECT idx, agent, text, input_tokens, output_tokens, request_hash, "
                         "reply_words FROM turns WHERE run_id = ? ORDER BY idx", rid)
        assert rows == [(t.index, t.agent, t.text, t.usage.input_tokens, t.usage.output_tokens,
                         t.request_hash, len(t.text.split())) for t in transcript.turns]
        [(stored, turns, reason)] = query(db, "SELECT path, turns, end_reason FROM runs "
                                              "WHERE run_id = ?", rid)
        assert archive.folder / stored == path  # relative to the database's folder
        assert transcript.end is not None
        assert (turns, reason) == (len(transcript.turns), transcript.end.reason)
        config = json.loads(query(db, "SELECT config_json FROM runs WHERE run_id = ?", rid)[0][0])
        assert config == transcript.header["config"]

    chat = run_id(archive.chat)
    assert query(db, "SELECT before_turn, to_agents, text FROM interjections WHERE run_id = ?",
                 chat) == [(3, '["ada", "bo"]', "Please be brief.")]
    assert query(db, "SELECT name, slot, provider, price_input, price_output FROM agents "
                     "WHERE run_id = ? ORDER BY slot", chat) == [
        ("ada", 0, "scripted", 3.0, 15.0), ("bo", 1, "scripted", 0.5, 1.5)]
    assert query(db, "SELECT child_run_id, after_turn FROM branches WHERE run_id = ?",
                 chat) == [(run_id(archive.branch), 2)]

    flaky = run_id(archive.flaky)
    assert query(db, "SELECT turn, agent, attempt, error, status FROM retries WHERE run_id = ?",
                 flaky) == [(1, "ada", 1, "rate_limited", 429), (1, "ada", 2,
                                                                   "stream_interrupted", None)]
    assert query(db, "SELECT attempts FROM turns WHERE run_id = ? AND idx = 1", flaky) == [(3,)]
    flags = query(db, "SELECT detector, agent, action FROM flags WHERE run_id = ?", flaky)
    assert flags and set(flags) == {("repetition", "bo", "mark")}

    torn = run_id(archive.torn)
    assert query(db, "SELECT finished, end_reason, turns, torn_bytes FROM runs "
                     "WHERE run_id = ?", torn) == [(0, None, 4, len('{"kind":"end","rea'))]


async def test_runs_carry_their_ending_experiment_and_parent(archive: Archive) -> None:
    db = default_db(archive.folder)
    build_index([archive.folder], db)
    stopped, resumed = run_id(archive.stopped), run_id(archive.resumed)
    assert query(db, "SELECT end_reason, ended_by, end_detail, experiment_name, "
                     "experiment_entry, experiment_opener, experiment_replicate, experiment_seed "
                     "FROM runs WHERE run_id = ?", stopped) == [
        ("stop_phrase", "bo", "bo said '^C^C'", "openers", "test-pair/warm/r1", "warm", 1, None)]
    # Two end records: the interruption, then the real ending after the resume.
    assert query(db, "SELECT reason, turns FROM ends WHERE run_id = ? ORDER BY seq",
                 resumed) == [("interrupted", 2), ("max_turns", 6)]
    assert query(db, "SELECT finished, end_reason, turns, duration > 0 FROM runs "
                     "WHERE run_id = ?", resumed) == [(1, "max_turns", 6, 1)]
    assert query(db, "SELECT after_turn, max_turns FROM resumes WHERE run_id = ?",
                 resumed) == [(2, 6)]
    assert query(db, "SELECT reason, turn, agent FROM discards WHERE run_id = ?",
                 resumed) == [("interrupted", 3, "ada")]

    branch = run_id(archive.branch)
    assert query(db, "SELECT parent_run_id, parent_after_turn FROM runs WHERE run_id = ?",
                 branch) == [(run_id(archive.chat), 2)]
    assert query(db, "SELECT idx FROM turns WHERE run_id = ? AND inherited", branch) == [
        (1,), (2,)]
    assert query(db, "SELECT text FROM interjections WHERE run_id = ? AND before_turn = 3",
                 branch) == [("Change the subject.",)]


async def test_views_summarise_runs_and_experiments(archive: Archive,
                                                    make_pairing: PairingFactory) -> None:
    db = default_db(archive.folder)
    build_index([archive.folder], db)
    chat = read_transcript(archive.chat)
    pairing = make_pairing(PRICED)
    for agent in pairing.agents:
        turns = [t for t in chat.turns if t.agent == agent.name]
        assert agent.price is not None
        expected = agent.price.cost(sum(t.usage.input_tokens or 0 for t in turns),
                                    sum(t.usage.output_tokens or 0 for t in turns))
        [(count, cost, words)] = query(
            db, "SELECT turns, cost, mean_reply_words FROM run_summary "
                "WHERE run_id = ? AND agent = ?", chat.run_id, agent.name)
        assert count == len(turns) and cost == pytest.approx(expected) and expected > 0
        assert words == pytest.approx(sum(len(t.text.split()) for t in turns) / len(turns))
    # Unpriced agents have no cost; a branch's inherited turns are its parent's.
    assert query(db, "SELECT cost FROM run_summary WHERE run_id = ?", run_id(archive.flaky)) == [
        (None,), (None,)]
    branch = read_transcript(archive.branch)
    assert query(db, "SELECT SUM(turns) FROM run_summary WHERE run_id = ?", branch.run_id) == [
        (len(branch.turns) - 2,)]
    assert query(db, "SELECT experiment_opener, end_reason, runs, fraction FROM "
                     "experiment_outcomes ORDER BY experiment_opener") == [
        ("cold", "max_turns", 1, 1.0), ("warm", "stop_phrase", 1, 1.0)]
    assert query(db, "SELECT model_pair FROM run_pairs WHERE run_id = ?", chat.run_id) == [
        ("scripted + scripted",)]


async def test_an_update_reads_only_what_changed(archive: Archive,
                                                 make_pairing: PairingFactory) -> None:
    db = default_db(archive.folder)
    build_index([archive.folder], db)
    before = dict(query(db, "SELECT run_id, indexed_at FROM runs"))

    again = build_index([archive.folder], db)
    assert (again.added, again.updated, again.removed, len(again.unchanged)) == ([], [], [], 6)
    assert dict(query(db, "SELECT run_id, indexed_at FROM runs")) == before

    await resume(archive.chat, turns=6)  # a finished run, continued
    archive.flaky.unlink()
    added = await record(make_pairing(), archive.folder / "later")
    moved = archive.folder / "old" / archive.torn.name
    moved.parent.mkdir()
    archive.torn.rename(moved)
    report = build_index([archive.folder], db)
    assert report.updated == [archive.chat, moved]
    assert report.removed == [archive.flaky]
    assert report.added == [added]
    assert len(report.unchanged) == 3
    assert query(db, "SELECT path FROM runs WHERE run_id = ?", run_id(moved)) == [
        (f"old/{moved.name}",)]
    after = dict(query(db, "SELECT run_id, indexed_at FROM runs"))
    for rid in {run_id(p) for p in (archive.stopped, archive.resumed, archive.branch)}:
        assert after[rid] == before[rid]
    chat = run_id(archive.chat)
    assert after[chat] != before[chat]
    assert query(db, "SELECT turns, end_reason, file_size FROM runs WHERE run_id = ?", chat) == [
        (6, "max_turns", archive.chat.stat().st_size)]
    assert query(db, "SELECT COUNT(*) FROM turns WHERE run_id = ?", chat) == [(6,)]
    assert query(db, "SELECT COUNT(*) FROM resumes WHERE run_id = ?", chat) == [(1,)]
    assert query(db, "SELECT COUNT(*) FROM branches WHERE run_id = ?", chat) == [(1,)]
    # A removed run leaves no rows behind: only the flaky run had retries and flags.
    assert query(db, "SELECT COUNT(*) FROM retries") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM flags") == [(0,)]


async def test_a_copied_run_is_indexed_once_from_its_fullest_file(archive: Archive) -> None:
    db = default_db(archive.folder)
    copy = archive.folder / "backup" / archive.chat.name
    copy.parent.mkdir()
    copy.write_bytes(archive.chat.read_bytes())
    os.utime(copy, ns=(archive.chat.stat().st_mtime_ns + 10**9,) * 2)
    report = build_index([archive.folder], db)
    chat = run_id(archive.chat)
    assert query(db, "SELECT path FROM runs WHERE run_id = ?", chat) == [
        (f"backup/{archive.chat.name}",)]  # the same size: the newer file
    [duplicate] = [s for s in report.skipped if s.path == archive.chat]
    assert duplicate.reason.startswith(f"the same run as {copy}")

    await resume(archive.chat, turns=6)  # the original grows: now it holds more of the run
    report = build_index([archive.folder], db)
    assert report.updated == [archive.chat]
    assert query(db, "SELECT path, turns FROM runs WHERE run_id = ?", chat) == [
        (archive.chat.name, 6)]
    assert any(s.path == copy for s in report.skipped)

    # A damaged copy, however large, never hides a readable file of the same run.
    lines = archive.chat.read_bytes().splitlines(keepends=True)
    copy.write_bytes(lines[0] + b"x" * 10_000 + b"\n" + b"".join(lines[1:]))
    report = build_index([archive.folder], db)
    assert [(s.reason, s.line) for s in report.skipped if s.path == copy] == [
        ("not valid JSON (Expecting value at column 1)", 2)]
    assert query(db, "SELECT path FROM runs WHERE run_id = ?", chat) == [(archive.chat.name,)]


async def test_a_run_that_cannot_be_stored_is_rolled_back_whole(archive: Archive) -> None:
    db = default_db(archive.folder)
    build_index([archive.folder], db)
    chat = run_id(archive.chat)
    # A copy with one more record: readable, larger, so tried first. A trigger planted in the
    # database refuses that record, so its insert fails halfway (after its runs row and its
    # turns) and the original stays indexed as it was.
    copy = archive.folder / "copy.jsonl"
    copy.write_bytes(archive.chat.read_bytes()
                     + b'{"kind":"note","message":"planted","at":"2026-01-01T00:00:00Z"}\n')
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("CREATE TRIGGER refuse BEFORE INSERT ON notes WHEN NEW.message = "
                     "'planted' BEGIN SELECT RAISE(ABORT, 'planted record refused'); END")
    report = build_index([archive.folder], db)
    [failed] = [s for s in report.skipped if s.path == copy]
    assert failed.reason == "damaged: planted record refused"
    assert report.unchanged.count(archive.chat) == 1
    assert query(db, "SELECT path, file_size FROM runs WHERE run_id = ?", chat) == [
        (archive.chat.name, archive.chat.stat().st_size)]
    assert query(db, "SELECT COUNT(*) FROM turns WHERE run_id = ?", chat) == [(4,)]


async def test_files_that_hold_no_run_are_reported_and_their_rows_dropped(
        archive: Archive) -> None:
    db = default_db(archive.folder)
    build_index([archive.folder], db)
    (archive.folder / "empty.jsonl").write_bytes(b"")
    (archive.folder / "future.jsonl").write_text('{"kind":"header","format":2}\n')
    stopped = run_id(archive.stopped)
    archive.stopped.write_text("overwritten\n")
    report = build_index([archive.folder], db)
    reasons = {s.path.name: s.reason for s in report.skipped}
    assert reasons == {
        "empty.jsonl": "no complete first line (empty, or a run that is just starting)",
        "future.jsonl": "transcript format 2 is not supported (this version reads 1)",
        "notes.jsonl": "not an intermodel transcript (no header record)",
        archive.stopped.name: "not an intermodel transcript: not valid JSON (Expecting value at "
                              "column 1)",
    }
    assert report.removed == [archive.stopped]
    assert query(db, "SELECT COUNT(*) FROM runs WHERE run_id = ?", stopped) == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM turns WHERE run_id = ?", stopped) == [(0,)]


async def test_a_single_file_and_its_neighbours_share_one_index(archive: Archive) -> None:
    db = default_db(archive.folder)
    build_index([archive.folder], db)
    report = build_index([archive.chat], db)
    assert report.unchanged == [archive.chat] and not report.removed
    assert query(db, "SELECT COUNT(*) FROM runs") == [(6,)]  # runs outside PATH are kept
    with pytest.raises(UsageError, match="no such file or folder"):
        build_index([archive.folder / "missing"], db)


def test_an_old_schema_is_rebuilt_and_a_foreign_database_left_alone(tmp_path: Path) -> None:
    db = tmp_path / "intermodel.sqlite"
    assert build_index([tmp_path], db).rebuilt
    assert not build_index([tmp_path], db).rebuilt
    with closing(sqlite3.connect(db)) as conn:
        conn.execute("PRAGMA user_version = 0")
    assert build_index([tmp_path], db).rebuilt
    other = tmp_path / "other.sqlite"
    with closing(sqlite3.connect(other)) as conn:
        conn.execute("CREATE TABLE mine (x)")
    with pytest.raises(UsageError, match="not an intermodel index"):
        build_index([tmp_path], other)
    assert query(other, "SELECT name FROM sqlite_master") == [("mine",)]
    (tmp_path / "junk.sqlite").write_bytes(b"not a database at all" * 100)
    with pytest.raises(UsageError, match="not a usable SQLite database"):
        build_index([tmp_path], tmp_path / "junk.sqlite")


def doc_queries() -> list[str]:
    """The example queries of runs (those of labels and end states are run by
    tests/findings, against a labelled study)."""
    runs = DOC.read_text(encoding="utf-8").split("\n## Labels, end states and findings")[0]
    return re.findall(r"```sql\n(.*?)```", runs, re.DOTALL)


async def test_every_query_in_the_docs_runs_and_finds_something(archive: Archive) -> None:
    await run_panel_batch(archive.folder / "panel-trial")
    db = default_db(archive.folder)
    build_index([archive.folder], db)
    queries = doc_queries()
    assert 9 <= len(queries) <= 10
    with closing(sqlite3.connect(db)) as conn:
        for sql in queries:
            assert conn.execute(sql).fetchall(), sql


def test_the_docs_describe_every_table_view_and_column(tmp_path: Path) -> None:
    db = tmp_path / "intermodel.sqlite"
    build_index([tmp_path], db)
    doc = DOC.read_text(encoding="utf-8")
    names = [name for (name,) in query(db, "SELECT name FROM sqlite_master WHERE type IN "
                                           "('table', 'view') ORDER BY name")]
    for name in names:
        section = doc.split(f"### `{name}`", 1)
        assert len(section) == 2, f"no section for {name}"
        body = section[1].split("\n### ", 1)[0]
        for column in query(db, f"PRAGMA table_info({name})"):
            assert f"| `{column[1]}` |" in body, f"{name}.{column[1]} is not documented"


async def test_a_panel_is_indexed_with_its_prompt_answers_and_experiment_entry(
        tmp_path: Path) -> None:
    paths = await run_panel_batch(tmp_path / "study")
    db = default_db(tmp_path)
    report = build_index([tmp_path], db)
    assert sorted(report.added) == sorted(paths) and not report.skipped
    for path in paths:
        transcript = read_transcript(path)
        replicate = transcript.header["experiment"]["replicate"]
        assert query(db, "SELECT kind, prompt, pairing, turns, end_reason, experiment_name, "
                         "experiment_entry, experiment_opener, experiment_replicate FROM runs "
                         "WHERE run_id = ?", transcript.run_id) == [
            ("panel", PANEL_OPENER, "voices", 3, "complete", "panel-trial",
             f"voices/news/r{replicate}", "news", replicate)]
        by_agent = sorted(transcript.turns, key=lambda t: t.index)
        assert [t.agent for t in transcript.turns] != [t.agent for t in by_agent]  # the test's
        rows = query(db, "SELECT agent, slot, provider, model, served_model, text, thinking, "
                         "input_tokens, output_tokens, latency, ttft, prompt, "
                         "experiment_replicate FROM answers WHERE run_id = ? ORDER BY slot",
                     transcript.run_id)
        assert rows == [(t.agent, slot, "scripted", t.model, t.model, t.text, t.thinking,
                         t.usage.input_tokens, t.usage.output_tokens, t.latency, t.ttft,
                         PANEL_OPENER, replicate) for slot, t in enumerate(by_agent)]
        assert [r[3] for r in rows] == ["alpha-1", "beta-2", "gamma-3"]
        assert rows[0][6] == "ann weighs the question first" and rows[1][5] == PANEL_OPENER
    # A panel is no conversation: no seats to pair, no end state.
    assert query(db, "SELECT COUNT(*) FROM run_pairs") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM end_states") == [(0,)]


async def test_a_pairing_has_no_prompt_and_no_answers(make_pairing: PairingFactory,
                                                      tmp_path: Path) -> None:
    chat = await record(make_pairing(), tmp_path)
    db = default_db(tmp_path)
    build_index([tmp_path], db)
    assert query(db, "SELECT kind, prompt FROM runs WHERE run_id = ?", run_id(chat)) == [
        ("pairing", None)]
    assert query(db, "SELECT COUNT(*) FROM answers") == [(0,)]
    assert query(db, "SELECT COUNT(*) FROM run_pairs") == [(1,)]
