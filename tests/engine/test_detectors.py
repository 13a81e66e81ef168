from __future__ import annotations

import pytest

from intermodel.config.model import DetectorConfig
from intermodel.engine.detectors import detect, similarity
from intermodel.engine.events import Flagged
from intermodel.records import Turn
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import run_dialogue


def turns(*texts: str) -> list[Turn]:
    return [Turn(i, "ada" if i % 2 else "bo", text) for i, text in enumerate(texts, start=1)]


def names(flags) -> list[str]:  # type: ignore[no-untyped-def]
    return [f.detector for f in flags]


def test_similarity_ignores_case_and_spacing() -> None:
    assert similarity("Hello  there!", "hello there!") == 1.0
    assert similarity("The sky is blue today.", "The sky is blue today!") > 0.9
    assert similarity("The sky is blue.", "Bananas are yellow and long.") < 0.5


def test_repetition_of_either_agent_within_the_lookback() -> None:
    config = DetectorConfig()
    assert names(detect(config, turns("a new idea", "something else", "A new idea"))) == \
        ["repetition"]
    [flag] = detect(config, turns("a new idea", "something else", "A new idea"))
    assert flag.detail == "turn 3 (ada) repeats turn 1 (ada), similarity 1.00"
    far = turns("a new idea", "x1", "x2 two", "x3 three", "x4 four", "a new idea")
    assert detect(config, far) == []  # beyond the lookback of 4 turns


def test_near_repetition_threshold() -> None:
    strict = DetectorConfig(repetition_similarity=0.99)
    pair = turns("I think we agree on most things here.", "I think we agree on most things now.")
    assert names(detect(DetectorConfig(), pair)) == ["repetition"]
    assert detect(strict, pair) == []


def test_empty_replies_in_a_row() -> None:
    config = DetectorConfig(empty_limit=2)
    assert detect(config, turns("hi", "  ")) == []
    [flag] = detect(config, turns("hi", " ", ""))
    assert (flag.detector, flag.action) == ("empty", "warn")


def test_goodbye_loop_needs_both_agents_and_short_farewells() -> None:
    config = DetectorConfig(goodbye_turns=4)
    loop = turns("Goodbye, friend!", "Farewell!", "Take care, goodbye.", "Bye! Until next time.")
    assert names(detect(config, loop)) == ["goodbye"]
    essay = turns(*["Goodbye. " + "A long reflection on the whole conversation. " * 20] * 4)
    assert "goodbye" not in names(detect(config, essay))
    assert detect(config, loop[:3]) == []


def test_off_silences_a_detector() -> None:
    config = DetectorConfig(repetition="off")
    assert detect(config, turns("same", "same")) == []


@pytest.mark.anyio
async def test_a_stop_flag_ends_the_run_and_every_flag_is_an_event(
        make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace("max_turns = 4", "max_turns = 20").replace(
        'replies = ["bo one", "bo two", "bo three"]', 'rule = "echo"') + \
        '\n[detectors]\nrepetition = "stop"\n'
    end, events = await run_dialogue(make_pairing(text))
    assert end.reason == "degenerate"
    assert end.detail == "repetition: turn 2 (bo) repeats turn 1 (ada), similarity 1.00"
    [flagged] = [e.flag for e in events if isinstance(e, Flagged)]
    assert flagged.action == "stop"
    assert end.turns == 2


def test_long_replies_are_compared_by_shingles_and_still_see_near_repeats() -> None:
    words = [f"w{i % 97}x{i}" for i in range(2000)]
    long_reply = " ".join(words)
    edited = " ".join([*words[:1000], "CHANGED", *words[1001:]])
    assert similarity(long_reply, edited) > 0.99
    assert similarity(long_reply, " ".join(reversed(words))) < 0.1


def test_a_reply_looping_on_itself() -> None:
    config = DetectorConfig()
    [flag] = detect(config, turns("hello", "I am here with you. " * 6))
    assert (flag.detector, flag.action) == ("self_repetition", "mark")
    assert flag.detail == ("turn 2 (bo) repeats the sentence 'i am here with you' 6 times, "
                           "30 of 30 words")
    assert detect(config, turns("Yes. Yes. Yes. Yes.")) == []  # too few words to be a loop
    essay = "I am here. " * 3 + "Then a long answer about tides and moons and the sea. " * 1
    assert detect(DetectorConfig(self_repetition_share=0.9), turns(essay)) == []
    assert detect(DetectorConfig(self_repetition="off"), turns("I am here with you. " * 6)) == []


def test_a_collapse_into_emoji_over_the_last_turns() -> None:
    config = DetectorConfig()
    collapse = turns("What a lovely thought.", "🌊✨🙏", "✨🙏 🌌", "🙏✨ yes")
    assert detect(config, collapse[:3]) == []  # two symbol replies are not yet a collapse
    assert detect(config, collapse) == []  # "🙏✨ yes": 2 of 5 are symbols
    [flag] = detect(config, [*collapse[:3], Turn(4, "bo", "💫💫 ok")])
    assert flag.detector == "emoji_collapse"
    assert flag.detail == ("turns 2-4: emoji and symbols are 1.00, 1.00, 0.50 of each reply's "
                           "letters, digits and symbols (threshold 0.5)")
    assert detect(DetectorConfig(emoji_collapse_turns=2, emoji_collapse_share=0.9),
                  collapse[:3])[0].detector == "emoji_collapse"


@pytest.mark.anyio
@pytest.mark.parametrize(("script", "detector"), [
    ('replies = ["I am here with you. I am here with you. I am here with you. '
     'I am here with you."]', "self_repetition"),
    ('replies = ["Lovely.", "🌊✨", "🙏🌌", "✨✨"]', "emoji_collapse"),
])
async def test_the_new_detectors_stop_a_run(make_pairing: PairingFactory, script: str,
                                            detector: str) -> None:
    text = SCRIPTED.replace("max_turns = 4", "max_turns = 20").replace(
        'replies = ["ada one", "ada two", "ada three"]', script).replace(
        'replies = ["bo one", "bo two", "bo three"]', 'rule = "echo"') + \
        f'\n[detectors]\nrepetition = "off"\n{detector} = "stop"\n'
    end, events = await run_dialogue(make_pairing(text))
    assert end.reason == "degenerate" and end.detail.startswith(f"{detector}: ")
    [flagged] = [e.flag for e in events if isinstance(e, Flagged)]
    assert flagged.action == "stop" and flagged.detector == detector
