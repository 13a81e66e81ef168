"""An agent's entries as lines of a terminal: what a pane paints, one line at a time.

A pane is one widget that paints lines (`pane.AgentPane.render_line`), not a tree of widgets per
entry: Textual repaints every widget in view whenever a column scrolls, and with a widget per turn
and per block of text, each new line of a streamed reply cost a layout and a repaint of the whole
column (bench/README.md, "The terminal UI"). Here each entry keeps its lines, wrapped once for the
pane's width, and a streaming turn wraps again only the text after its last settled line break.

A kept line is a plain tuple (`Line`): its text, its width in cells, the kind of line it is (which
of the pane's styles it is painted in) and how many of its first cells are bold. A tuple of strings
and numbers drops out of the garbage collector's walk after the first collection that sees it,
where a Textual `Strip` is ten tracked objects (its segments and seven caches): the lines a pane
keeps were three quarters of what every full collection walked (bench/README.md, "The terminal
UI"). The pane makes a `Strip` of a line only to paint it (`strip`), and its style comes from the
palette then, so a new theme paints the same lines in new colours.

Every text here is untrusted (replies, thinking, names, error notes): it goes through
`terminal_safe` and becomes segments of literal text, never markup.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from rich.cells import cell_len, set_cell_size
from rich.segment import Segment
from rich.style import Style
from textual.content import Content
from textual.strip import Strip

from intermodel.security.text import terminal_safe

from .model import Entry, HumanEntry, NoteEntry, TurnEntry
from .text import compact

__all__ = ["EMPTY_LINE", "EntryLines", "Kind", "Line", "Palette", "TextLines", "cropped",
           "line_text", "rule", "strip", "wrap"]

Kind = Literal["title", "title_live", "toggle", "thinking", "reply", "discarded", "human", "note",
               "warning", "earlier"]  # a field of `Palette`
# A line as kept: (text, its cells, its kind, its first cells in bold). An exact tuple of strings
# and ints, so that the collector stops tracking it (a NamedTuple or a class would stay tracked).
Line = tuple[str, int, Kind, int]
EMPTY_LINE: Line = ("", 0, "reply", 0)
EMPTY: list[Line] = []
BOLD = Style(bold=True)
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

    def of(self, kind: Kind) -> Style:
        style: Style = getattr(self, kind)
        return style


def line_text(line: Line) -> str:
    return line[0]


def strip(line: Line, palette: Palette) -> Strip:
    """A kept line as Textual paints it, in its kind's style."""
    text, cells, kind, bold = line
    whole = Strip([Segment(text, palette.of(kind))], cells)
    if not bold:
        return whole
    head, rest = whole.divide([bold, cells])  # (cuts are ends)
    return Strip.join([head.apply_style(BOLD), rest])


def cropped(text: str, width: int, kind: Kind) -> Line:
    """`text` on one line, cut at `width` cells."""
    cells = cell_len(text)
    if cells > width:
        text, cells = set_cell_size(text, width), width
    return (text, cells, kind, 0)


def wrap(text: str, width: int, kind: Kind, prefix: str = "",
         like: list[Line] = EMPTY) -> list[Line]:
    """Terminal-safe `text` wrapped to `width` cells, `prefix` before every line. An empty text
    has no lines. Lines the same as those in `like` at the same place are those objects (a pane
    repaints only lines that are new objects)."""
    if not text:
        return []
    inner = max(1, width - len(prefix))
    lines: list[Line] = []
    for index, line in enumerate(Content(text).wrap(inner)):
        shown = prefix + line.plain
        if index < len(like) and like[index][0] == shown and like[index][2] == kind:
            lines.append(like[index])
        else:
            lines.append((shown, len(prefix) + line.cell_length, kind, 0))
    return lines


def rule(title: str, width: int, kind: Kind) -> Line:
    """A horizontal rule with a title at its left: `─ turn 3 · 12 tok ────`."""
    text, cells, _, _ = cropped(f"─{terminal_safe(title)}", width, kind)
    fill = max(0, width - cells)
    return (text + "─" * fill, cells + fill, kind, 0)


