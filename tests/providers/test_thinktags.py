from __future__ import annotations

import random

import pytest

from intermodel.providers.base import TextDelta, ThinkingDelta
from intermodel.providers.thinktags import ThinkTagParser


def run(chunks: list[str]) -> tuple[str, str]:
    parser = ThinkTagParser()
    pieces = [p for c in chunks for p in parser.feed(c)] + parser.flush()
    thinking = "".join(p.text for p in pieces if isinstance(p, ThinkingDelta))
    text = "".join(p.text for p in pieces if isinstance(p, TextDelta))
    return thinking, text


def test_whole_tags_in_one_chunk() -> None:
    assert run(["<think>plan it</think>\n\nThe answer."]) == ("plan it", "The answer.")


def test_tags_split_across_chunks() -> None:
    chunks = ["<thi", "nk>pl", "an</th", "ink", ">\n", "\nAns", "wer"]
    assert run(chunks) == ("plan", "Answer")


@pytest.mark.parametrize("seed", range(20))
def test_any_split_gives_the_same_result(seed: int) -> None:
    source = "<thinking>step 1 < step 2</thinking>Result <b>bold</b> and < think"
    rng = random.Random(seed)
    cuts = sorted(rng.sample(range(1, len(source)), 8))
    chunks = [source[a:b] for a, b in zip([0, *cuts], [*cuts, len(source)], strict=True)]
    assert run(chunks) == ("step 1 < step 2", "Result <b>bold</b> and < think")


def test_text_without_tags_is_never_held_back_longer_than_a_tag() -> None:
    parser = ThinkTagParser()
    out = parser.feed("Hello <")
    assert out == [TextDelta("Hello ")]
    assert parser.feed("br>") == [TextDelta("<br>")]


def test_unclosed_thinking_is_flushed_as_thinking() -> None:
    assert run(["<think>still going"]) == ("still going", "")


def test_text_before_thinking_is_kept() -> None:
    assert run(["Sure. <think>hm</think>Done."]) == ("hm", "Sure. Done.")


def run_as_providers_do(chunks: list[str]) -> tuple[str, str]:
    """As the providers feed it: a chunk the parser would pass as it stands (`plain`, no `<`)
    is taken as text without a call to `feed`."""
    parser = ThinkTagParser()
    pieces: list[TextDelta | ThinkingDelta] = []
    for chunk in chunks:
        if parser.plain and "<" not in chunk:
            pieces.append(TextDelta(chunk))
        else:
            pieces.extend(parser.feed(chunk))
    pieces += parser.flush()
    thinking = "".join(p.text for p in pieces if isinstance(p, ThinkingDelta))
    text = "".join(p.text for p in pieces if isinstance(p, TextDelta))
    return thinking, text


@pytest.mark.parametrize("seed", range(40))
def test_the_providers_shortcut_changes_nothing(seed: int) -> None:
    rng = random.Random(seed)
    source = rng.choice([
        "<think>a plan\nin steps</think>\n\n  The answer, <b>bold</b>.",
        "No thinking at all, just < and > here.",
        "Before. <thinking>hm < hm</thinking>After <think",
        "<thi <think>x</think>   \n",
    ])
    cuts = sorted(rng.sample(range(1, len(source)), rng.randint(1, min(12, len(source) - 1))))
    chunks = [source[a:b] for a, b in zip([0, *cuts], [*cuts, len(source)], strict=True)]
    assert run_as_providers_do(chunks) == run(chunks)


def test_plain_only_outside_thinking_with_nothing_held() -> None:
    parser = ThinkTagParser()
    assert parser.plain
    parser.feed("Hi <thi")
    assert not parser.plain  # "<thi" is held back
    parser.feed("nk>deep")
    assert not parser.plain  # inside thinking
    parser.feed("</think>")
    assert not parser.plain  # the whitespace after the tag is still to be trimmed
    parser.feed("\n\nAnswer")
    assert parser.plain
