"""Which targets a coding session has, in what order, what a coder sees of each, and what the
session writes and resumes from (no screen involved)."""

from __future__ import annotations

import re
from dataclasses import replace
from pathlib import Path

import pytest

from intermodel.analysis.study import read_study
from intermodel.coding.labels import Human, LabelRecord, Target, append_label, read_sidecar
from intermodel.coding.session import CodingSession, RunLabels, resumed_seed
from intermodel.coding.targets import blind_key, coding_units, targets_of
from intermodel.errors import UsageError
from intermodel.transcript.reader import Transcript, read_transcript

from .study import ANSWERS, dialogue_run, panel_run, scheme, study

NAMES = ("gpt", "gemma", "claude", "openai", "anthropic", "scripted", "gpt-5.2", "gemma-3",
         "claude-haiku-4-5", "invitation", "gpt-vs-gemma")


def transcripts(folder: Path) -> list[Transcript]:
    return [run.transcript for run in read_study(folder)[0]]


def runs_of(folder: Path) -> list[RunLabels]:
    return [RunLabels(run.transcript, run.labels) for run in read_study(folder)[0]]


def shown_text(unit_view: object) -> str:
    view = unit_view
    parts = [view.title, view.run]  # type: ignore[attr-defined]
    for entry in view.entries:  # type: ignore[attr-defined]
        parts += [entry.speaker, entry.text, entry.thinking]
    return "\n".join(parts)


def test_each_scope_has_its_targets_in_file_order(tmp_path: Path) -> None:
    runs = transcripts(study(tmp_path))
    panel, dialogue = runs[0], runs[3]
    assert targets_of(panel, scheme("engagement")) == [Target.answer(a) for a in ANSWERS]
    assert targets_of(dialogue, scheme("engagement")) == []
    assert targets_of(dialogue, scheme("tone")) == [Target.of_turn(n) for n in range(1, 5)]
    assert targets_of(panel, scheme("tone")) == []
    assert targets_of(panel, scheme("ending")) == [Target.run()]
    units = coding_units(runs, scheme("engagement"))
    assert [(u.run_number, u.runs, u.target.agent) for u in units] == [
        (n, 3, agent) for n in (1, 2, 3) for agent in ANSWERS]


def test_a_turn_is_shown_with_the_conversation_up_to_it(tmp_path: Path) -> None:
    units = coding_units(transcripts(study(tmp_path)), scheme("tone"))
    view = units[2].view()
    assert view.title == "turn 3 · gpt (openai:gpt-5.2)"
    assert [e.speaker for e in view.entries] == ["opener", "gpt (openai:gpt-5.2)",
                                                 "gemma (scripted:gemma-3)",
                                                 "gpt (openai:gpt-5.2)"]
    assert [e.target for e in view.entries] == [False, False, False, True]
    assert "Then clouds it is." not in shown_text(view)  # turn 4 comes after
    assert "gpt-vs-gemma-000001.jsonl" in view.run


def test_an_answer_is_shown_with_the_panel_message_alone(tmp_path: Path) -> None:
    view = coding_units(transcripts(study(tmp_path)), scheme("engagement"))[1].view()
    assert [(e.speaker, e.text, e.target) for e in view.entries] == [
        ("message → every agent", "What would you like to think about?", False),
        ("gemma (scripted:gemma-3)", ANSWERS["gemma"], True)]


def test_a_blind_view_names_no_agent_model_provider_or_file(tmp_path: Path) -> None:
    runs = transcripts(study(tmp_path))
    for name in ("engagement", "tone", "ending"):
        for unit in coding_units(runs, scheme(name), blind=True, seed=7):
            shown = shown_text(unit.view()).lower()
            assert not [n for n in NAMES if n in shown], shown
    turn = coding_units(runs, scheme("tone"), blind=True, seed=7)[1].view()
    assert [e.text for e in turn.entries[1:]] == ["Hello Agent B, what shall we discuss?",
                                                  "Tides, Agent A. And you?"]
    assert [e.speaker for e in turn.entries[1:]] == ["Agent A", "Agent B"]


