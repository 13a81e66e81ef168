"""Plain-text tables of findings for the terminal, built from the run table's own cells: every
value untrusted, made inert and bounded, wide characters counted as two columns."""

from __future__ import annotations

from collections.abc import Sequence

from intermodel.analysis.fitwidth import ColumnFit
from intermodel.analysis.report import _cell

__all__ = ["cell", "table"]


def cell(value: object, limit: int = 40) -> str:
    """Untrusted text as one inert table cell of at most `limit` characters ("-" for None)."""
    return _cell(value, limit)


def table(head: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "",
          fit: ColumnFit | None = None, drop: Sequence[str] = ()) -> str:
    """Columns padded to their widest cell, two spaces apart; a line per row, ending in one.
    `fit` narrows it to a width, leaving out columns of `drop` (least needed first)."""
    lines = (fit or ColumnFit(None)).lines(head, rows, drop, indent)
    return "".join(f"{line}\n" for line in lines)