class TextLines:
    """A text that grows at its end, wrapped. The lines of everything before its last line break
    are kept; only the paragraph after it is wrapped again as the text grows. (A line break ends a
    wrapped line whatever the width, so the two parts wrap as the whole does.)"""

    def __init__(self) -> None:
        self.text = ""
        self._pieces: Sequence[str] | None = None  # the pieces taken from, and how far
        self._taken = 0
        self._taken_chars = 0  # characters of the pieces taken (before `terminal_safe`)
        self._made_for: tuple[int, Kind, str] | None = None  # width, kind, prefix
        self._settled_at = 0  # where the unsettled tail of `text` begins
        self._settled: list[Line] = []
        self._tail_text = ""
        self._tail: list[Line] = []

    def take(self, pieces: Sequence[str]) -> bool:
        """Take in what `pieces` has that was not taken yet; whether the text grew. New pieces
        hold the same text as the last ones did, and maybe more: a completed turn's pieces become
        its record's one text (`ConversationModel._complete`)."""
        if pieces is self._pieces:
            if self._taken >= len(pieces):
                return False
            raw = "".join(pieces[self._taken:])
        else:
            raw = "".join(pieces)[self._taken_chars:]
            self._pieces = pieces
        self._taken = len(pieces)
        self._taken_chars += len(raw)
        added = terminal_safe(raw)
        self.text += added
        return bool(added)

    def lines(self, width: int, kind: Kind, prefix: str = "") -> list[Line]:
        made_for = (width, kind, prefix)
        if made_for != self._made_for:
            self._made_for = made_for
            self._settled_at, self._settled, self._tail_text, self._tail = 0, [], "", []
        tail = self.text[self._settled_at:]
        # The cut leaves text after it: a text ending in a line break has an empty last line.
        if (cut := tail.rfind("\n", 0, len(tail) - 1)) >= 0:
            # (The lines the tail had, where they are the same, stay the same objects.)
            self._settled += wrap(tail[:cut], width, kind, prefix, self._tail) if cut \
                else [(prefix, len(prefix), kind, 0)]  # an empty line
            self._settled_at += cut + 1
            tail = tail[cut + 1:]
        if tail != self._tail_text or (not self._tail and tail):
            self._tail_text, self._tail = tail, wrap(tail, width, kind, prefix, self._tail)
        return self._settled + self._tail if self._settled else self._tail


class EntryLines:
    """One entry of a pane as lines, for the pane's width, kept between frames."""

    def __init__(self, entry: Entry) -> None:
        self.entry = entry
        self.lines: list[Line] = []
        self.flipped = False  # its thinking shows the other way from the pane's (clicked)
        self.toggle_line: int | None = None  # index in `lines` of the thinking toggle
        self.thinking_showing = False  # its thinking is among its lines
        self._made_for = 0  # the width a message's lines were made for (they never change else)
        self._revision = entry.revision if isinstance(entry, TurnEntry) else 0
        self._thinking = TextLines()
        self._reply = TextLines()
        # The title and the toggle line, and what each was drawn from: kept while that holds, so
        # that a frame that only lengthens the reply leaves every line above its tail as it was.
        self._rule: tuple[tuple[str, int, Kind], Line] | None = None
        self._toggle: tuple[tuple[str, int], Line] | None = None

    @property
    def title(self) -> str:
        """A turn's title, as drawn in its rule."""
        return self._rule[0][0] if self._rule is not None else ""

    def render(self, width: int, thinking_shown: bool) -> list[Line]:
        """Bring `lines` up to date with the entry; the settled lines stay the same objects."""
        entry = self.entry
        if isinstance(entry, TurnEntry):
            self.lines = self._turn(entry, width, thinking_shown != self.flipped)
        elif self._made_for != width:
            self._made_for = width
            self.lines = (self._human(entry, width) if isinstance(entry, HumanEntry)
                          else self._note(entry, width))
        return self.lines

    def _turn(self, entry: TurnEntry, width: int, thinking_shown: bool) -> list[Line]:
        if entry.revision != self._revision:  # a retry or the record replaced the pieces
            self._revision = entry.revision
            self._thinking, self._reply = TextLines(), TextLines()
        self._thinking.take(entry.thinking)
        self._reply.take(entry.text)
        live = entry.state in ("waiting", "streaming")
        title: tuple[str, int, Kind] = (_title(entry), width, "title_live" if live else "title")
        if self._rule is None or self._rule[0] != title:
            self._rule = (title, rule(*title))
        lines = [self._rule[1]]
        self.toggle_line = None
        if self._thinking.text:
            self.toggle_line = len(lines)
            toggle = (_toggle_label(self._thinking.text, thinking_shown), width)
            if self._toggle is None or self._toggle[0] != toggle:
                self._toggle = (toggle, cropped(*toggle, "toggle"))
            lines.append(self._toggle[1])
        self.thinking_showing = bool(self._thinking.text) and thinking_shown
        if self.thinking_showing:
            lines += self._thinking.lines(width, "thinking", THINKING_INDENT)
        discarded = entry.state in ("discarded", "retrying")
        lines += self._reply.lines(width, "discarded" if discarded else "reply")
        return lines

    def _human(self, entry: HumanEntry, width: int) -> list[Line]:
        who = "opener" if entry.opener else "human"
        to = "both" if len(entry.to) > 1 else entry.to[0]
        head = terminal_safe(f"✎ {who} → {to}: ")
        lines = wrap(head + terminal_safe(entry.text), width, "human", HUMAN_BAR)
        if lines:  # the head in bold (as far as it is on the first line)
            text, cells, kind, _ = lines[0]
            lines[0] = (text, cells, kind, min(len(HUMAN_BAR) + cell_len(head), cells))
        return [EMPTY_LINE, *lines, EMPTY_LINE]

    def _note(self, entry: NoteEntry, width: int) -> list[Line]:
        return wrap(terminal_safe(entry.text), width, "warning" if entry.warning else "note",
                    NOTE_INDENT)


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
