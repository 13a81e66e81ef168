"""What every provider speaks: a provider-neutral request in, typed stream events out.

A provider knows one API and nothing about dialogues. It takes a `Request` (the agent's own view of
the conversation plus its settings) and yields `TextDelta`, `ThinkingDelta`, `UsageReport` and
finally exactly one `Finished`; between them, `HEARTBEAT` for each complete event that carried
nothing to show. Any failure leaves it as a `ProviderError` subclass.

A reply from a server over the network comes with `ReplyLimits` (see `registry.reply_limits`): how
long it may stall or last and how long it may grow before the turn producer gives up on it.
In-process providers (local, scripted) have none.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from intermodel.config.digest import canonical_digest

__all__ = [
    "HEARTBEAT",
    "Finished",
    "Heartbeat",
    "Message",
    "ProbeFailed",
    "Provider",
    "ReplyLimits",
    "Request",
    "Sampling",
    "StreamEvent",
    "TextDelta",
    "ThinkingDelta",
    "UsageReport",
]

Role = Literal["user", "assistant"]


@dataclass(frozen=True, slots=True)
class Message:
    """One message of an agent's view. `thinking` is set only on the agent's own turns when its
    pairing sends its thinking back to it; `signature` is the provider's proof for that thinking
    (Anthropic requires it to accept thinking blocks back)."""

    role: Role
    content: str
    thinking: str = ""
    signature: str = ""

    def to_json(self) -> dict[str, str]:
        data = {"role": self.role, "content": self.content}
        if self.thinking:
            data["thinking"] = self.thinking
        if self.signature:
            data["signature"] = self.signature
        return data


@dataclass(frozen=True, slots=True)
class Sampling:
    temperature: float | None = None
    top_p: float | None = None
    max_tokens: int = 1024
    seed: int | None = None
    stop: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        return {
            "temperature": self.temperature,
            "top_p": self.top_p,
            "max_tokens": self.max_tokens,
            "seed": self.seed,
            "stop": list(self.stop),
        }


@dataclass(frozen=True, slots=True)
class Request:
    """Everything a provider needs for one call, and nothing that identifies the caller's secrets.

    `thinking_budget` asks for extended thinking where the API has it (Anthropic); `extra_body` and
    `extra_headers` pass through provider extras. Header values are as the pairing wrote them,
    `${VAR}` references unexpanded: a request never holds a secret, so it can be hashed and
    stored; providers send the values resolved from their credentials.
    """

    model: str
    system: str
    messages: tuple[Message, ...]
    sampling: Sampling = field(default_factory=Sampling)
    thinking_budget: int | None = None
    extra_body: Mapping[str, Any] = field(default_factory=dict)
    extra_headers: Mapping[str, str] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {
            "model": self.model,
            "system": self.system,
            "messages": [m.to_json() for m in self.messages],
            "sampling": self.sampling.to_json(),
            "thinking_budget": self.thinking_budget,
            "extra_body": dict(self.extra_body),
            "extra_headers": dict(self.extra_headers),
        }

    def digest(self) -> str:
        """SHA-256 of the canonical JSON of this request: the fingerprint a transcript keeps so
        anyone can later check that a rebuilt request is exactly the one that was sent."""
        return canonical_digest(self.to_json())


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
