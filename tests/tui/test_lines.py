"""A pane's lines: a growing text wraps as the whole text does, and what settled stays put."""

from __future__ import annotations

import dataclasses
import gc

from hypothesis import given, settings
from hypothesis import strategies as st
from rich.style import Style

from intermodel.security.text import terminal_safe
from intermodel.tui.lines import (
    EntryLines,
    Line,
    Palette,
    TextLines,
    line_text,
    rule,
    strip,
    wrap,
)
from intermodel.tui.model import HumanEntry, TurnEntry

STYLE = "reply"
RED = Style(color="red")
PALETTE = Palette(**{field.name: RED for field in dataclasses.fields(Palette)})
# Words, spaces, line breaks (single and doubled), tabs, wide characters and escapes.
PIECES = st.lists(st.text(alphabet=st.sampled_from(list("ab cd\n\t界🙂\x1b")), max_size=12),
                  max_size=40)


def texts(lines: list[Line]) -> list[str]:
    return [line_text(line) for line in lines]


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
    before: list[Line] = []
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
    assert line_text(line) == "[bold]x[/bold] ␛[2J␇"
    painted = strip(line, PALETTE)
    assert painted.text == "[bold]x[/bold] ␛[2J␇"
    assert {segment.style for segment in painted} == {RED}


def test_a_title_rule_fills_the_width_and_is_cut_to_it() -> None:
    assert line_text(rule(" turn 3 ", 12, "title")) == "─ turn 3 ───"
    assert rule(" a very long title indeed ", 10, "title")[1] == 10
    assert strip(rule(" a very long title indeed ", 10, "title"), PALETTE).cell_length == 10
    assert rule(" 界界界界界界 ", 6, "title")[1] == 6  # a wide character cut in half is not drawn
    assert "␛" in line_text(rule(" \x1b[31m ", 20, "title"))


@settings(max_examples=300, deadline=None)
@given(pieces=PIECES, batches=st.lists(st.integers(min_value=0, max_value=40), max_size=6),
       joined_after=st.integers(min_value=0, max_value=6), width=st.integers(1, 30))
def test_pieces_joined_into_one_go_on_from_where_they_were_taken(
        pieces: list[str], batches: list[int], joined_after: int, width: int) -> None:
    """A completed turn's pieces become one string, maybe before a pane took the last of them:
    its lines are then those of the whole text, with nothing lost or taken twice."""
    grown = TextLines()
    source: list[str] = []
    arrived = 0
    for batch, end in enumerate(sorted(batches)):
        source.extend(pieces[arrived:end])  # the model appends to one list
        arrived = max(arrived, min(end, len(pieces)))
        grown.take(source)
        grown.lines(width, STYLE)
        if batch == joined_after:
            source = ["".join(source)]
    joined = ["".join(pieces)]
    grown.take(joined)
    whole = terminal_safe("".join(pieces))
    assert grown.text == whole
    assert texts(grown.lines(width, STYLE)) == texts(wrap(whole, width, STYLE))
    assert not grown.take(joined)


def test_kept_lines_drop_out_of_the_collectors_walk() -> None:
    """The lines a pane keeps are plain tuples: after one collection the collector no longer
    walks them (a Textual Strip would be ten tracked objects a line)."""
    entry = TurnEntry(3, "ada", state="done", thinking=["a thought\n\nand more"],
                      text=[f"word{i} " for i in range(300)])
    human = HumanEntry("hello there " * 20, ("ada", "bob"), 1)
    views = [EntryLines(entry), EntryLines(human)]
    lines = [line for view in views for line in view.render(30, thinking_shown=True)]
    assert len(lines) > 40
    gc.collect()
    assert not any(gc.is_tracked(line) for line in lines)


def test_a_persons_message_is_painted_with_its_head_in_bold() -> None:
    view = EntryLines(HumanEntry("[b]hi[/b]", ("ada",), 1))
    blank, first, after = view.render(40, thinking_shown=True)
    assert line_text(blank) == line_text(after) == ""
    painted = strip(first, PALETTE)
    assert painted.text == "▌ ✎ human → ada: [b]hi[/b]"
    bold = "".join(segment.text for segment in painted if segment.style and segment.style.bold)
    assert bold == "▌ ✎ human → ada: "
    assert {segment.style.color for segment in painted if segment.style} == {RED.color}
