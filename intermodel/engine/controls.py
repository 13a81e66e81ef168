"""Commands a person (or a script) sends to a running dialogue.

The Textual UI, the headless console's signal handlers and the control socket all send these same
commands through `Controls`, which is safe to call from synchronous code on the event loop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import anyio
from anyio.streams.memory import MemoryObjectSendStream

from intermodel.records import EndReason

__all__ = [
    "Command",
    "Controls",
    "Extend",
    "Interject",
    "Pause",
    "Resume",
    "Step",
    "Stop",
]


@dataclass(frozen=True, slots=True)
class Interject:
    text: str
    to: str  # "a", "b", "both", or an agent name


@dataclass(frozen=True, slots=True)
class Pause:
    """Pause before the next turn (a streaming turn is finished first)."""


@dataclass(frozen=True, slots=True)
class Resume:
    pass


@dataclass(frozen=True, slots=True)
class Step:
    """Run exactly one more turn, then pause."""


@dataclass(frozen=True, slots=True)
class Stop:
    """End the run. `now` discards a streaming turn; otherwise it is finished first."""

    now: bool = True
    reason: EndReason = EndReason.STOPPED  # or INTERRUPTED, by a signal


@dataclass(frozen=True, slots=True)
class Extend:
    turns: int


StopReason = Literal[EndReason.STOPPED, EndReason.INTERRUPTED]
Command = Interject | Pause | Resume | Step | Stop | Extend


class Controls:
    """A handle for sending commands; cheap to pass around."""

    def __init__(self, send: MemoryObjectSendStream[Command]) -> None:
        self._send = send

    def send(self, command: Command) -> bool:
        """Queue a command; False when the run has already ended."""
        try:
            self._send.send_nowait(command)
        except (anyio.ClosedResourceError, anyio.BrokenResourceError):
            return False
        return True

    def interject(self, text: str, to: str = "both") -> bool:
        return self.send(Interject(text, to))

    def pause(self) -> bool:
        return self.send(Pause())

    def resume(self) -> bool:
        return self.send(Resume())

    def step(self) -> bool:
        return self.send(Step())

    def stop(self, *, now: bool = True,
             reason: StopReason | Literal["stopped", "interrupted"] = EndReason.STOPPED) -> bool:
        return self.send(Stop(now=now, reason=EndReason(reason)))

    def extend(self, turns: int) -> bool:
        return self.send(Extend(turns))
