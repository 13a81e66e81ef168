"""Endpoint pools: one agent served by several servers of the same model (`base_urls`).

Each request goes to the server with the fewest requests in flight. Ties go round robin: to the
first tied server, in the order of `base_urls`, after the one chosen last. A server that fails
with a transient error (refused, reset, 5xx, 429, timed out, a broken stream) is set aside for
the agent's `endpoint_cool_down` (or the server's Retry-After, when longer, up to
MAX_COOL_DOWN), and the error says whether another server is ready (`ProviderError.elsewhere`):
the retry policy then retries the turn at once, where it goes to that server. When every server
is set aside, the request goes to the one whose cool-down ends first, after the retry policy's
usual backoff; a success there brings it back at once. Fatal errors (a refused request, a bad
key, no such model) pass through untouched: another server would refuse the same request.

The load and cool-downs of a server are kept per address for the whole process (`SHARED`), so
every run and every agent that uses a server sees the same count: a batch of concurrent runs
spreads over the pool as one client would. Each attempt's stream begins with `Serving`, naming
its server (a URL without credentials or query), which the turn or retry records.
"""

from __future__ import annotations

import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass

import anyio

from intermodel.config.request import Request
from intermodel.errors import ProviderError, TransientError
from intermodel.providers.base import (
    ProbeFailed,
    Provider,
    ProviderBase,
    Serving,
    StreamEvent,
)
from intermodel.security.secrets import public_url

__all__ = ["MAX_COOL_DOWN", "SHARED", "Endpoint", "EndpointPool", "PooledProvider", "Pools"]

# The longest a server's Retry-After may set it aside (the agent's own cool-down aside).
MAX_COOL_DOWN = 600.0


@dataclass
class Endpoint:
    """One server, as every pool that lists it sees it."""

    url: str
    label: str  # the URL as it may be written down: no credentials, no query
    in_flight: int = 0
    cool_until: float = 0.0  # time.monotonic() at which a set-aside server is back

    def cooling(self, now: float) -> bool:
        return self.cool_until > now


class EndpointPool:
    """The servers of one `base_urls` list, and which one the next request goes to."""

    def __init__(self, endpoints: Sequence[Endpoint]) -> None:
        if not endpoints:
            raise ValueError("an endpoint pool needs at least one server")
        self.endpoints = tuple(endpoints)
        self._next = 0  # where round robin starts among tied servers

    def take(self) -> tuple[int, bool]:
        """The server the next request goes to (its index), counted as in flight, and whether
        it was set aside when taken (every server was)."""
        now = time.monotonic()
        n = len(self.endpoints)

        def turn(i: int) -> int:  # its place in the round robin
            return (i - self._next) % n

        ready = [i for i, e in enumerate(self.endpoints) if not e.cooling(now)]
        if ready:
            chosen = min(ready, key=lambda i: (self.endpoints[i].in_flight, turn(i)))
        else:
            chosen = min(range(n), key=lambda i: (self.endpoints[i].cool_until,
                                                  self.endpoints[i].in_flight, turn(i)))
        self._next = (chosen + 1) % n
        endpoint = self.endpoints[chosen]
        endpoint.in_flight += 1
        return chosen, not ready

    def release(self, index: int) -> None:
        self.endpoints[index].in_flight -= 1

    def set_aside(self, index: int, seconds: float) -> None:
        endpoint = self.endpoints[index]
        endpoint.cool_until = max(endpoint.cool_until, time.monotonic() + seconds)

    def restore(self, index: int) -> None:
        self.endpoints[index].cool_until = 0.0

    def ready_besides(self, index: int) -> bool:
        """Whether a server other than `index` is not set aside."""
        now = time.monotonic()
        return any(i != index and not e.cooling(now) for i, e in enumerate(self.endpoints))


class Pools:
    """Servers by address and pools by their list of addresses, made on first use: every pool
    that lists a server shares its count of requests in flight and its cool-down."""

    def __init__(self) -> None:
        self._endpoints: dict[str, Endpoint] = {}
        self._pools: dict[tuple[str, ...], EndpointPool] = {}

    def pool(self, urls: Sequence[str]) -> EndpointPool:
        key = tuple(urls)
        found = self._pools.get(key)
        if found is None:
            found = self._pools[key] = EndpointPool([self._endpoint(u) for u in key])
        return found

    def _endpoint(self, url: str) -> Endpoint:
        found = self._endpoints.get(url)
        if found is None:
            found = self._endpoints[url] = Endpoint(url, public_url(url))
        return found


SHARED = Pools()  # the process's pools: what `registry.make_provider` uses


class PooledProvider(ProviderBase):
    """One provider per server of a pool (`members`, in the pool's order), used as one."""

    def __init__(self, members: Sequence[Provider], pool: EndpointPool,
                 cool_down: float) -> None:
        if len(members) != len(pool.endpoints):
            raise ValueError("one provider per server of the pool")
        self.members = tuple(members)
        self.pool = pool
        self.cool_down = cool_down
        self.name = members[0].name

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        index, probing = self.pool.take()
        endpoint = self.pool.endpoints[index]
        try:
            yield Serving(endpoint.label)
            async for event in self.members[index].stream(request):
                yield event
        except ProviderError as error:
            error.endpoint = endpoint.label
            if isinstance(error, TransientError):
                wait = min(MAX_COOL_DOWN, error.retry_after or 0.0)
                self.pool.set_aside(index, max(self.cool_down, wait))
                error.elsewhere = self.pool.ready_besides(index)
            raise
        else:
            if probing:
                self.pool.restore(index)  # it answered while every server was set aside
        finally:
            self.pool.release(index)

    async def context_limit(self) -> int | None:
        """The smallest context of the servers that say (all asked at once): a request that
        fits it fits any of them. ProbeFailed only when none could be asked."""
        found: list[int | None] = []
        failures: list[ProbeFailed] = []

        async def ask(member: Provider) -> None:
            limit = getattr(member, "context_limit", None)
            if limit is None:
                found.append(None)
                return
            try:
                found.append(await limit())
            except ProbeFailed as failed:
                failures.append(failed)

        async with anyio.create_task_group() as tg:
            for member in self.members:
                tg.start_soon(ask, member)
        sizes = [size for size in found if size is not None]
        if sizes:
            return min(sizes)
        if failures and not found:
            raise failures[0]
        return None

    async def aclose(self) -> None:
        for member in self.members:
            await member.aclose()