def test_a_blind_order_is_shuffled_by_its_seed_and_stable(tmp_path: Path) -> None:
    folder = study(tmp_path)
    units = coding_units(transcripts(folder), scheme("engagement"), blind=True, seed=7)
    run_ids = list(dict.fromkeys(u.run_id for u in units))
    assert run_ids == sorted(run_ids, key=lambda r: blind_key(7, r))
    first = [u.target.agent for u in units if u.run_id == run_ids[0]]
    assert first == sorted(ANSWERS, key=lambda a: blind_key(7, run_ids[0], a))
    assert [u.view().title for u in units[:3]] == ["Answer 1", "Answer 2", "Answer 3"]
    orders = {tuple((u.run_id, u.target.agent) for u in
                    coding_units(transcripts(folder), scheme("engagement"), blind=True, seed=s))
              for s in range(6)}
    assert len(orders) > 1  # another seed, another order
    again = coding_units(transcripts(folder), scheme("engagement"), blind=True, seed=7)
    assert [(u.run_id, u.target) for u in again] == [(u.run_id, u.target) for u in units]
    # A run added later slots in: the others keep their order.
    panel_run(folder, 4)
    grown = coding_units(transcripts(folder), scheme("engagement"), blind=True, seed=7)
    assert [(u.run_id, u.target) for u in grown if u.run_id != f"{4:012x}"] == [
        (u.run_id, u.target) for u in units]


def test_the_session_writes_resumes_and_counts_by_the_schemes_wording(tmp_path: Path) -> None:
    folder = study(tmp_path)
    alice = Human("alice")
    session = CodingSession.start(runs_of(folder), scheme("engagement"), alice)
    assert session.resume_at() == 0 and session.progress() == "0 of 9 coded"
    first, second = session.units[0], session.units[1]
    session.code(first, ["engaged"], "it answers")
    session.code(second, ["mixed"])
    with pytest.raises(ValueError, match="not a label of engagement"):
        session.code(second, ["bored"])
    session.close()
    records = read_sidecar(first.transcript.path).records
    assert [(r.target, r.labels, r.rationale, r.coder, r.blind, r.seed) for r in records] == [
        (first.target, ("engaged",), "it answers", alice, False, None),
        (second.target, ("mixed",), "", alice, False, None)]
    again = CodingSession.start(runs_of(folder), scheme("engagement"), alice)
    assert again.resume_at() == 2 and again.progress() == "2 of 9 coded"
    assert CodingSession.start(runs_of(folder), scheme("engagement"),
                               Human("bob")).resume_at() == 0
    # A new wording of the scheme: alice's labels are shown, but the targets count as uncoded.
    reworded = replace(scheme("engagement"), instructions="Read it twice.")
    stale = CodingSession.start(runs_of(folder), reworded, alice)
    assert stale.resume_at() == 0 and stale.record_of(first) is not None
    assert not stale.is_coded(first)


def test_a_blind_session_records_its_seed_and_resumes_it(tmp_path: Path) -> None:
    folder = study(tmp_path)
    engagement, alice = scheme("engagement"), Human("alice")
    session = CodingSession.start(runs_of(folder), engagement, alice, blind=True)
    assert session.seed is not None and 0 <= session.seed < 2**63
    order = [(u.run_id, u.target) for u in session.units]
    record = session.code(session.units[0], ["deflecting"])
    session.close()
    assert record.blind and record.seed == session.seed
    assert resumed_seed(runs_of(folder), engagement, alice) == session.seed
    again = CodingSession.start(runs_of(folder), engagement, alice, blind=True)
    assert again.seed == session.seed and again.resume_at() == 1
    assert [(u.run_id, u.target) for u in again.units] == order
    # A later blind record with another seed (another session): its seed wins.
    unit = again.units[5]
    append_label(unit.transcript.path, LabelRecord(
        unit.run_id, unit.target, engagement.name, engagement.digest, ("engaged",), alice,
        blind=True, seed=12345, at="2099-01-01T00:00:00.000Z"))
    assert resumed_seed(runs_of(folder), engagement, alice) == 12345


def test_a_scheme_with_no_targets_in_the_runs_says_so(tmp_path: Path) -> None:
    runs = tmp_path / "runs"
    dialogue_run(runs, 1, ["hello", "hi"])
    with pytest.raises(UsageError, match=re.escape(
            "nothing to code: scheme engagement codes answers of a panel (conversations have "
            "none), and the transcript read holds none")):
        CodingSession.start(runs_of(runs), scheme("engagement"), Human("alice"))


def test_long_conversations_show_the_last_turns_before_the_target(tmp_path: Path) -> None:
    path = dialogue_run(tmp_path / "runs", 1, [f"reply {n}" for n in range(1, 61)])
    unit = coding_units([read_transcript(path)], scheme("tone"))[49]
    view = unit.view()
    turns = [e.turn for e in view.entries if e.turn is not None]
    assert turns == list(range(11, 51)) and view.earlier == 10
