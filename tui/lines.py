"""An agent's entries as lines of a terminal: what a pane paints, one line at a time.

A pane is one widget that paints lines (`pane.AgentPane.render_line`), not a tree of widgets per
entry: Textual repaints every widget in view whenever a column scrolls, and with a widget per turn
and per block of text, each new line of a streamed reply cost a layout and a repaint of the whole
column (bench/README.md, "The terminal UI"). Here each entry keeps its lines, wrapped once for the
pane's width, and a streaming turn wraps again only the text after its last settled line break.

Every text here is untrusted (replies, thinking, names, error notes): it goes through
`terminal_safe` and becomes segments of literal text, never markup.
"""

from __future__ import annotations

from dataclasses import dataclass

from rich.cells import cell_len
from rich.segment import Segment
from rich.style import Style
from textual.content import Content
from textual.strip import Strip

from intermodel.security.text import terminal_safe

from .model import Entry, HumanEntry, NoteEntry, TurnEntry
from .text import compact

__all__ = ["EntryLines", "Palette", "TextLines", "rule", "wrap"]

EMPTY: list[Strip] = []
HUMAN_BAR = "▌ "
NOTE_INDENT = "  "
THINKING_INDENT = "  "


@dataclass(frozen=True)
class Palette:
    """The pane's style for each kind of line, read from its CSS component classes."""

    title: Style
    title_live: Style
    toggle: Style
    thinking: Style
    reply: Style
    discarded: Style
    human: Style
    note: Style
    warning: Style
    earlier: Style


def wrap(text: str, width: int, style: Style, prefix: str = "",
         like: list[Strip] = EMPTY) -> list[Strip]:
    """Terminal-safe `text` wrapped to `width` cells, `prefix` before every line: one Strip each.
    An empty text has no lines. Lines the same as those in `like` at the same place are those
    objects (a pane repaints only lines that are new objects)."""
    if not text:
        return []
    inner = max(1, width - len(prefix))
    lines = []
    for index, line in enumerate(Content(text).wrap(inner)):
        shown = prefix + line.plain
        if index < len(like) and like[index].text == shown:
            lines.append(like[index])
        else:
            lines.append(Strip([Segment(shown, style)], len(prefix) + line.cell_length))
    return lines


def rule(title: str, width: int, style: Style) -> Strip:
    """A horizontal rule with a title at its left: `─ turn 3 · 12 tok ────`."""
    head = Strip([Segment(f"─{terminal_safe(title)}", style)]).crop(0, width)
    fill = width - head.cell_length
    return Strip.join([head, Strip([Segment("─" * fill, style)], fill)]) if fill > 0 else head


class TextLines:
    """A text that grows at its end, wrapped. The lines of everything before its last line break
    are kept; only the paragraph after it is wrapped again as the text grows. (A line break ends a
    wrapped line whatever the width, so the two parts wrap as the whole does.)"""

    def __init__(self) -> None:
        self.text = ""
        self.taken = 0  # pieces of the entry taken in
        self._made_for: tuple[int, Style, str] | None = None  # width, style, prefix
        self._settled_at = 0  # where the unsettled tail of `text` begins
        self._settled: list[Strip] = []
        self._tail_text = ""
        self._tail: list[Strip] = []

    def take(self, pieces: list[str]) -> bool:
        """Take in the pieces not taken yet; whether the text grew."""
        if self.taken >= len(pieces):
            return False
        added = terminal_safe("".join(pieces[self.taken:]))
        self.taken = len(pieces)
        self.text += added
        return bool(added)

    def lines(self, width: int, style: Style, prefix: str = "") -> list[Strip]:
        made_for = (width, style, prefix)
        if made_for != self._made_for:
            self._made_for = made_for
            self._settled_at, self._settled, self._tail_text, self._tail = 0, [], "", []
        tail = self.text[self._settled_at:]
        # The cut leaves text after it: a text ending in a line break has an empty last line.
        if (cut := tail.rfind("\n", 0, len(tail) - 1)) >= 0:
            # (The lines the tail had, where they are the same, stay the same objects.)
            self._settled += wrap(tail[:cut], width, style, prefix, self._tail) if cut \
                else [Strip([Segment(prefix, style)], len(prefix))]  # an empty line
            self._settled_at += cut + 1
            tail = tail[cut + 1:]
        if tail != self._tail_text or (not self._tail and tail):
            self._tail_text, self._tail = tail, wrap(tail, width, style, prefix, self._tail)
        return self._settled + self._tail if self._settled else self._tail


