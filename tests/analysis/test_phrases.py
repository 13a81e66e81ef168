"""Recurring phrases, counted over real transcripts: occurrences, turns and runs, per agent or
model, and only what the models wrote."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from intermodel.analysis.phrases import Phrase, PhraseCounter, most_common_phrases
from intermodel.lineage.branch import prepared_branch
from intermodel.transcript.reader import Transcript, read_transcript

from .support import run_file

pytestmark = pytest.mark.anyio

RIVER = """
name = "river"
[dialogue]
opener = "The river knows the way. The river knows."
max_turns = {turns}
[agents.ada]
provider = "scripted"
model = "{model}"
prompt = "The river knows you are {{name}}."
[agents.ada.script]
replies = {ada}
thinking = ["the river knows, I think", "the river knows"]
[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = {bo}
"""


def river(ada: str, bo: str, turns: int, model: str = "scripted") -> str:
    return RIVER.format(ada=ada, bo=bo, turns=turns, model=model)


async def three_runs(tmp_path: Path) -> list[Transcript]:
    first = await run_file(river('["The river knows the way. The river knows!", '
                                 '"Hello 🙏 friend"]',
                                 '["I doubt the river knows anything.", "🙏 friend 🙏"]', 4),
                           tmp_path, "a", interject=(2, "the river knows, says the human"))
    second = await run_file(river('["The River knows; it always does."]', '["Maybe."]', 2,
                                  model="scripted-v2"), tmp_path, "b")
    third = await run_file(river('["Mountains stay where they are."]', '["They do."]', 2),
                           tmp_path, "c")
    return [first, second, third]


def find(phrases: list[Phrase], text: str, group: str | None = None) -> Phrase | None:
    return next((p for p in phrases if p.text == text and p.group == group), None)


async def test_occurrences_turns_and_runs_of_what_models_wrote(tmp_path: Path) -> None:
    runs = await three_runs(tmp_path)
    phrases = most_common_phrases(runs, n=3, limit=None)
    # Twice in ada's first turn, once in bo's, once in the second run; never from the opener,
    # the role prompt or the human's interjection, which say it too.
    assert find(phrases, "the river knows") == Phrase(("the", "river", "knows"), 4, 2)
    assert find(phrases, "river knows the") == Phrase(("river", "knows", "the"), 1, 1)
    # No phrase spans a sentence end ("... the way. The river ...").
    assert find(phrases, "way the river") is None
    assert find(phrases, "knows it always") is not None  # a semicolon is not a sentence end
    assert phrases[0].text == "the river knows"


async def test_case_punctuation_and_emoji(tmp_path: Path) -> None:
    runs = await three_runs(tmp_path)
    words = most_common_phrases(runs, n=1, limit=None)
    assert find(words, "🙏") == Phrase(("🙏",), 3, 1)
    assert find(words, "river") == Phrase(("river",), 4, 2)  # "River" and "river"
    assert find(words, "!") is None and find(words, ";") is None


async def test_grouped_by_agent_or_by_model(tmp_path: Path) -> None:
    runs = await three_runs(tmp_path)
    by_agent = most_common_phrases(runs, n=3, by="agent", limit=None)
    assert find(by_agent, "the river knows", "ada") == Phrase(("the", "river", "knows"), 3, 2,
                                                              "ada")
    assert find(by_agent, "the river knows", "bo") == Phrase(("the", "river", "knows"), 1, 1,
                                                             "bo")
    by_model = most_common_phrases(runs, n=3, by="model", limit=None)
    assert {p.group for p in by_model} == {"scripted:scripted", "scripted:scripted-v2"}
    assert find(by_model, "the river knows", "scripted:scripted").count == 3  # type: ignore[union-attr]
    assert find(by_model, "the river knows", "scripted:scripted-v2").count == 1  # type: ignore[union-attr]


async def test_the_most_common_of_each_group_with_a_floor_on_runs(tmp_path: Path) -> None:
    runs = await three_runs(tmp_path)
    counter = PhraseCounter(n=2, by="agent")
    for transcript in runs:
        counter.add(transcript)
    top = counter.most_common(2)
    # bo's bigrams all occur once, in one run: the first two alphabetically
    assert [(p.group, p.text) for p in top] == [("ada", "river knows"), ("ada", "the river"),
                                                ("bo", "doubt the"), ("bo", "friend 🙏")]
    recurring = counter.most_common(None, min_runs=2)
    assert [(p.group, p.text, p.runs) for p in recurring] == [("ada", "river knows", 2),
                                                              ("ada", "the river", 2)]
    assert counter.most_common(None, min_count=3) == [
        Phrase(("river", "knows"), 3, 2, "ada"), Phrase(("the", "river"), 3, 2, "ada")]
    assert counter.transcripts == 3


async def test_thinking_is_counted_apart_when_asked(tmp_path: Path) -> None:
    runs = await three_runs(tmp_path)
    thoughts = most_common_phrases(runs, n=3, thinking=True, limit=None)
    # ada thinks "the river knows, I think" before her first reply of each run, and "the river
    # knows" before her second (only the first run has one)
    assert [(p.text, p.count, p.runs) for p in thoughts] == [
        ("the river knows", 4, 3), ("knows i think", 3, 3), ("river knows i", 3, 3)]


async def test_a_branch_counts_only_its_own_turns(tmp_path: Path) -> None:
    first, *_ = await three_runs(tmp_path)
    async with prepared_branch(first.path, 2, out_dir=tmp_path / "branches") as run:
        with anyio.fail_after(20):
            await run.session.run()
    assert run.transcript is not None
    child = read_transcript(run.transcript)
    assert [t.index for t in child.turns] == [1, 2, 3, 4]
    alone = most_common_phrases([first], n=3, limit=None)
    both = most_common_phrases([first, child], n=3, limit=None)
    assert find(both, "the river knows") == find(alone, "the river knows")


async def test_a_panel_counts_its_answers(tmp_path: Path) -> None:
    panel = """
        name = "p"
        [panel]
        prompt = "Say what you think. What you think matters."
        [agents.one]
        provider = "scripted"
        [agents.one.script]
        replies = ["What you think matters, truly."]
        [agents.two]
        provider = "scripted"
        [agents.two.script]
        replies = ["I think what you think matters."]
    """
    transcript = await run_file(panel, tmp_path, "panel")
    phrases = most_common_phrases([transcript], n=3, by="agent", limit=None)
    assert [p.text for p in phrases if p.group == "one"] == [
        "think matters truly", "what you think", "you think matters"]
    assert find(phrases, "what you think", "two") == Phrase(("what", "you", "think"), 1, 1,
                                                            "two")
    assert find(phrases, "say what you") is None  # the panel's prompt is not an answer


def test_n_and_grouping_are_checked() -> None:
    for bad in ({"n": 0}, {"n": 11}, {"by": "provider"}):
        with pytest.raises(ValueError):  # noqa: PT011
            PhraseCounter(**bad)  # type: ignore[arg-type]
