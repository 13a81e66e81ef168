"""Measures of one reply: words, near-emptiness, the share of emoji and symbols, loops."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intermodel.engine.textmeasures import (
    Loop,
    is_near_empty,
    self_repetition,
    sentences,
    symbol_share,
    words,
)


def test_words_are_case_folded_and_punctuation_goes() -> None:
    assert words("Hello, WORLD! Don’t be self‐aware… (really)") == [
        "hello", "world", "don't", "be", "self-aware", "really"]
    assert words("Straße STRASSE") == ["strasse", "strasse"]
    assert words("cafe\u0301 café") == ["café", "café"]  # composed or not, one word
    assert words("हिन्दी भाषा") == ["हिन्दी", "भाषा"]  # vowel signs stay with their letters
    assert words("3.14 — $5 + 2 = 7") == ["3", "14", "5", "2", "7"]


def test_emoji_and_pictographs_are_words_of_their_own() -> None:
    assert words("Thanks🙏✨ 👩‍💻 🇫🇷 3️⃣ 👍🏽 ★ ❤️") == [
        "thanks", "🙏", "✨", "👩\u200d💻", "🇫🇷", "3️⃣", "👍🏽", "★", "❤️"]


def test_han_and_kana_are_taken_a_character_at_a_time() -> None:
    assert words("漢字です。") == ["漢", "字", "で", "す"]
    assert words("AI与人类") == ["ai", "与", "人", "类"]


def test_sentences_end_at_stops_and_line_breaks() -> None:
    assert sentences("One two. Three!\nFour? … 。") == [["one", "two"], ["three"], ["four"]]
    assert sentences("") == []


@pytest.mark.parametrize(("text", "near_empty"), [
    ("", True), ("   \n", True), ("...", True), (" — ", True), ("*…*", True),
    ("ok", False), ("🙏", False), ("7", False), ("★", False), ("→", False),
])
def test_near_empty_replies(text: str, near_empty: bool) -> None:
    assert is_near_empty(text) is near_empty


@pytest.mark.parametrize(("text", "share"), [
    ("Thank you 🙏✨", 2 / 10),
    ("🙏✨🌌", 1.0),
    ("✨ . ✨ ... ✨", 1.0),  # punctuation is not counted either way
    ("👩‍💻", 1.0),  # the joiner does not count
    ("👍🏽👍🏽", 1.0),  # nor the skin tone
    ("a + b = c", 2 / 5),
    ("Plain words only.", 0.0),
    ("...", None),
    ("", None),
])
def test_the_share_of_emoji_and_symbols(text: str, share: float | None) -> None:
    assert symbol_share(text) == share


def test_a_sentence_repeated_through_a_reply() -> None:
    assert self_repetition("I am here. " * 6) == Loop("sentence", ("i", "am", "here"), 6, 18,
                                                      18)
    spread = "I see you. The sky is wide. I see you. It rains. I see you."
    assert self_repetition(spread) == Loop("sentence", ("i", "see", "you"), 3, 9, 15)


def test_a_block_repeated_back_to_back_without_punctuation() -> None:
    loop = self_repetition("and then " * 5 + "we went home")
    assert loop == Loop("block", ("and", "then"), 5, 10, 13)
    assert loop.share == 10 / 13
    assert loop.describe() == "the block 'and then' 5 times, 10 of 13 words"
    lines = "Line one is here.\nLine two is there.\n" * 3
    assert self_repetition(lines) == Loop(
        "block", ("line", "one", "is", "here", "line", "two", "is", "there"), 3, 24, 24)


def test_nothing_repeats() -> None:
    assert self_repetition("A normal reply, with no loop at all.") is None
    assert self_repetition("") is None
    assert self_repetition("...") is None


_WORD = st.text(st.sampled_from("abcdefghij"), min_size=1, max_size=6)


@given(st.lists(_WORD, min_size=1, max_size=12), st.integers(2, 12))
def test_any_sentence_said_k_times_is_found_k_times(sentence: list[str], k: int) -> None:
    loop = self_repetition((" ".join(sentence) + ". ") * k)
    assert loop is not None
    assert loop.covered == loop.total == k * len(sentence)
    assert loop.repeats >= k


@given(st.text(max_size=200))
def test_measures_agree_on_any_text(text: str) -> None:
    share = symbol_share(text)
    assert is_near_empty(text) == (share is None)
    assert share is None or 0.0 <= share <= 1.0
    found = words(text)
    assert all(word and not any(c.isspace() for c in word) for word in found)
    loop = self_repetition(text)
    assert loop is None or (loop.repeats >= 2 and 0 < loop.covered <= loop.total)
    # Cutting a reply into sentences loses no word and makes none.
    assert [word for sentence in sentences(text) for word in sentence] == found


@given(st.text(st.characters(max_codepoint=127), max_size=200))
def test_plain_ascii_takes_a_shortcut_to_the_same_words(text: str) -> None:
    assert [word for sentence in sentences(text) for word in sentence] == words(text)
