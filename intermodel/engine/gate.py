"""The pause/step gate a dialogue passes before each turn.

Commands change it at any time; the turn loop waits at it between turns only, so a streaming turn
is always finished first (a stop is not the gate's business, but must wake a waiting loop: `open`).
"""

from __future__ import annotations

from collections.abc import Callable

import anyio

__all__ = ["Gate"]


class Gate:
    def __init__(self) -> None:
        self.paused = False
        self._steps = 0  # turns allowed through while paused
        self._changed = anyio.Event()

    def pause(self) -> bool:
        """Pause before the next turn; False if already paused."""
        if self.paused:
            return False
        self.paused, self._steps = True, 0
        return True

    def resume(self) -> bool:
        """Let turns through again; False if not paused."""
        if not self.paused:
            return False
        self.paused, self._steps = False, 0
        self.open()
        return True

    def step(self, *, turn_under_way: bool) -> bool:
        """One more turn, then pause. True when paused (one turn is let through); when running,
        the gate pauses after the turn under way (or, between turns, after the next one)."""
        if self.paused:
            self._steps += 1
            self.open()
            return True
        self.paused, self._steps = True, 0 if turn_under_way else 1
        return False

    def open(self) -> None:
        """Wake the loop waiting at the gate, to look again."""
        self._changed.set()

    async def wait(self, stopping: Callable[[], bool]) -> None:
        """Return when a turn may start: not paused, a step allows one, or the run is stopping
        (asked again at every wake-up)."""
        while self.paused and self._steps == 0 and not stopping():
            await self._changed.wait()
            self._changed = anyio.Event()
        if self.paused and self._steps:
            self._steps -= 1
