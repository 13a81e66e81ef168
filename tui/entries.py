"""Widgets for one pane entry: an agent's turn (thinking and reply, streamed) or a human message.

A streaming turn is cheap to update: its text lives in a few plain `Static` blocks, and only the
last block is re-rendered when a batch of tokens arrives. Once the last block passes
`BLOCK_CHARS`, it is cut at its last line break and a new block starts, so a reply of thousands of
tokens never re-wraps more than a paragraph or two per frame. And while the last block keeps its
number of lines (most frames only lengthen its last line), it is repainted without a new layout.
"""

from __future__ import annotations

from typing import cast

from textual.containers import Vertical
from textual.content import Content
from textual.css.styles import RulesMap
from textual.geometry import Size
from textual.widget import Widget
from textual.widgets import Static

from intermodel.security.text import terminal_safe

from .model import Entry, HumanEntry, NoteEntry, TurnEntry
from .text import compact, plain

__all__ = [
    "BLOCK_CHARS",
    "FLIPPED",
    "HIDDEN",
    "Block",
    "EntryView",
    "GrowsInPlace",
    "HumanView",
    "NoteView",
    "ThinkingToggle",
    "TurnView",
    "entry_view",
]

BLOCK_CHARS = 1500
HIDDEN = "-thinking-hidden"  # the screen's class: thinking is hidden (in turns not flipped)
FLIPPED = "-thinking-flipped"  # a turn's class: its thinking shows the other way from the rest


class GrowsInPlace(Widget):
    """A widget whose size changes as a stream grows it (a block of text, a turn, a pane).

    After a layout Textual stores each widget's new virtual size through a reactive that asks for
    another layout, so every layout that grew a block, its turn and its pane was followed by a
    second, identical one, and a second repaint of the whole pane (about one per line of streamed
    text). The layout just done already placed everything by that size; a scrollbar that appears
    or goes still asks for its own layout. (Mixed in as a second base: Textual takes CSS type
    names and default styles from the first.)"""

    def _size_updated(self, size: Size, virtual_size: Size, container_size: Size,
                      layout: bool = True) -> bool:
        return super()._size_updated(size, virtual_size, container_size, layout=False)


class Block(Static, GrowsInPlace):
    """A piece of a turn's text (see `_Blocks`)."""


class _Blocks:
    """The text of one kind (thinking or reply) of a turn, as a run of Static blocks."""

    def __init__(self, view: TurnView, classes: str) -> None:
        self._view = view
        self._classes = classes
        self.blocks: list[Static] = []
        self.shown = 0  # pieces of the entry already on screen
        self._tail = ""  # the text of the last block
        self._tail_lines = 0  # its height when last laid out

    def clear(self) -> None:
        for block in self.blocks:
            block.remove()
        self.blocks, self.shown, self._tail, self._tail_lines = [], 0, "", 0

    def catch_up(self, pieces: list[str], before: Widget | None = None) -> None:
        if self.shown >= len(pieces):
            return
        added = terminal_safe("".join(pieces[self.shown:]))
        self.shown = len(pieces)
        if not added:
            return
        tail = self._tail + added
        new: list[Static] = []
        while len(tail) > BLOCK_CHARS and (cut := tail.rfind("\n", 1, len(tail) - 1)) > 0:
            self._set_last(tail[:cut], new)
            new.append(self._block(""))
            tail = tail[cut + 1:]
        self._set_last(tail, new)
        self._tail = tail
        if new:
            self.blocks.extend(new)
            self._view.mount_all(new, before=before)

    def _set_last(self, text: str, new: list[Static]) -> None:
        if new:
            new[-1].update(Content(text))
        elif self.blocks:
            self._grow(self.blocks[-1], Content(text))
        else:
            new.append(self._block(text))

    def _grow(self, block: Static, content: Content) -> None:
        """Update the mounted last block; only a change of height needs a layout pass."""
        width = block.content_size.width
        # A widget's styles are the rules map Textual itself measures with (typed otherwise).
        lines = content.get_height(cast("RulesMap", block.styles), width) if width else -1
        block.update(content, layout=lines != self._tail_lines or lines < 0)
        self._tail_lines = lines

    def _block(self, text: str) -> Static:
        return Block(Content(text), markup=False, classes=self._classes)


