"""Plain-text tables of findings for the terminal, built from the run table's own cells: every
value untrusted, made inert and bounded, wide characters counted as two columns."""

from __future__ import annotations

from collections.abc import Sequence

from intermodel.analysis.report import _cell, _line, _widths

__all__ = ["cell", "table"]


def cell(value: object, limit: int = 40) -> str:
    """Untrusted text as one inert table cell of at most `limit` characters ("-" for None)."""
    return _cell(value, limit)


def table(head: Sequence[str], rows: Sequence[Sequence[str]], indent: str = "") -> str:
    """Columns padded to their widest cell, two spaces apart; a line per row, ending in one."""
    widths = _widths([list(head), *rows])
    return "".join(f"{indent}{_line(cells, widths)}\n" for cells in [list(head), *rows])
