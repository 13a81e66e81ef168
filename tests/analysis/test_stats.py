"""Run stats, rows and tables from transcripts of real (scripted) runs."""

from __future__ import annotations

import csv
import io
import json
import statistics
from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.analysis import (
    collect,
    group_summary,
    render_table,
    rows,
    run_stats,
    to_csv,
    to_json,
)
from intermodel.config.model import AgentConfig, Pairing
from intermodel.engine.dialogue import Dialogue
from intermodel.engine.events import Event, TurnStarted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import ProviderError, RateLimited, StreamInterrupted
from intermodel.lineage.resume import prepared_resume
from intermodel.providers.base import Provider
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import RunEnd
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.conftest import PairingFactory
from tests.fakes import FailingProvider

pytestmark = pytest.mark.anyio

# Known reply lengths: 7, 15 and 3 characters (2, 3 and 1 words). bo echoes ada, so its replies
# are the same and every one of them is flagged as a repetition.
RICH = """
name = "rich-pair"

[dialogue]
opener = "Hello there."
max_turns = 6

[retry]
backoff_initial = 0.01
backoff_max = 0.02

[agents.ada]
provider = "scripted"
prompt = "You are {name}, talking with {partner}."
[agents.ada.price]
input = 3.0
output = 15.0
[agents.ada.script]
replies = ["one two", "three four five", "six"]
thinking = ["hmm", "", "aha!"]
first_token_delay = 0.02

[agents.bo]
provider = "scripted"
model = "tiny-1"
prompt = "You are {name}."
[agents.bo.price]
input = 1.0
output = 2.0
[agents.bo.script]
rule = "echo"
"""

PLAIN = """
name = "plain"

[dialogue]
opener = "Hi."
max_turns = {turns}
stop_phrases = ["^C^C"]

[agents.ada]
provider = "scripted"
[agents.ada.script]
replies = {ada}

[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = ["bo one", "bo two"]
"""

React = Callable[[Dialogue, Event], None]


def plain(make_pairing: PairingFactory, turns: int = 4,
          ada: Sequence[str] = ("ada one", "ada two")) -> Pairing:
    return make_pairing(PLAIN.format(turns=turns, ada=json.dumps(list(ada))))


async def record(pairing: Pairing, folder: Path, *, react: React | None = None,
                 failures: Mapping[str, Sequence[ProviderError | None]] | None = None,
                 origin: Mapping[str, Any] | None = None) -> Path:
    """Run `pairing` to its end into a new transcript under `folder`; `failures` makes an
    agent's calls fail as planned (see FailingProvider)."""
    def providers(agent: AgentConfig, partner: str, _: Credentials) -> Provider:
        provider = ScriptedProvider(agent, partner)
        plan = (failures or {}).get(agent.name)
        return FailingProvider(provider, plan) if plan else provider

    async with prepared_run(pairing, out_dir=folder, provider_factory=providers,
                            origin=origin) as run:
        subscription = run.session.subscribe()

        async def watch() -> None:
            async for event in subscription:
                if react is not None:
                    react(run.session, event)

        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:
                tg.start_soon(watch)
                await run.session.run()
    assert run.transcript is not None
    return run.transcript


def interject_once(turn: int, text: str, to: str) -> React:
    """Interject when turn `turn` starts (its first attempt only), so the message is aimed at the
    turn after it."""
    sent: list[bool] = []

    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnStarted) and event.turn == turn and not sent:
            sent.append(dialogue.controls.interject(text, to=to))

    return react


async def record_rich(make_pairing: PairingFactory, folder: Path) -> Path:
    failures: list[ProviderError | None] = [
        RateLimited("slow down", provider="fake", status=429, retry_after=0.01), None,
        StreamInterrupted("cut", provider="fake"), None]
    return await record(make_pairing(RICH), folder, failures={"bo": failures},
                        react=interject_once(2, "Please be brief.", to="a"))


def tear(path: Path, keep_lines: int) -> None:
    """Keep the first `keep_lines` records and half of the next, as a crash mid-write leaves."""
    lines = path.read_bytes().splitlines(keepends=True)
    path.write_bytes(b"".join(lines[:keep_lines]) + lines[keep_lines][:30])


