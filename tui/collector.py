"""When the garbage collector walks everything: between turns, not in the middle of a stream.

A full collection walks every tracked object: the run's records, the painted lines the panes
keep, and whatever the app made since it started. Left to itself, Python starts one whenever
enough objects have outlived the two younger collections, which during a stream means in the
middle of a screen update: a pause of 10-30 ms, longer as the run's history grows. While the app
runs:

- what is alive once it has started (modules, classes, the screen's widgets: 50,000 objects or
  more, never garbage while it runs) is frozen, out of every collection's walk;
- the automatic full collection is off (the young generations still collect what dies young);
- the app runs a full collection itself once a turn has ended and its last lines are on screen,
  `SHORTEST_GAP` seconds after the last one at the soonest (turns streamed flat out, a few
  hundredths of a second each, do not each pay for a walk); and, for runs whose turns never end
  (a very long reply, a panel's slow answers), at the next event once `LONGEST_GAP` seconds have
  passed without one.

All of it is undone when the app ends.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["LONGEST_GAP", "SHORTEST_GAP", "Collector"]

SHORTEST_GAP = 1.0  # seconds at least between two full collections at turns' ends
LONGEST_GAP = 60.0  # seconds of events at most between two full collections
_NEVER = 1 << 30  # a full-collection threshold no run reaches


class Collector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._saved: tuple[int, int, int] | None = None
        self._last = 0.0

    def start(self) -> None:
        """Freeze what is alive, and take the full collections over from Python."""
        if self._saved is not None:
            return
        gc.collect()
        gc.freeze()
        young, middle, _ = self._saved = gc.get_threshold()
        gc.set_threshold(young, middle, _NEVER)
        self._last = self._clock()

    def stop(self) -> None:
        """Give the full collections back to Python, and what was frozen to its walk."""
        if self._saved is None:
            return
        gc.set_threshold(*self._saved)
        self._saved = None
        gc.unfreeze()

    @property
    def due(self) -> bool:
        """Whether a quiet moment should be used: the last full collection was a while ago."""
        return self._saved is not None and self._clock() - self._last >= SHORTEST_GAP

    @property
    def overdue(self) -> bool:
        """Whether the last full collection was `LONGEST_GAP` seconds ago or more."""
        return self._saved is not None and self._clock() - self._last >= LONGEST_GAP

    def collect(self) -> None:
        """A full collection, now (the app calls it at a quiet moment)."""
        if self._saved is None:
            return
        gc.collect()
        self._last = self._clock()
