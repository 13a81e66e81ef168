"""When the garbage collector walks what: between turns, and the run's history seldom.

A full collection walks every tracked object: the run's records, the screen's model, whatever
Textual keeps for the lines on screen, and whatever the app made since it started. Left to
itself, Python starts one whenever enough objects have outlived the two younger collections,
which during a stream means in the middle of a screen update: a pause of 10-30 ms, longer as the
run's history grows. While the app runs:

- what is alive once it has started (modules, classes, the screen's widgets: 50,000 objects or
  more, never garbage while it runs) is frozen, out of every collection's walk;
- the automatic full collection is off (the young generations still collect what dies young);
- the app runs a full collection itself once a turn has ended and its last lines are on screen,
  `SHORTEST_GAP` seconds after the last one at the soonest (turns streamed flat out, a few
  hundredths of a second each, do not each pay for a walk); and, for runs whose turns never end
  (a very long reply, a panel's slow answers), at the next event once `LONGEST_GAP` seconds have
  passed without one;
- what survives that collection is frozen in turn: the turn's records and the screen's entry for
  it, which live as long as the run. So each collection walks what came since the last one, not
  the whole history: 2-5 ms at turn 10 and at turn 501 on the bench's machine;
- something frozen that later dies in a reference cycle (the panes' restyles at each turn leave
  about 1,000 such objects, Textual's virtual nodes for their component styles) waits for the
  next thaw, which walks everything once and freezes it again: at a turn's end `THAW_GAP` seconds
  after the last thaw. Turns of a few seconds leave a few tens of thousands of such objects
  between two thaws; turns streamed flat out (one collection a second) at most 300,000. A thaw's
  pause grows with the run, as every full collection's did before (about 45 ms at turn 10 and at
  turn 501 there, most of it what was alive at the start); it comes every few minutes instead of
  at every turn.

All of it is undone when the app ends.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Callable

__all__ = ["LONGEST_GAP", "SHORTEST_GAP", "THAW_GAP", "Collector"]

SHORTEST_GAP = 1.0  # seconds at least between two full collections at turns' ends
LONGEST_GAP = 60.0  # seconds of events at most between two full collections
THAW_GAP = 300.0  # seconds at least between two walks of everything (thaws)
_NEVER = 1 << 30  # a full-collection threshold no run reaches


class Collector:
    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._saved: tuple[int, int, int] | None = None
        self._last = 0.0
        self._thawed = 0.0  # when everything was last walked
        self.thaws = 0  # collections that walked everything (the start's included)

    def start(self) -> None:
        """Freeze what is alive, and take the full collections over from Python."""
        if self._saved is not None:
            return
        young, middle, _ = self._saved = gc.get_threshold()
        gc.set_threshold(young, middle, _NEVER)
        self._walk_everything()

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

    @property
    def thaw_due(self) -> bool:
        """Whether the next collection walks everything: the last did `THAW_GAP` seconds ago."""
        return self._clock() - self._thawed >= THAW_GAP

    def collect(self) -> None:
        """A full collection, now (the app calls it at a quiet moment), of what came since the
        last one; of everything once a thaw is due."""
        if self._saved is None:
            return
        if self.thaw_due:
            self._walk_everything()
            return
        gc.collect()
        gc.freeze()
        self._last = self._clock()

    def _walk_everything(self) -> None:
        gc.unfreeze()
        gc.collect()
        gc.freeze()
        self.thaws += 1
        self._last = self._thawed = self._clock()