async def test_agent_and_run_figures_are_computed_from_the_records(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    transcript = read_transcript(await record_rich(make_pairing, tmp_path))
    stats = run_stats(transcript)
    ada, bo = stats.agents
    for agent in (ada, bo):
        assert agent.turns == 3
        assert agent.reply_chars_mean == pytest.approx(25 / 3)  # 7, 15, 3
        assert agent.reply_chars_median == 7
        assert agent.reply_words_mean == pytest.approx(2.0)  # 2, 3, 1
    assert (ada.model, ada.served_models, bo.model, bo.served_models) == \
        ("scripted", ("scripted",), "tiny-1", ("tiny-1",))
    assert ada.thinking_chars == len("hmm") + len("aha!")
    assert bo.thinking_chars == 0
    assert (ada.retries, bo.retries, stats.retries) == (0, 2, 2)
    assert ada.ttft_median is not None and ada.ttft_median >= 0.02  # first_token_delay
    assert ada.latency_mean is not None and ada.latency_mean >= ada.ttft_median
    assert dict(ada.stop_reasons) == {"end_turn": 3}

    # Cost by hand, from the tokens the turns recorded and the prices of the pairing file.
    def tokens(name: str) -> tuple[int, int]:
        own = [t for t in transcript.turns if t.agent == name]
        return (sum(t.usage.input_tokens or 0 for t in own),
                sum(t.usage.output_tokens or 0 for t in own))

    (ada_in, ada_out), (bo_in, bo_out) = tokens("ada"), tokens("bo")
    assert (ada.input_tokens, ada.output_tokens) == (ada_in, ada_out) and ada_in > 0
    assert ada.cost == pytest.approx((ada_in * 3.0 + ada_out * 15.0) / 1e6)
    assert bo.cost == pytest.approx((bo_in * 1.0 + bo_out * 2.0) / 1e6)
    assert stats.cost == pytest.approx(ada.cost + bo.cost)

    assert (stats.pairing, stats.turns, stats.max_turns) == ("rich-pair", 6, 6)
    assert stats.finished and stats.end_reason == "max_turns" and stats.ended_by is None
    assert dict(stats.flags) == {"repetition": 3}  # each of bo's echoes
    assert (stats.interjections, stats.trims, stats.resumes, stats.discards) == (1, 0, 0, 0)
    assert stats.experiment is None and stats.parent is None and not stats.torn
    assert transcript.end is not None and stats.duration == transcript.end.duration


async def test_who_ended_it_and_a_missing_price(make_pairing: PairingFactory,
                                                tmp_path: Path) -> None:
    pairing = plain(make_pairing, turns=8, ada=["hello", "that is all ^C^C"])
    stats = run_stats(read_transcript(await record(pairing, tmp_path)))
    assert (stats.end_reason, stats.ended_by, stats.turns) == ("stop_phrase", "ada", 3)
    assert stats.end_detail is not None and "^C^C" in stats.end_detail
    assert stats.cost is None and all(a.cost is None for a in stats.agents)
    assert [a.turns for a in stats.agents] == [2, 1]


async def test_a_torn_transcript_is_unfinished(make_pairing: PairingFactory,
                                               tmp_path: Path) -> None:
    path = await record(plain(make_pairing), tmp_path)
    tear(path, keep_lines=3)  # header and two turns
    stats = run_stats(read_transcript(path))
    assert stats.torn and not stats.finished
    assert (stats.turns, stats.duration, stats.end_reason) == (2, None, None)
    assert "unfinished, torn" in render_table([stats])


async def test_a_resumed_run_adds_up_its_processes(make_pairing: PairingFactory,
                                                   tmp_path: Path) -> None:
    pairing = plain(make_pairing, turns=6)

    def stop_at_third(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnStarted) and event.turn == 3:
            dialogue.controls.stop(now=True, reason="interrupted")

    stopped = await record(pairing, tmp_path / "stopped", react=stop_at_third)
    crashed = await record(pairing, tmp_path / "crashed")
    lines = crashed.read_text(encoding="utf-8").splitlines(keepends=True)
    crashed.write_text("".join(lines[:3]), encoding="utf-8")  # killed after turn 2: no end
    for path in (stopped, crashed):
        async with prepared_resume(path) as run:
            await run.session.run()

    stats = run_stats(read_transcript(stopped))
    ends = [r for r in read_transcript(stopped).records if isinstance(r, RunEnd)]
    assert [e.reason for e in ends] == ["interrupted", "max_turns"]
    assert stats.duration == pytest.approx(sum(e.duration for e in ends))
    assert (stats.resumes, stats.discards, stats.turns, stats.end_reason) == \
        (1, 1, 6, "max_turns")

    # The killed process left no end record: its time runs from the start to its last record.
    transcript = read_transcript(crashed)
    end = transcript.end
    assert end is not None

    def moment(stamp: str) -> datetime:
        return datetime.fromisoformat(stamp.replace("Z", "+00:00"))

    first = (moment(transcript.turns[1].at) - moment(transcript.header["started_at"]))
    assert run_stats(transcript).duration == pytest.approx(first.total_seconds() + end.duration)


async def test_a_branch_counts_only_its_own_turns_per_agent(make_pairing: PairingFactory,
                                                            tmp_path: Path) -> None:
    parent = {"run_id": "0123456789ab", "transcript": "parent.jsonl", "after_turn": 2}
    path = await record(plain(make_pairing), tmp_path, origin={"parent": parent})
    stats = run_stats(read_transcript(path))
    assert (stats.turns, stats.inherited_turns) == (4, 2)
    assert [a.turns for a in stats.agents] == [1, 1]
    assert stats.agents[0].reply_chars_mean == len("ada two")  # turn 3 only
    row = rows([stats])[0]
    assert (row["parent_run_id"], row["parent_after_turn"], row["inherited_turns"]) == \
        ("0123456789ab", 2, 2)


def experiment(pairing: str, opener: str, replicate: int) -> dict[str, Any]:
    entry = f"{pairing}/{opener}/r{replicate}"
    return {"experiment": {"name": "night", "entry": entry, "pairing": pairing,
                           "opener": opener, "replicate": replicate, "seed": None}}


async def make_experiment_folder(make_pairing: PairingFactory, folder: Path) -> Path:
    """Two groups of an experiment, a run outside it, a torn run, and two files that are not
    transcripts."""
    echo = make_pairing(RICH.replace("max_turns = 6", "max_turns = 4"))
    for replicate in (1, 2):
        await record(echo, folder, origin=experiment("echo", "hello", replicate))
    await record(plain(make_pairing, turns=8, ada=["hi", "bye ^C^C"]), folder,
                 origin=experiment("plain", "hello", 1))
    await record(plain(make_pairing), folder / "more", origin=experiment("plain", "hello", 2))
    torn = await record(plain(make_pairing), folder, origin=experiment("plain", "hello", 3))
    tear(torn, keep_lines=2)
    await record(plain(make_pairing), folder)
    (folder / "notes.jsonl").write_text('{"hello": 1}\n', encoding="utf-8")
    (folder / "more" / "damaged.jsonl").write_text(
        '{"kind":"header","format":1,"config":{}}\nnot json\n', encoding="utf-8")
    return folder


async def test_a_folder_is_collected_and_grouped_by_pairing_and_opener(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    folder = await make_experiment_folder(make_pairing, tmp_path / "night")
    runs, skipped = collect(folder)
    assert len(runs) == 6
    assert sorted(Path(s.split(":")[0]).name for s in skipped) == ["damaged.jsonl",
                                                                   "notes.jsonl"]
    assert {r.opener for r in runs} == {"hello", None}

    groups = {g["pairing"]: g for g in group_summary(runs)}
    echo, plain_group = groups["echo"], groups["plain"]
    assert echo == {"experiment": "night", "pairing": "echo", "opener": "hello", "runs": 2,
                    "finished": 2, "turns_mean": 4.0, "end_reasons": {"max_turns": 1.0},
                    "ended_by": {}, "flags": {"repetition": 1.0}}
    assert plain_group["runs"] == 3 and plain_group["finished"] == 2
    assert plain_group["turns_mean"] == pytest.approx(statistics.fmean([3, 4, 1]))
    assert plain_group["end_reasons"] == pytest.approx(
        {"max_turns": 1 / 3, "stop_phrase": 1 / 3, "unfinished": 1 / 3})
    assert plain_group["ended_by"] == pytest.approx({"ada": 1 / 3})
    assert plain_group["flags"] == {}

    table = render_table(runs)
    assert "Experiment groups" in table
    assert "max_turns 33%, stop_phrase 33%, unfinished 33%" in table
    assert "echo / hello / r2" in table


async def test_rows_csv_and_json_agree_and_are_flat(make_pairing: PairingFactory,
                                                    tmp_path: Path) -> None:
    folder = await make_experiment_folder(make_pairing, tmp_path / "night")
    runs, _ = collect(folder)
    table = rows(runs)
    assert len(table) == 2 * len(runs)  # one row per run and agent
    columns = list(table[0])
    assert all(list(row) == columns for row in table)
    for name in ("run_id", "pairing", "experiment", "opener", "replicate", "run_turns",
                 "end_reason", "ended_by", "flags_repetition", "agent", "model",
                 "served_models", "reply_chars_mean", "reply_chars_median", "latency_median",
                 "ttft_mean", "cost", "run_cost"):
        assert name in columns
    assert all(not isinstance(v, dict | list) for row in table for v in row.values())
    echo = next(r for r in table if r["experiment_pairing"] == "echo" and r["agent"] == "bo")
    assert (echo["reply_chars_median"], echo["flags_repetition"], echo["served_models"]) == \
        ((7 + 15) / 2, 2, "tiny-1")

    parsed = list(csv.DictReader(io.StringIO(to_csv(runs))))
    assert [list(r) for r in parsed[:1]] == [columns]
    assert [r["run_id"] for r in parsed] == [r["run_id"] for r in table]
    assert parsed[0]["ended_by"] in ("", "ada")  # None is an empty cell
    assert json.loads(to_json(runs)) == table


async def test_the_table_makes_untrusted_names_inert(make_pairing: PairingFactory,
                                                     tmp_path: Path) -> None:
    pairing = make_pairing(PLAIN.format(turns=2, ada='["hi"]').replace(
        'name = "plain"', r'name = "evil\u001b[2J\u202e"').replace(
        "[agents.bo.script]", 'model = "m\\u001b]0;title\\u0007"\n[agents.bo.script]'))
    runs, _ = collect(await record(pairing, tmp_path))
    table = render_table(runs)
    assert "\x1b" not in table and "\x07" not in table and "\u202e" not in table
    assert "evil␛[2J" in table and "m␛]0;title␇" in table
    assert "\n\n" not in table.strip()  # one line per run and agent


def test_a_missing_path_is_reported_not_raised(tmp_path: Path) -> None:
    assert collect(tmp_path / "nowhere") == ([], [f"{tmp_path / 'nowhere'}: no such file or "
                                                  "folder"])
    assert render_table([]) == "no runs\n" and to_csv([]) == "" and rows([]) == []
