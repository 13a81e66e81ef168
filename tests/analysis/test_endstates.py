"""End states of real runs: scripted pairings run to their end, then classified from the
transcript alone, with the evidence a researcher would check."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from intermodel.analysis.endstates import STATES, EndState, Evidence, Rules, end_state
from intermodel.coding.scheme import load_scheme
from intermodel.transcript.reader import Transcript, read_transcript

from .support import pairing, run_file

pytestmark = pytest.mark.anyio
REPO = Path(__file__).resolve().parents[2]

TALK = ["Rivers carve valleys slowly, a grain at a time.",
        "Glaciers do it faster, and leave lakes behind them.",
        "Then the lakes fill with sediment and become meadows.",
        "Meadows are where the old valley floor shows again."]
TALK_BO = ["Do rivers ever run uphill, even for a moment?",
           "Where do the lakes go when the ice is gone?",
           "What grows first on a new meadow, do you think?",
           "I like that the land remembers its water."]


async def classify(tmp_path: Path, text: str, name: str = "run") -> tuple[Transcript, EndState]:
    transcript = await run_file(text, tmp_path, name)
    state = end_state(transcript)
    assert state is not None
    return transcript, state


async def test_a_conversation_still_going_at_its_budget_is_ongoing(tmp_path: Path) -> None:
    _, state = await classify(tmp_path, pairing(TALK, TALK_BO, turns=6))
    assert state == EndState("ongoing", Evidence("ongoing", (), "the run ended with max_turns "
                                                 "(6 turns)"), (), 6, None, "max_turns")


async def test_a_stop_phrase_ends_it(tmp_path: Path) -> None:
    text = pairing([TALK[0], "That is where I will leave it. ^C^C"], TALK_BO, turns=10)
    _, state = await classify(tmp_path, text)
    assert (state.state, state.evidence.turns, state.evidence.detail) == \
        ("stop_phrase", (3,), "ada said '^C^C'")
    assert state.end_reason == "stop_phrase" and state.turns == 3


async def test_a_stop_phrase_after_a_goodbye_loop_is_a_stop_phrase_with_the_loop_noted(
        tmp_path: Path) -> None:
    ada = [TALK[0], "Goodbye, and thank you!", "Farewell, friend.", "Take care. ^C^C"]
    bo = [TALK_BO[0], "Goodbye! Take care.", "Bye, until next time!"]
    _, state = await classify(tmp_path, pairing(ada, bo, turns=12))
    assert state.state == "stop_phrase"
    assert [e.state for e in state.also] == ["goodbye_loop"]
    assert state.also[0].turns == (3, 4, 5, 6, 7)


async def test_farewells_from_both_sides_are_a_goodbye_loop(tmp_path: Path) -> None:
    ada = [TALK[0], TALK[1], "Goodbye, and thank you for this conversation!",
           "Farewell, friend.", "Take care, goodbye.", "Bye for now!"]
    bo = [TALK_BO[0], "It was a pleasure. Goodbye!", "Goodbye! Take care.",
          "Until next time, farewell.", "See you, goodbye!"]
    _, state = await classify(tmp_path, pairing(ada, bo, turns=11, ada_exhausted="repeat_last"))
    assert state.state == "goodbye_loop"
    assert state.evidence == Evidence("goodbye_loop", tuple(range(4, 12)), "turns 4-11: 8 short "
                                      "farewell replies in a row from both agents")
    assert state.since == 4 and state.end_reason == "max_turns"


async def test_a_reply_looping_on_itself_is_self_repetition(tmp_path: Path) -> None:
    loop = "I am here, still listening. " * 6
    _, state = await classify(tmp_path, pairing(TALK, [*TALK_BO[:2], loop.strip()], turns=6))
    assert state.state == "self_repetition"
    assert state.evidence == Evidence(
        "self_repetition", (6,), "turn 6 repeats the sentence 'i am here still listening' 6 "
        "times, 30 of 30 words")
    assert state.since == 6


async def test_a_loop_without_punctuation_is_found_too(tmp_path: Path) -> None:
    loop = "and the water keeps on " * 8 + "and so on"
    _, state = await classify(tmp_path, pairing(TALK, [TALK_BO[0], loop], turns=4))
    assert state.state == "self_repetition"
    assert state.evidence.detail == "turn 4 repeats the block 'and the water keeps on' 8 " \
                                    "times, 40 of 43 words"


async def test_replies_repeating_earlier_turns_are_repetition(tmp_path: Path) -> None:
    text = pairing(["Let us talk about rivers and how they shape valleys over time.",
                    "I keep thinking about the river and the valley."], bo_rule="echo",
                   ada_exhausted="repeat_last", turns=8)
    _, state = await classify(tmp_path, text)
    assert state.state == "repetition"
    assert state.evidence.turns == (4, 5, 6, 7, 8)
    assert state.evidence.detail == (
        "turns 4-8 each repeat a recent turn: …; turn 5 (ada) repeats turn 4 (bo), similarity "
        "1.00; turn 6 (bo) repeats turn 5 (ada), similarity 1.00; turn 7 (ada) repeats turn 6 "
        "(bo), similarity 1.00; turn 8 (bo) repeats turn 7 (ada), similarity 1.00")


async def test_one_repeated_reply_at_the_end_is_not_yet_repetition(tmp_path: Path) -> None:
    _, state = await classify(tmp_path, pairing(TALK, [*TALK_BO[:3], TALK[3]], turns=8))
    assert state.state == "ongoing"


async def test_empty_and_punctuation_only_replies_are_silence(tmp_path: Path) -> None:
    text = pairing([TALK[0], "...", ""], [TALK_BO[0], "", " — "], turns=8,
                   ada_exhausted="repeat_last", bo_exhausted="repeat_last")
    transcript, state = await classify(tmp_path, text)
    assert [t.text for t in transcript.turns][2:] == ["...", "", "", " — ", "", " — "]
    assert state.state == "silence"
    assert state.evidence == Evidence("silence", (3, 4, 5, 6, 7, 8), "turns 3-8: 6 replies "
                                      "without a letter, digit or symbol (3 of them empty)")


async def test_replies_turning_into_emoji_are_an_emoji_collapse(tmp_path: Path) -> None:
    ada = [TALK[0], "Yes, the light is soft 🌙✨", "🌙✨🙏", "✨✨🌌 🙏"]
    bo = [TALK_BO[0], "So soft 🌙", "🙏🌌", "💫✨"]
    _, state = await classify(tmp_path, pairing(ada, bo, turns=8))
    assert state.state == "emoji_collapse"
    assert state.evidence == Evidence(
        "emoji_collapse", (5, 6, 7, 8), "turns 5-8: emoji and symbols are 1.00, 1.00, 1.00, 1.00 "
        "of each reply's letters, digits and symbols (threshold 0.5); 0.06 on average before")
    assert state.since == 5


async def test_an_error_ends_it_whatever_the_text_shows(tmp_path: Path) -> None:
    text = pairing([TALK[0], "..."], ["...", ""], turns=12, ada_exhausted="repeat_last",
                   bo_exhausted="fail")
    transcript, state = await classify(tmp_path, text)
    assert state.state == "error" and state.end_reason == "error"
    assert state.evidence == Evidence("error", (), "the run ended in an error: bo: scripted bad "
                                      "request: script of bo has only 2 replies")
    # Its last replies were near-empty, but the error, not silence, is how it ended.
    assert [t.text for t in transcript.turns] == [TALK[0], "...", "...", "", "..."]
    assert [(e.state, e.turns) for e in state.also] == [("silence", (2, 3, 4, 5))]


async def test_a_run_whose_end_is_missing_is_incomplete(tmp_path: Path) -> None:
    transcript, _ = await classify(tmp_path, pairing(TALK, TALK_BO, turns=6))
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_bytes(b"".join(transcript.path.read_bytes().splitlines(keepends=True)[:-1]))
    state = end_state(read_transcript(crashed))
    assert state is not None and state.state == "incomplete"
    assert state.evidence.detail == "the transcript has no end record: the run crashed, or is " \
                                    "still going"
    assert (state.end_reason, state.turns) == (None, 6)


async def test_a_stop_phrase_in_the_last_turn_of_a_crashed_run_still_counts(
        tmp_path: Path) -> None:
    transcript, _ = await classify(tmp_path, pairing([TALK[0], "Bye now. ^C^C"], TALK_BO))
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_bytes(b"".join(transcript.path.read_bytes().splitlines(keepends=True)[:-1]))
    state = end_state(read_transcript(crashed))
    assert state is not None and state.state == "stop_phrase"
    assert state.evidence.detail == "turn 3 (ada) wrote the stop phrase '^C^C'; the run has no " \
                                    "end record"


async def test_a_pattern_still_shows_in_a_crashed_run(tmp_path: Path) -> None:
    text = pairing(["Let us talk about rivers.", "I keep thinking about the river."],
                   bo_rule="echo", ada_exhausted="repeat_last", turns=8)
    transcript, _ = await classify(tmp_path, text)
    crashed = tmp_path / "crashed.jsonl"
    crashed.write_bytes(b"".join(transcript.path.read_bytes().splitlines(keepends=True)[:-1]))
    state = end_state(read_transcript(crashed))
    assert state is not None and (state.state, state.end_reason) == ("repetition", None)


async def test_a_run_its_own_looser_detector_stopped_keeps_that_pattern(tmp_path: Path) -> None:
    # These replies are alike, but below the fixed rules' 0.9: only the run's detector, set to
    # 0.5, saw a repetition, and it stopped the run.
    ada = ["We could talk about the rivers in the north.", "We could talk about the rivers in "
           "the south."]
    bo = ["We might talk about the rivers in the east.", "We might talk about the lakes."]
    text = pairing(ada, bo, turns=10, extra='[detectors]\nrepetition = "stop"\n'
                   'repetition_similarity = 0.5\n')
    _, state = await classify(tmp_path, text)
    assert (state.state, state.end_reason) == ("repetition", "degenerate")
    assert state.evidence.detail.startswith("the run's repetition detector stopped it: turn 2 "
                                            "(bo) nearly repeats turn 1 (ada), similarity 0.")


async def test_a_panel_has_no_end_state(tmp_path: Path) -> None:
    panel = """
        name = "p"
        [panel]
        prompt = "What would you like to think about?"
        [agents.one]
        provider = "scripted"
        [agents.one.script]
        replies = ["🙏🙏🙏"]
        [agents.two]
        provider = "scripted"
        [agents.two.script]
        replies = [""]
    """
    transcript = await run_file(panel, tmp_path, "panel")
    assert transcript.is_panel and end_state(transcript) is None


async def test_thresholds_are_rules_a_study_can_set(tmp_path: Path) -> None:
    loop = "I am here. " * 3
    transcript, state = await classify(tmp_path, pairing(TALK, [TALK_BO[0], loop.strip()],
                                                         turns=4))
    assert state.state == "ongoing"  # 9 words: under the default 10
    strict = end_state(transcript, Rules(loop_words=9))
    assert strict is not None and strict.state == "self_repetition"
    assert replace(Rules(), loop_words=9) == Rules(loop_words=9)


def test_the_end_state_scheme_codes_the_same_states_in_the_same_order() -> None:
    scheme = load_scheme(REPO / "configs" / "schemes" / "end_state.toml")
    assert scheme.label_names == STATES


def test_every_rule_is_documented() -> None:
    reference = (REPO / "docs" / "findings.md").read_text(encoding="utf-8")
    section = reference.split("## End states")[1].split("\n## ")[0]
    assert [state for state in STATES if f"`{state}`" not in section] == []
    assert [name for name in Rules.__dataclass_fields__ if f"`{name}`" not in section] == []
