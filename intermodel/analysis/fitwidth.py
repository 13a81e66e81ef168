"""Terminal tables that fit a width: columns of lower priority are left out until a table fits,
and one hint line then says which (and that `--wide` shows them all).

Each table names the columns it may lose, least needed first; the others always stay. When even
those are too wide, the widest column's cells are shortened (with "…") down to a floor, so a very
narrow terminal still gets one line per row rather than wrapped rows.
"""

from __future__ import annotations

import shutil
import textwrap
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TextIO

__all__ = ["ColumnFit", "output_width", "pad_line", "text_width"]

GAP = 2  # spaces between columns
NARROWEST_CELL = 8  # a shortened column keeps at least this many characters


def output_width(stream: TextIO, *, wide: bool = False) -> int | None:
    """The columns a table may use on `stream`, None for no limit: a terminal's width (COLUMNS,
    when set, says it instead, as for every program); a pipe or a file gets every column, so
    what `grep`, `awk` or a saved file see never depends on the shell the command ran in."""
    if wide or not getattr(stream, "isatty", lambda: False)():
        return None
    return shutil.get_terminal_size().columns


@dataclass
class ColumnFit:
    """Fits tables to `width` (None: leaves them whole) and remembers what it left out."""

    width: int | None
    dropped: list[str] = field(default_factory=list)

    def lines(self, head: Sequence[str], rows: Sequence[Sequence[str]],
              drop: Sequence[str] = (), indent: str = "") -> list[str]:
        """The table as lines (head first), without the columns of `drop` (named as in `head`,
        least needed first) it had to leave out to fit."""
        kept = list(range(len(head)))
        table = [list(head), *map(list, rows)]
        if self.width is not None:
            room = self.width - text_width(indent)
            for name in drop:
                if _total(table, kept) <= room:
                    break
                column = list(head).index(name)
                kept.remove(column)
                if name.strip() not in self.dropped:
                    self.dropped.append(name.strip())
            table = [[row[i] for i in kept] for row in table]
            table = _shorten(table, room)
        widths = column_widths(table)
        return [indent + pad_line(cells, widths) for cells in table]

    def hint(self) -> str:
        """One line naming the columns left out (empty when none were), itself within width."""
        if not self.dropped or self.width is None:
            return ""
        start, end = "(to fit, left out: ", "; --wide shows all)"
        names = list(self.dropped)
        for shown in range(len(names), 0, -1):
            more = len(names) - shown
            listed = ", ".join(names[:shown]) + (f" and {more} more" if more else "")
            if text_width(start + listed + end) <= self.width:
                return start + listed + end
        return f"({len(names)} column{'s' if len(names) > 1 else ''} left out; --wide shows all)"

    def wrap(self, text: str) -> str:
        """A line of prose (a table's title), wrapped to the width."""
        if self.width is None:
            return text
        return "\n".join(textwrap.wrap(text, max(self.width, 20))) or text


def _total(table: Sequence[Sequence[str]], kept: Sequence[int]) -> int:
    if not kept:
        return 0
    return sum(max(text_width(row[i]) for row in table) for i in kept) + GAP * (len(kept) - 1)


def _shorten(table: list[list[str]], room: int) -> list[list[str]]:
    """Shorten the widest column, again and again, until the table fits or none can give."""
    while True:
        widths = column_widths(table)
        over = sum(widths) + GAP * (len(widths) - 1) - room
        if over <= 0:
            return table
        widest = max(range(len(widths)), key=lambda i: widths[i])
        limit = max(NARROWEST_CELL, widths[widest] - over)
        if limit >= widths[widest]:
            return table
        for row in table:
            row[widest] = _clip(row[widest], limit)


def _clip(text: str, limit: int) -> str:
    if text_width(text) <= limit:
        return text
    out = ""
    for char in text:
        if text_width(out + char) > limit - 1:
            break
        out += char
    return out + "…"


def text_width(text: str) -> int:
    # Wide (East Asian, most emoji) characters take two terminal columns.
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def column_widths(table: Sequence[Sequence[str]]) -> list[int]:
    return [max(text_width(row[i]) for row in table) for i in range(len(table[0]))]


def pad_line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [c + " " * (w - text_width(c)) for c, w in zip(cells, widths, strict=True)]
    return (" " * GAP).join(padded).rstrip()
