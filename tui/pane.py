"""One agent's column: the newest entries of that agent, painted as lines (see `lines`).

A pane keeps only a window of its history as lines: the newest entries within `KEEP_ENTRIES` and
`KEEP_CHARS` (wrapping the whole of a long run at each resize would take seconds). Older entries
stay in the model; scrolling to the top of the pane brings back the previous `LOAD_STEP` of them.
While a person reads older turns (the pane does not follow the live end) nothing is dropped, up to
`HARD_CAP` kept entries, so their place does not move under them.

The border, its title and the padding belong to the pane's `PaneFrame`, which does not move: a
scrolled pane paints every line in view again, and each of them went through the border's
drawing (its colours worked out per line) as well. A painted line is kept for as long as the line
under it and its place are the same (`_painted`).

While a pane follows the live end it has no scrollbar (a padding column holds its place, so no
text wraps differently): at the end the bar says nothing, and redrawing it on every new line was
a quarter of the screen's work. It comes back under the mouse, and as soon as the person scrolls
up.
"""

from __future__ import annotations

from bisect import bisect_right
from typing import ClassVar

from rich.style import Style
from textual import events
from textual.app import ComposeResult
from textual.containers import Vertical
from textual.content import Content
from textual.geometry import Size
from textual.scroll_view import ScrollView
from textual.selection import Selection
from textual.strip import Strip

from .lines import EMPTY_LINE, EntryLines, Line, Palette, cropped, line_text, strip
from .model import ConversationModel, Entry
from .text import plain

__all__ = ["AgentPane", "PaneFrame"]

KEEP_ENTRIES = 20
KEEP_CHARS = 20_000
LOAD_STEP = 10
HARD_CAP = 4 * KEEP_ENTRIES
PALETTE = {
    "title": "pane--title", "title_live": "pane--title-live", "toggle": "pane--toggle",
    "thinking": "pane--thinking", "reply": "pane--reply", "discarded": "pane--discarded",
    "human": "pane--human", "note": "pane--note", "warning": "pane--warning",
    "earlier": "pane--earlier",
}


class PaneFrame(Vertical):
    """A pane's border, with the agent's name as its title, and its padding."""

    def __init__(self, pane: AgentPane) -> None:
        super().__init__(classes="pane")
        self.pane = pane

    def compose(self) -> ComposeResult:
        yield self.pane


