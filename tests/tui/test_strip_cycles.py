"""Painted lines free themselves: a strip divided at its own end does not hold itself, and every
division gives what Textual's own gives."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.segment import Segment
from rich.style import Style
from textual.strip import Strip

from intermodel.tui import strip_cycles

TEXTUAL_DIVIDE = strip_cycles._textual_divide
SEGMENTS = st.lists(st.tuples(st.text(alphabet=st.sampled_from(list("ab 界🙂")), min_size=1,
                                      max_size=6), st.sampled_from([None, Style(bold=True)])),
                    max_size=5)


@pytest.fixture
def no_automatic_collections() -> Iterator[None]:
    strip_cycles.install()
    enabled = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        yield
    finally:
        if enabled:
            gc.enable()


def test_a_line_divided_at_its_end_is_freed_without_the_collector(
        no_automatic_collections: None) -> None:
    line = Strip([Segment("a painted line", Style(bold=True))])
    [whole] = line.divide([line.cell_length])  # how the compositor cuts an unshared line
    assert whole is line
    parts = line.divide([1, line.cell_length])  # a cut within it: cached, as Textual does
    assert line.divide([1, line.cell_length]) is parts
    del line, whole, parts
    assert gc.collect() == 0  # nothing was left in a cycle for the collector to find


def test_installing_is_once_for_the_process() -> None:
    strip_cycles.install()
    strip_cycles.install()
    assert strip_cycles.installed()
    assert strip_cycles._textual_divide is TEXTUAL_DIVIDE


@settings(max_examples=200, deadline=None)
@given(segments=SEGMENTS, cuts=st.lists(st.integers(min_value=0, max_value=40), max_size=5))
def test_every_division_is_textuals_own(segments: list[tuple[str, Style | None]],
                                        cuts: list[int]) -> None:
    strip_cycles.install()
    line = Strip([Segment(text, style) for text, style in segments])
    for at in (sorted(set(cuts)), [*sorted(set(cuts)), line.cell_length]):
        ours = line.divide(iter(at))  # (an iterator is read once)
        theirs = TEXTUAL_DIVIDE(Strip(list(line)), at)
        assert [(part.text, part.cell_length, list(part)) for part in ours] == \
               [(part.text, part.cell_length, list(part)) for part in theirs]
