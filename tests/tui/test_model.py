"""The screen's model of a run: a completed turn keeps its record's text, once, out of the
garbage collector's walk."""

from __future__ import annotations

import gc

from intermodel.config import parse_pairing
from intermodel.engine.events import (
    RunStarted,
    TextChunk,
    ThinkingChunk,
    TurnCompleted,
    TurnStarted,
)
from intermodel.records import Turn, now_iso
from intermodel.tui.lines import EntryLines, line_text
from intermodel.tui.model import ConversationModel, TurnEntry
from tests.conftest import SCRIPTED


def started() -> ConversationModel:
    model = ConversationModel(lambda: 0.0)
    model.apply([RunStarted("r", parse_pairing(SCRIPTED, source="p.toml"), None, now_iso()),
                 TurnStarted(1, "ada", 1, 10)])
    return model


def test_a_completed_turn_holds_its_records_text_out_of_the_collectors_walk() -> None:
    model = started()
    model.apply([ThinkingChunk(1, "ada", "hm"),
                 *(TextChunk(1, "ada", f"w{i} ") for i in range(500))])
    entry = model.entries["ada"][-1]
    assert isinstance(entry, TurnEntry) and len(entry.text) == 500
    text = "".join(f"w{i} " for i in range(500))
    record = Turn(1, "ada", text, thinking="hm")
    model.apply([TurnCompleted(record)])
    assert entry.text == (record.text,) and entry.text[0] is record.text  # shared, not copied
    assert entry.thinking == ("hm",) and entry.revision == 0  # the same text: nothing stale
    gc.collect()
    assert not gc.is_tracked(entry.text) and not gc.is_tracked(entry.thinking)


def test_a_record_that_differs_from_the_stream_replaces_what_was_shown() -> None:
    model = started()
    model.apply([TextChunk(1, "ada", "as streamed")])
    entry = model.entries["ada"][-1]
    assert isinstance(entry, TurnEntry)
    view = EntryLines(entry)
    assert "as streamed" in [line_text(line) for line in view.render(40, True)]
    model.apply([TurnCompleted(Turn(1, "ada", "as recorded"))])
    assert entry.revision == 1
    assert [line_text(line) for line in view.render(40, True)][1:] == ["as recorded"]


def test_a_pane_that_took_part_of_a_stream_shows_the_rest_once_the_turn_completes() -> None:
    model = started()
    model.apply([TextChunk(1, "ada", "one "), TextChunk(1, "ada", "two ")])
    entry = model.entries["ada"][-1]
    assert isinstance(entry, TurnEntry)
    view = EntryLines(entry)
    view.render(40, True)  # a frame drew the first two pieces
    model.apply([TextChunk(1, "ada", "three"), TurnCompleted(Turn(1, "ada", "one two three"))])
    assert [line_text(line) for line in view.render(40, True)][1:] == ["one two three"]
