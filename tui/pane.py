"""One agent's column: a scrolling list of widgets for the newest entries of that agent.

Textual walks every mounted widget on each screen update, scrolled out of view or not, so a pane
keeps only a tail of its history mounted: the newest entries within `KEEP_ENTRIES` and
`KEEP_CHARS`. Older entries stay in the model; scrolling to the top of the pane mounts the previous
`LOAD_STEP` of them again. While a person reads older turns (the pane does not follow the live end)
nothing is pruned, up to `HARD_CAP` mounted entries, so their place does not move under them.
"""

from __future__ import annotations

from textual.containers import VerticalScroll
from textual.content import Content
from textual.widgets import Static

from .entries import EntryView, GrowsInPlace, TurnView, entry_view
from .model import ConversationModel, Entry
from .text import plain

__all__ = ["AgentPane"]

KEEP_ENTRIES = 20
KEEP_CHARS = 20_000
LOAD_STEP = 10
HARD_CAP = 4 * KEEP_ENTRIES


class EarlierMarker(Static):
    """Says how many older entries are not mounted, at the top of a pane."""


class AgentPane(VerticalScroll, GrowsInPlace):
    """The entries of one agent, following the live end unless the person scrolls up."""

    def __init__(self, model: ConversationModel, slot: int, *, id: str) -> None:
        super().__init__(id=id, classes="pane")
        self.model = model
        self.slot = slot
        self.agent = ""
        self.following = True
        self._generation = -1
        self._views: dict[int, EntryView] = {}
        self._first = 0  # index in the agent's entries of the first mounted one
        self._next = 0  # index of the first entry not yet mounted
        self._marker = EarlierMarker(markup=False, classes="earlier")

    def on_mount(self) -> None:
        self._marker.display = False
        self.mount(self._marker)
        self.anchor()

    @property
    def entries(self) -> list[Entry]:
        return self.model.entries.get(self.agent, [])

    @property
    def mounted(self) -> int:
        return self._next - self._first

    @property
    def hidden(self) -> int:
        """Older entries that are not mounted (shown again by scrolling to the top)."""
        return self._first

    def sync(self, changed: set[int]) -> None:
        """Catch up with the model: mount new entries, update changed ones, prune the oldest."""
        model = self.model
        if model.generation != self._generation:
            self._reset()
        entries = self.entries
        if self._next < len(entries):
            start = max(self._next, self._tail_start(len(entries)))
            if start > self._next:  # more arrived than the pane keeps: skip straight to the tail
                self._unmount(self._first, self._next)
                self._first = start
            self._mount(entries[start:])
            self._next = len(entries)
        for key in changed:
            view = self._views.get(key)
            # A view mounted in this batch syncs itself once mounted (its text may come in the
            # same batch as its start: a viewer attaching in the middle of a turn).
            if isinstance(view, TurnView) and view.is_mounted:
                view.sync()
        if self.following or self.mounted > HARD_CAP:
            self._prune()
        self.set_class(self.agent in model.under_way, "-speaking")

    def follow(self) -> None:
        """Jump to the live end and stay there."""
        self.following = True
        self.scroll_end(animate=False)
        self._prune()

    # Textual calls this whenever the person scrolls (keys, wheel, scrollbar).
    def release_anchor(self) -> None:
        super().release_anchor()
        self.following = False

    def watch_scroll_y(self, old_value: float, new_value: float) -> None:
        super().watch_scroll_y(old_value, new_value)
        if not self.following and new_value >= self.max_scroll_y and new_value > old_value:
            self.following = True  # scrolled back down to the end: follow again
        elif new_value <= 0 < old_value and self._first > 0 and not self.following:
            self._load_earlier()

    # -- internals --------------------------------------------------------------------------

    def _reset(self) -> None:
        model = self.model
        self._generation = model.generation
        if self._views:  # the entries they show belong to the replaced history
            self.remove_children(list(self._views.values()))
            self._views.clear()
        self._first = self._next = 0
        names = model.names
        self.agent = names[self.slot] if self.slot < len(names) else ""
        if model.spec is not None and self.agent:
            agent = model.spec.agent(self.agent)
            self.border_title = Content.assemble(plain(self.agent, "bold"), " · ",
                                                 plain(f"{agent.model} ({agent.provider})"))
        self._update_marker()

    def _tail_start(self, end: int) -> int:
        """Where the kept tail of entries[:end] begins."""
        entries, chars, start = self.entries, 0, end
        while start > 0 and end - start < KEEP_ENTRIES:
            chars += entries[start - 1].chars
            if chars > KEEP_CHARS and end - start >= 2:
                break
            start -= 1
        return start

    def _mount(self, entries: list[Entry], before: EntryView | None = None) -> None:
        views = [entry_view(e) for e in entries]
        for entry, view in zip(entries, views, strict=True):
            self._views[entry.key] = view
        if views:
            self.mount_all(views, before=before)
        self._update_marker()

    def _unmount(self, start: int, end: int) -> None:
        entries = self.entries
        doomed = [self._views.pop(e.key) for e in entries[start:end] if e.key in self._views]
        if doomed:
            self.remove_children(doomed)

    def _prune(self) -> None:
        start = self._tail_start(self._next)
        if start <= self._first:
            return
        if not self.following:  # keep the person's place: the removed height is above it
            first_kept = self._views.get(self.entries[start].key)
            if first_kept is not None:
                removed = first_kept.virtual_region_with_margin.y - self._marker.outer_size.height
                self.call_after_refresh(self.scroll_to, y=self.scroll_y - removed,
                                        animate=False)
        self._unmount(self._first, start)
        self._first = start
        self._update_marker()

    def _load_earlier(self) -> None:
        entries = self.entries
        start = max(0, self._first - LOAD_STEP)
        old_first = self._views.get(entries[self._first].key)
        self._mount(entries[start:self._first], before=old_first)
        self._first = start
        self._update_marker()
        if old_first is not None:
            # Keep the entry the person was looking at in place once the new ones have a size.
            self.call_after_refresh(
                lambda: self.scroll_to(y=old_first.virtual_region_with_margin.y
                                       - self._marker.outer_size.height, animate=False))

    def _update_marker(self) -> None:
        hidden = self._first
        self._marker.display = hidden > 0
        if hidden:
            noun = "entry" if hidden == 1 else "entries"
            self._marker.update(Content(f"▲ {hidden} earlier {noun} · scroll up to show more"))
