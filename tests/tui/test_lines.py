"""A pane's lines: a growing text wraps as the whole text does, and what settled stays put."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.style import Style

from intermodel.security.text import terminal_safe
from intermodel.tui.lines import TextLines, rule, wrap

STYLE = Style(color="red")
# Words, spaces, line breaks (single and doubled), tabs, wide characters and escapes.
PIECES = st.lists(st.text(alphabet=st.sampled_from(list("ab cd\n\t界🙂\x1b")), max_size=12),
                  max_size=40)


def texts(lines: list) -> list[str]:
    return [line.text for line in lines]


@settings(max_examples=300, deadline=None)
@given(pieces=PIECES, width=st.integers(min_value=1, max_value=30),
       prefix=st.sampled_from(["", "  "]))
def test_a_text_taken_piece_by_piece_wraps_as_the_whole_does(pieces: list[str], width: int,
                                                             prefix: str) -> None:
    grown = TextLines()
    for end in range(len(pieces) + 1):
        grown.take(pieces[:end])
        whole = terminal_safe("".join(pieces[:end]))
        assert texts(grown.lines(width, STYLE, prefix)) == texts(wrap(whole, width, STYLE, prefix))


@settings(max_examples=200, deadline=None)
@given(pieces=PIECES, width=st.integers(min_value=4, max_value=30))
def test_lines_before_the_last_line_break_are_kept_as_they_were(pieces: list[str],
                                                                width: int) -> None:
    """A pane repaints only lines that are new objects: those of text before a line break that
    was already there are drawn once."""
    grown = TextLines()
    before: list = []
    settled = 0  # lines of the text before its last line break, before this piece
    for end in range(len(pieces) + 1):
        grown.take(pieces[:end])
        lines = grown.lines(width, STYLE)
        assert all(a is b for a, b in zip(before[:settled], lines[:settled], strict=True))
        text = grown.text
        cut = text.rfind("\n", 0, len(text) - 1)
        settled = len(wrap(text[:cut], width, STYLE)) if cut > 0 else (1 if cut == 0 else 0)
        before = lines


def test_model_text_is_literal_and_its_controls_visible() -> None:
    [line] = wrap(terminal_safe("[bold]x[/bold] \x1b[2J\x07"), 80, STYLE)
    assert line.text == "[bold]x[/bold] ␛[2J␇"
    assert {segment.style for segment in line} == {STYLE}


def test_a_title_rule_fills_the_width_and_is_cut_to_it() -> None:
    assert rule(" turn 3 ", 12, STYLE).text == "─ turn 3 ───"
    assert rule(" a very long title indeed ", 10, STYLE).cell_length == 10
    assert "␛" in rule(" \x1b[31m ", 20, STYLE).text
