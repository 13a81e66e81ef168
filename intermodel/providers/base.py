"""What every provider speaks: a provider-neutral request in, typed stream events out.

A provider knows one API and nothing about dialogues. It takes a `Request` (the agent's own view of
the conversation plus its settings, `intermodel.config.request`) and yields `TextDelta`,
`ThinkingDelta`, `UsageReport` and finally exactly one `Finished`; between them, `HEARTBEAT` for
each complete event that carried nothing to show. A provider over an endpoint pool first yields
`Serving`, naming the server the attempt goes to. Any failure leaves it as a `ProviderError`
subclass.

A provider is an async context manager: `async with provider:` holds its clients (or its share
of a loaded model) for as long as the block runs and releases them when it ends, however it
ends. A provider class derives from `ProviderBase`, which supplies that from `aclose`; one that
a config can name derives from `ConfiguredProvider`, declaring its `Capabilities`
(`config.capabilities`) and how it is made from an agent's config. A provider that wraps another
(a rate limit, a test double) derives from `ProviderWrapper`, which passes all of it through.

A reply from a server over the network comes with `ReplyLimits` (see `registry.reply_limits`): how
long it may stall or last and how long it may grow before the turn producer gives up on it.
In-process providers (local, scripted) have none.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from types import TracebackType
from typing import ClassVar, Protocol, Self

import anyio

from intermodel.config.capabilities import Capabilities
from intermodel.config.model import AgentConfig
from intermodel.config.request import Request
from intermodel.records import ReasoningItem
from intermodel.security.secrets import Credentials

__all__ = [
    "CLOSE_SECONDS",
    "HEARTBEAT",
    "ConfiguredProvider",
    "Finished",
    "Heartbeat",
    "ProbeFailed",
    "Provider",
    "ProviderBase",
    "ProviderWrapper",
    "ReplyLimits",
    "Serving",
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
    # Reasoning items to hand back with the agent's later requests (OpenAI's Responses API).
    reasoning_items: tuple[ReasoningItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Serving:
    """The server of an endpoint pool that this attempt goes to (its URL without credentials or
    query): the first event of a pooled provider's stream (`providers.pool`)."""

    endpoint: str


class Heartbeat:
    """A complete event that carried nothing to show (a ping, a block's start, the role chunk):
    proof that the server is still answering, for the stall watchdog. Yield `HEARTBEAT`."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "HEARTBEAT"


HEARTBEAT = Heartbeat()

StreamEvent = TextDelta | ThinkingDelta | UsageReport | Finished | Heartbeat | Serving


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


CLOSE_SECONDS = 5.0  # the longest leaving a provider's block may take


class ProbeFailed(Exception):
    """A provider's `context_limit` could not ask its server (not reached, or no answer in
    time); the message says why."""


class Provider(Protocol):
    """One API, as a run uses it. `stream` yields events for one request; `async with provider`
    holds its clients and models while the block runs (`aclose` releases them directly). A
    provider that can tell its context size also has `async context_limit() -> int | None`, which
    may raise ProbeFailed."""

    name: str

    def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]: ...

    async def aclose(self) -> None: ...

    async def __aenter__(self) -> Self: ...

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None: ...


class ProviderBase(ABC):
    """What a provider class derives from: the context manager around `aclose`.

    Clients are made with the provider (making one opens no connection; the first request
    does) and released on exit, so entering has nothing left to do."""

    name: str

    @abstractmethod
    def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]: ...

    @abstractmethod
    async def aclose(self) -> None:
        """Release clients and models; a second call does nothing."""

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        # Released even when the block was cancelled (a cancelled close would leak its client),
        # within CLOSE_SECONDS: the shield must carry its own bound, as it hides the caller's.
        with anyio.CancelScope(shield=True), anyio.move_on_after(CLOSE_SECONDS):
            await self.aclose()


class ConfiguredProvider(ProviderBase):
    """A provider an agent's config can name (see `registry.REGISTRY`): its name, its declared
    capabilities, and how it is made from the agent's config."""

    name: str  # the name the config and the registry use
    capabilities: ClassVar[Capabilities]  # its entry in config.capabilities.PROVIDERS

    @classmethod
    @abstractmethod
    def for_agent(cls, agent: AgentConfig, partner: str, credentials: Credentials) -> Self:
        """The provider of `agent` (whose partner is `partner`, "" in a panel), with its
        resolved credentials."""


class ProviderWrapper:
    """A provider around another (`inner`): it streams through the inner provider by default,
    and entering, leaving, closing and the context probe pass through to it."""

    inner: Provider
    name: str

    def __init__(self, inner: Provider) -> None:
        self.inner = inner
        self.name = inner.name

    def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        return self.inner.stream(request)

    async def context_limit(self) -> int | None:
        ask = getattr(self.inner, "context_limit", None)
        return None if ask is None else await ask()

    async def aclose(self) -> None:
        await self.inner.aclose()

    async def __aenter__(self) -> Self:
        await self.inner.__aenter__()
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        await self.inner.__aexit__(kind, error, traceback)