class ThinkingToggle(Static):
    """The line above a turn's thinking: shows whether it is visible; a click flips it for this
    turn alone.

    Whether thinking shows is decided by CSS (see app.tcss): everywhere, by the screen's class
    `HIDDEN`; in one turn, by the turn's class `FLIPPED`, which turns it the other way. This line
    only reads them (the app asks it to again when the screen's class changes).
    """

    def __init__(self, view: TurnView) -> None:
        super().__init__(markup=False)
        self._view = view

    @property
    def thinking_shown(self) -> bool:
        view = self._view
        return view.screen.has_class(HIDDEN) == view.has_class(FLIPPED)

    def refresh_label(self) -> None:
        words = sum(p.count(" ") + p.count("\n") for p in self._view.entry.thinking)
        size = f" · ~{compact(words)} words" if words else ""
        if self.thinking_shown:
            self.update(Content(f"▾ thinking{size}"))
        else:
            self.update(Content(f"▸ thinking{size} (hidden)"))

    def on_click(self) -> None:
        self._view.toggle_class(FLIPPED)
        self.refresh_label()


class TurnView(Vertical, GrowsInPlace):
    """One turn: a title rule, optional thinking (dimmed, collapsible), then the reply."""

    def __init__(self, entry: TurnEntry) -> None:
        super().__init__(classes="turn")
        self.entry = entry
        self._revision = entry.revision
        self._toggle: ThinkingToggle | None = None
        self._title_text = ""
        self._thinking = _Blocks(self, "thinking")
        self._reply = _Blocks(self, "reply")

    def on_mount(self) -> None:
        self.sync()

    def sync(self) -> None:
        """Show whatever the entry gained since the last call."""
        entry = self.entry
        if entry.revision != self._revision:  # a retry or the record replaced the pieces
            self._revision = entry.revision
            self._thinking.clear()
            self._reply.clear()
        if any(entry.thinking):
            if self._toggle is None:
                self._toggle = ThinkingToggle(self)
                first = self._reply.blocks[0] if self._reply.blocks else None
                self.mount(self._toggle, before=first)
            shown = self._thinking.shown
            self._thinking.catch_up(entry.thinking,
                                    before=self._reply.blocks[0] if self._reply.blocks else None)
            if self._thinking.shown != shown:
                self._toggle.refresh_label()
        self._reply.catch_up(entry.text)
        self.set_class(entry.state in ("discarded", "retrying"), "-discarded")
        self.set_class(entry.state in ("waiting", "streaming"), "-live")
        title = self._title()
        if title != self._title_text:  # setting a title repaints the whole turn
            self._title_text = title
            self.border_title = plain(title)

    def _title(self) -> str:
        entry = self.entry
        parts = ["answer" if entry.answer else f"turn {entry.turn}"]
        if entry.attempt > 1:
            parts.append(f"attempt {entry.attempt}")
        if entry.state == "waiting":
            parts.append("waiting for the first token…")
        elif entry.state == "streaming":
            parts.append("streaming ▌")
        elif entry.note:
            parts.append(entry.note)
        if entry.state == "done" and entry.record is not None:
            record = entry.record
            if record.usage.output_tokens is not None:
                parts.append(f"{compact(record.usage.output_tokens)} tok")
            if record.latency >= 0.1:  # only scripted agents are faster; keeps their titles stable
                parts.append(f"{record.latency:.1f} s")
        return f" {' · '.join(parts)} "


class HumanView(Static):
    """The opener or an interjection, with whom it was addressed to."""

    def __init__(self, entry: HumanEntry) -> None:
        who = "opener" if entry.opener else "human"
        to = "both" if len(entry.to) > 1 else entry.to[0]
        super().__init__(Content.assemble((f"✎ {who} → ", "bold"), plain(to, "bold"), ": ",
                                          plain(entry.text)), markup=False, classes="human")
        self.entry = entry


class NoteView(Static):
    """A line about what the run did to this agent (a trimmed context, a detector's flag)."""

    def __init__(self, entry: NoteEntry) -> None:
        super().__init__(plain(entry.text), markup=False,
                         classes="note -warning" if entry.warning else "note")
        self.entry = entry


EntryView = TurnView | HumanView | NoteView


def entry_view(entry: Entry) -> EntryView:
    if isinstance(entry, TurnEntry):
        return TurnView(entry)
    if isinstance(entry, NoteEntry):
        return NoteView(entry)
    return HumanView(entry)
