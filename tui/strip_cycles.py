"""Painted lines that free themselves: Textual's `Strip.divide`, without a strip holding itself.

`Strip.divide` keeps its result in a cache on the strip. Divided at its own end, which is how the
screen's compositor cuts nearly every line of a widget that nothing overlaps, the result is a list
of the strip itself: the strip then refers to itself. Replaced on screen, such a line is not freed
when the last reference to it goes, but left to the garbage collector; and a line that stayed on
screen for a few seconds is old enough that only a full collection finds it. Between two turns
that was some 3,000 objects (180 lines, each with its segments and seven caches), which made up
most of the full collection's pause (bench/README.md, "The terminal UI").

`install` makes that one case return a new list of the strip, uncached (a list of one costs less
than the cache's lookup); every other division goes to Textual's own, cache and all. Nothing else
of Textual changes, and what a division returns is the same.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from textual.strip import Strip

__all__ = ["install", "installed"]

_Divide = Callable[[Strip, Iterable[int]], Sequence[Strip]]
_textual_divide: _Divide = Strip.divide


def _divide(self: Strip, cuts: Iterable[int]) -> Sequence[Strip]:
    cell_length = self.cell_length
    cuts = [cut for cut in cuts if cut <= cell_length]  # (as Textual's own does first)
    if cuts == [cell_length]:
        return [self]
    return _textual_divide(self, cuts)


def install() -> None:
    """Replace `Strip.divide` for the whole process (once; later calls do nothing)."""
    Strip.divide = _divide  # type: ignore[method-assign]


def installed() -> bool:
    return Strip.divide is _divide