class AgentPane(ScrollView, can_focus=True):
    """The entries of one agent, following the live end unless the person scrolls up."""

    COMPONENT_CLASSES: ClassVar[set[str]] = set(PALETTE.values())

    def __init__(self, model: ConversationModel, slot: int, *, id: str) -> None:
        super().__init__(id=id, classes="-following")
        self.frame = PaneFrame(self)
        self.model = model
        self.slot = slot
        self.agent = ""
        self.following = True
        self.thinking_shown = True
        self._generation = -1
        self._views: list[EntryLines] = []  # the kept entries, oldest first
        self._by_key: dict[int, EntryLines] = {}
        self._starts: list[int] = []  # the first line of each kept entry
        self._first = 0  # index in the agent's entries of the first kept one
        self._next = 0  # index of the first entry not yet kept
        self._width = 0
        self._palette: Palette | None = None
        self._look: tuple[Palette, Style] | None = None  # the palette and own style painted with
        self._restyle_due = False
        # Each line as last painted, by its index, with the line it was painted from.
        self._painted: dict[int, tuple[Line, Strip]] = {}
        self._marker: tuple[tuple[int, int], Line] | None = None  # the earlier-entries line

    @property
    def entries(self) -> list[Entry]:
        return self.model.entries.get(self.agent, [])

    @property
    def views(self) -> list[EntryLines]:
        return self._views

    @property
    def kept(self) -> int:
        return self._next - self._first

    @property
    def hidden(self) -> int:
        """Older entries that are not kept (shown again by scrolling to the top)."""
        return self._first

    @property
    def allow_select(self) -> bool:
        return True

    def line_of(self, view: EntryLines) -> int:
        """The first line of a kept entry."""
        return self._marker_rows + self._starts[self._views.index(view)]

    def row_of(self, index: int) -> int:
        """Where line `index` is in view: its row in the pane (outside it if scrolled away)."""
        return index + self._top() - round(self.scroll_y)

    def text_lines(self) -> list[str]:
        """Every kept line as plain text (what selecting all of it would copy)."""
        return [line_text(self._line(y)) for y in range(self._height())]

    def sync(self, changed: set[int]) -> None:
        """Catch up with the model: keep new entries, redraw changed ones, drop the oldest."""
        model = self.model
        if model.generation != self._generation:
            self._reset()
        entries = self.entries
        dirty = {self._by_key[key] for key in changed if key in self._by_key}
        if self._next < len(entries):
            start = max(self._next, self._tail_start(len(entries)))
            if start > self._next:  # more arrived than the pane keeps: skip straight to the tail
                self._views, self._by_key, self._starts = [], {}, []
                self._first = start
            new = [EntryLines(e) for e in entries[start:]]
            self._views += new
            self._by_key.update((view.entry.key, view) for view in new)
            self._next = len(entries)
            dirty.update(new)
        self._redraw(dirty)
        if self.following or self.kept > HARD_CAP:
            self._prune()
        self.frame.set_class(self.agent in model.under_way, "-speaking")

    def follow(self) -> None:
        """Jump to the live end and stay there."""
        self._set_following(True)
        self._prune()
        self.scroll_end(animate=False, immediate=True)

    def show_thinking(self, shown: bool) -> None:
        """Show or hide every turn's thinking (one key decides for all: clicks are forgotten)."""
        self.thinking_shown = shown
        for view in self._views:
            view.flipped = False
        self._redraw(set(self._views))

    # Textual calls this whenever the person scrolls (keys, wheel, scrollbar).
    def release_anchor(self) -> None:
        super().release_anchor()
        self._set_following(False)

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self.following and new_value >= self.max_scroll_y and new_value > old_value:
            self._set_following(True)  # scrolled back down to the end: follow again
        elif new_value <= 0 < old_value and self._first > 0 and not self.following:
            self._load_earlier()

    def on_resize(self, event: events.Resize) -> None:
        self._redraw(set(self._views))

    def notify_style_update(self) -> None:
        super().notify_style_update()
        # Textual applies the CSS again to the pane whenever a class changes above it (its
        # frame's `-speaking`, at each turn's start and end), and works out its component styles
        # only after this call. So they are compared once in place: only a change (the theme)
        # paints every line again (the lines themselves have no colours).
        if not self._restyle_due:
            self._restyle_due = True
            self.call_later(self._restyle)

    def _restyle(self) -> None:
        self._restyle_due = False
        palette = self._read_palette()
        look = (palette, self.rich_style)
        if look == self._look:
            return
        self._look, self._palette = look, palette
        self._painted.clear()
        self.refresh()

    def on_click(self, event: events.Click) -> None:
        offset = event.get_content_offset(self)
        if offset is None:
            return
        view, line = self._locate(offset.y - self._top() + self.scroll_offset.y)
        if view is not None and line == view.toggle_line:
            view.flipped = not view.flipped
            self._redraw({view})

    def render_line(self, y: int) -> Strip:
        index = y - self._top() + self.scroll_offset.y
        if index < 0:
            return Strip.blank(self._width, self.rich_style)
        line = self._line(index)
        selection = self.text_selection
        if selection is not None and (span := selection.get_span(index)) is not None:
            whole = strip(line, self.palette)
            start, end = span
            end = whole.cell_length if end == -1 else end
            before, chosen, after = whole.divide([start, max(start, end), whole.cell_length])
            style = self.screen.get_component_rich_style("screen--selection")
            return self._paint(Strip.join([before, chosen.apply_style(style), after]), index)
        painted = self._painted.get(index)
        if painted is not None and painted[0] is line:
            return painted[1]
        shown = self._paint(strip(line, self.palette), index)
        self._painted[index] = (line, shown)
        return shown

    def _paint(self, line: Strip, index: int) -> Strip:
        # On the pane's own style (its background under the text as beside it); the offsets tell
        # a selection which line and cell the mouse is over.
        base = self.rich_style
        return line.apply_style(base).crop_extend(0, self._width, base).apply_offsets(0, index)

    def get_selection(self, selection: Selection) -> tuple[str, str] | None:
        return selection.extract("\n".join(self.text_lines())), "\n"

    def selection_updated(self, selection: Selection | None) -> None:
        self.refresh()

    # -- internals --------------------------------------------------------------------------

    def _set_following(self, following: bool) -> None:
        self.following = following
        self.set_class(following, "-following")

    def _reset(self) -> None:
        model = self.model
        self._generation = model.generation
        self._views, self._by_key, self._starts = [], {}, []
        self._painted.clear()
        self._first = self._next = 0
        names = model.names
        self.agent = names[self.slot] if self.slot < len(names) else ""
        if model.spec is not None and self.agent:
            agent = model.spec.agent(self.agent)
            self.frame.border_title = Content.assemble(plain(self.agent, "bold"), " · ",
                                                 plain(f"{agent.model} ({agent.provider})"))
        self._relayout(0)

    @property
    def palette(self) -> Palette:
        """The style of each kind of line, from the CSS (worked out again when it changes)."""
        if self._palette is None:
            self._palette = self._read_palette()
        return self._palette

    def _read_palette(self) -> Palette:
        # Whole styles (a muted colour is the text colour faded into the background).
        return Palette(**{field: self.get_component_rich_style(name)
                          for field, name in PALETTE.items()})

    def _redraw(self, dirty: set[EntryLines]) -> None:
        """Draw the dirty entries again and repaint the lines that changed."""
        width = self.scrollable_content_region.width
        if width <= 0:
            return  # not laid out yet: the first resize draws everything
        resized = width != self._width
        if resized:
            self._width = width
            self._painted.clear()
            self._marker = None
            dirty = set(self._views)
        marker = self._marker_rows
        known = len(self._starts)  # entries whose first line is known (the rest just came)
        height = self._height()  # (the new entries have no lines yet)
        changed: list[tuple[int, int]] = []  # lines to repaint, (first, end), by entry
        moved = resized or known < len(self._views)  # (the virtual size has the width too)
        for index, view in enumerate(self._views):
            if view not in dirty:
                continue
            old = view.lines
            new = view.render(width, self.thinking_shown)
            if index >= known:
                continue
            same = 0  # lines as they were (the settled ones are the same objects)
            for a, b in zip(old, new, strict=False):
                if a is not b:
                    break
                same += 1
            if same == len(old) == len(new):
                continue
            moved = moved or len(old) != len(new)
            start = marker + self._starts[index]
            changed.append((start + same, start + len(new)))
        if moved:  # entries below moved too: repaint from the first change to the end
            first = min((first for first, _ in changed), default=height)
            self._relayout(first)
        else:
            top = self._top()
            for first, end in changed:
                self.refresh_lines(top + first, end - first)

    def _relayout(self, changed_from: int) -> None:
        """Work out where each entry begins, and the pane's height, after lines came or went."""
        starts, at = [], 0
        for view in self._views:
            starts.append(at)
            at += len(view.lines)
        self._starts = starts
        was_short = self.virtual_size.height < self.scrollable_content_region.height
        size = Size(self._width, self._height())
        if size != self.virtual_size:
            # Only the scroll range changes: the pane's own region does not depend on what it
            # holds (its scrollbars are there or not by CSS alone), so the screen is not laid
            # out again, as setting `virtual_size` would (once per new line of a stream).
            self.set_reactive(AgentPane.virtual_size, size)
            self._scroll_update(size)
        if self.following:
            self.scroll_end(animate=False, immediate=True)
        if was_short or self._top():  # a short history sits at the bottom: it all moved up
            self.refresh()
        else:
            self.refresh_lines(changed_from, max(0, self._height() - changed_from))

    def _top(self) -> int:
        """Blank lines above the first, so that a short history sits at the bottom, where the
        next line will come (as the column will be once it fills)."""
        return max(0, self.scrollable_content_region.height - self._height())

    @property
    def _marker_rows(self) -> int:
        """The line above the entries that says how many earlier ones are not kept: 1 or 0."""
        return 1 if self._first else 0

    def _height(self) -> int:
        marker = self._marker_rows
        if not self._views or len(self._starts) != len(self._views):
            return marker + sum(len(view.lines) for view in self._views)
        return marker + self._starts[-1] + len(self._views[-1].lines)

    def _locate(self, index: int) -> tuple[EntryLines | None, int]:
        """The entry at line `index` of the pane, and the line within it."""
        index -= self._marker_rows
        if index < 0 or not self._starts:
            return None, 0
        at = bisect_right(self._starts, index) - 1
        view = self._views[at]
        line = index - self._starts[at]
        return (view, line) if line < len(view.lines) else (None, 0)

    def _line(self, index: int) -> Line:
        if self._first and index == 0:
            made_for = (self._first, self._width)
            if self._marker is None or self._marker[0] != made_for:
                noun = "entry" if self._first == 1 else "entries"
                text = f"▲ {self._first} earlier {noun} · scroll up to show more"
                self._marker = (made_for, cropped(text.center(self._width), self._width,
                                                  "earlier"))
            return self._marker[1]
        view, at = self._locate(index)
        return view.lines[at] if view is not None else EMPTY_LINE

    def _tail_start(self, end: int) -> int:
        """Where the kept tail of entries[:end] begins."""
        entries, chars, start = self.entries, 0, end
        while start > 0 and end - start < KEEP_ENTRIES:
            chars += entries[start - 1].chars
            if chars > KEEP_CHARS and end - start >= 2:
                break
            start -= 1
        return start

    def _prune(self) -> None:
        start = self._tail_start(self._next)
        if start <= self._first:
            return
        drop = start - self._first
        # (The marker line comes with the first entry dropped.)
        removed = sum(len(view.lines) for view in self._views[:drop]) + 1 - self._marker_rows
        for view in self._views[:drop]:
            del self._by_key[view.entry.key]
        del self._views[:drop]
        self._first = start
        self._painted.clear()  # the lines below moved up
        self._relayout(0)
        if not self.following:  # keep the person's place: the removed lines were above it
            self.scroll_to(y=max(0, self.scroll_y - removed), animate=False, immediate=True)

    def _load_earlier(self) -> None:
        entries = self.entries
        start = max(0, self._first - LOAD_STEP)
        new = [EntryLines(e) for e in entries[start:self._first]]
        width = self._width
        if not new or width <= 0:
            return
        for view in new:
            view.render(width, self.thinking_shown)
        before = self._height()
        self._views[:0] = new
        self._by_key.update((view.entry.key, view) for view in new)
        self._first = start
        self._painted.clear()  # the lines below moved down
        self._relayout(0)
        # Keep the line the person was looking at in place (after this scroll's own handling:
        # this runs from a scroll watcher, maybe under the Home key's animation).
        added = self._height() - before
        self.call_after_refresh(lambda: self.scroll_to(y=self.scroll_y + added, animate=False,
                                                       immediate=True))
