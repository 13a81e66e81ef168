"""Limits shared by every run of a batch: streams at once and requests per minute, per provider.

A limit applies to every agent whose provider name (`anthropic`, `openai`, `local`, ...) or
exact `base_url` names it in the experiment's `[limits]` (the base_url wins). When any run is told
to slow down (429 with Retry-After), every run using that limit waits, so a batch does not keep
hammering a provider that already said no. A limit's `streams` also bounds how many runs using it
are in progress at once (its share of the batch's concurrency): more could only wait for a
stream, holding a place that a run on another provider could use.
"""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator, Iterable, Mapping

import anyio

from intermodel.config.experiment import Limit
from intermodel.config.model import AgentConfig
from intermodel.config.request import Request
from intermodel.errors import RateLimited
from intermodel.providers.base import Provider, ProviderWrapper, StreamEvent

__all__ = ["LimitedProvider", "Limiters", "SharedLimit"]

# How long to hold everyone back after a 429 that did not say how long.
_DEFAULT_COOL_DOWN = 5.0
_MAX_COOL_DOWN = 300.0


class SharedLimit:
    def __init__(self, key: str, limit: Limit) -> None:
        self.key = key
        self._streams = anyio.CapacityLimiter(limit.streams or math.inf)
        self.runs = anyio.CapacityLimiter(limit.streams or math.inf)  # runs in progress
        self._interval = 60.0 / limit.requests_per_minute if limit.requests_per_minute else 0.0
        self._next_start = 0.0
        self._cool_until = 0.0

    async def admit(self) -> None:
        """Wait until the next request may start (paced evenly, after any cool-down)."""
        now = anyio.current_time()
        start = max(now, self._next_start, self._cool_until)
        self._next_start = start + self._interval  # reserved before sleeping: no await above
        if start > now:
            await anyio.sleep(start - now)

    async def cooled(self) -> None:
        """Wait out a cool-down (a 429 told everyone to hold back), reserving nothing."""
        wait = self._cool_until - anyio.current_time()
        if wait > 0:
            await anyio.sleep(wait)

    def cool_down(self, seconds: float | None) -> None:
        wait = min(_MAX_COOL_DOWN, seconds if seconds is not None else _DEFAULT_COOL_DOWN)
        self._cool_until = max(self._cool_until, anyio.current_time() + wait)

    @property
    def streams(self) -> anyio.CapacityLimiter:
        return self._streams


class Limiters:
    """One SharedLimit per configured key, created on first use."""

    def __init__(self, limits: Mapping[str, Limit]) -> None:
        self._limits = dict(limits)
        self._shared: dict[str, SharedLimit] = {}

    def for_agent(self, agent: AgentConfig) -> SharedLimit | None:
        for key in (agent.base_url, agent.provider):
            if key is not None and key in self._limits:
                if key not in self._shared:
                    self._shared[key] = SharedLimit(key, self._limits[key])
                return self._shared[key]
        return None

    def shares_for(self, agents: Iterable[AgentConfig]) -> list[SharedLimit]:
        """The limits a run of `agents` uses, each once, in one order for every run (so runs
        that take several never wait on each other in a circle)."""
        found = {limit.key: limit for agent in agents
                 if (limit := self.for_agent(agent)) is not None}
        return [found[key] for key in sorted(found)]

    def wrap(self, agent: AgentConfig, provider: Provider) -> Provider:
        limit = self.for_agent(agent)
        return provider if limit is None else LimitedProvider(provider, limit)


class LimitedProvider(ProviderWrapper):
    """A provider that asks its shared limit before every request."""

    def __init__(self, inner: Provider, limit: SharedLimit) -> None:
        super().__init__(inner)
        self.limit = limit

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        async with self.limit.streams:
            await self.limit.admit()
            try:
                async for event in self.inner.stream(request):
                    yield event
            except RateLimited as error:
                # One server of an endpoint pool saying no holds back that server alone (the
                # pool sets it aside), not every run on the provider.
                if not error.elsewhere:
                    self.limit.cool_down(error.retry_after)
                raise