class EntryLines:
    """One entry of a pane as lines, for the pane's width, kept between frames."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.lines: list[Strip] = []
        self.flipped = False  # its thinking shows the other way from the pane's (clicked)
        self.toggle_line: int | None = None  # index in `lines` of the thinking toggle
        self.thinking_showing = False  # its thinking is among its lines
        self._made_for: tuple[int, Palette] | None = None  # a message's lines never change else
        self._revision = entry.revision if isinstance(entry, TurnEntry) else 0
        self._thinking = TextLines()
        self._reply = TextLines()
        # The title and the toggle line, and what each was drawn from: kept while that holds, so
        # that a frame that only lengthens the reply leaves every line above its tail as it was.
        self._rule: tuple[tuple[object, ...], Strip] | None = None
        self._toggle: tuple[tuple[object, ...], Strip] | None = None

    @property
    def title(self) -> str:
        """A turn's title, as drawn in its rule."""
        return str(self._rule[0][0]) if self._rule is not None else ""

    def render(self, width: int, palette: Palette, thinking_shown: bool) -> list[Strip]:
        """Bring `lines` up to date with the entry; the settled lines stay the same objects."""
        entry = self.entry
        if isinstance(entry, TurnEntry):
            self.lines = self._turn(entry, width, palette, thinking_shown != self.flipped)
        elif self._made_for != (width, palette):
            self._made_for = (width, palette)
            self.lines = (self._human(entry, width, palette) if isinstance(entry, HumanEntry)
                          else self._note(entry, width, palette))
        return self.lines

    def _turn(self, entry: TurnEntry, width: int, palette: Palette,
              thinking_shown: bool) -> list[Strip]:
        if entry.revision != self._revision:  # a retry or the record replaced the pieces
            self._revision = entry.revision
            self._thinking, self._reply = TextLines(), TextLines()
        self._thinking.take(entry.thinking)
        self._reply.take(entry.text)
        live = entry.state in ("waiting", "streaming")
        title = (_title(entry), width, palette.title_live if live else palette.title)
        if self._rule is None or self._rule[0] != title:
            self._rule = (title, rule(*title))
        lines = [self._rule[1]]
        self.toggle_line = None
        if self._thinking.text:
            self.toggle_line = len(lines)
            toggle = (_toggle_label(self._thinking.text, thinking_shown), width, palette.toggle)
            if self._toggle is None or self._toggle[0] != toggle:
                label, _, style = toggle
                self._toggle = (toggle, Strip([Segment(label, style)]).crop(0, width))
            lines.append(self._toggle[1])
        self.thinking_showing = bool(self._thinking.text) and thinking_shown
        if self.thinking_showing:
            lines += self._thinking.lines(width, palette.thinking, THINKING_INDENT)
        discarded = entry.state in ("discarded", "retrying")
        lines += self._reply.lines(width, palette.discarded if discarded else palette.reply)
        return lines

    def _human(self, entry: HumanEntry, width: int, palette: Palette) -> list[Strip]:
        who = "opener" if entry.opener else "human"
        to = "both" if len(entry.to) > 1 else entry.to[0]
        head = terminal_safe(f"✎ {who} → {to}: ")
        lines = wrap(head + terminal_safe(entry.text), width, palette.human, HUMAN_BAR)
        if lines:  # the head in bold (as far as it is on the first line)
            cut = min(len(HUMAN_BAR) + cell_len(head), lines[0].cell_length)
            bold, *rest = lines[0].divide([cut, lines[0].cell_length])  # (cuts are ends)
            lines[0] = Strip.join([bold.apply_style(Style(bold=True)), *rest])
        blank = Strip.blank(0)
        return [blank, *lines, blank]

    def _note(self, entry: NoteEntry, width: int, palette: Palette) -> list[Strip]:
        style = palette.warning if entry.warning else palette.note
        return wrap(terminal_safe(entry.text), width, style, NOTE_INDENT)


def _toggle_label(thinking: str, shown: bool) -> str:
    words = thinking.count(" ") + thinking.count("\n")
    size = f" · ~{compact(words)} words" if words else ""
    return f"▾ thinking{size}" if shown else f"▸ thinking{size} (hidden)"


def _title(entry: TurnEntry) -> str:
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
