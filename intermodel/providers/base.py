"""What every provider speaks: a provider-neutral request in, typed stream events out.

A provider knows one API and nothing about dialogues. It takes a `Request` (the agent's own view of
the conversation plus its settings, `intermodel.config.request`) and yields `TextDelta`,
`ThinkingDelta`, `UsageReport` and finally exactly one `Finished`; between them, `HEARTBEAT` for
each complete event that carried nothing to show. Any failure leaves it as a `ProviderError`
subclass.

A reply from a server over the network comes with `ReplyLimits` (see `registry.reply_limits`): how
long it may stall or last and how long it may grow before the turn producer gives up on it.
In-process providers (local, scripted) have none.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Protocol

from intermodel.config.request import Request

__all__ = [
    "HEARTBEAT",
    "Finished",
    "Heartbeat",
    "ProbeFailed",
    "Provider",
    "ReplyLimits",
    "StreamEvent",
    "TextDelta",
    "ThinkingDelta",
    "UsageReport",
]

# Deltas are created once per token: plain slotted classes (frozen ones cost three times as much
# to create). Treat them as immutable.
@dataclass(slots=True)
class TextDelta:
    text: str


@dataclass(slots=True)
class ThinkingDelta:
    text: str


@dataclass(frozen=True, slots=True)
class UsageReport:
    """Token counts as the server reported them (None where it did not say)."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None


@dataclass(frozen=True, slots=True)
class Finished:
    stop_reason: str
    model: str  # the model id the server reported, which may differ from the one asked for
    signature: str = ""  # provider proof of the thinking, kept so it can be sent back later


class Heartbeat:
    """A complete event that carried nothing to show (a ping, a block's start, the role chunk):
    proof that the server is still answering, for the stall watchdog. Yield `HEARTBEAT`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT = Heartbeat()

StreamEvent = TextDelta | ThinkingDelta | UsageReport | Finished | Heartbeat


@dataclass(frozen=True, slots=True)
class ReplyLimits:
    """What one reply from a server may cost before intermodel gives up on it.

    `stall`: seconds without a complete event (a server that drips a byte now and then never
    trips a read timeout); `seconds`: the whole reply, however steadily it streams (both end the
    attempt as timed out, and it is retried); `chars`: text and thinking together, past which the
    reply is cut and kept, as a length stop of intermodel's own (an endless stream).
    """

    stall: float
    seconds: float
    chars: int


class ProbeFailed(Exception):
    """A provider's `context_limit` could not ask its server (not reached, or no answer in
    time); the message says why."""


class Provider(Protocol):
    """One API. `stream` yields events for one request; `aclose` releases clients and models.
    A provider that can tell its context size also has `async context_limit() -> int | None`,
    which may raise ProbeFailed."""

    name: str

    def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]: ...

    async def aclose(self) -> None: ...
