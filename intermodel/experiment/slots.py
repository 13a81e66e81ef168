"""A run's place among the batch's `concurrency`, given back while the run waits.

A run holds its place while it works, and gives it back when a request fails (the engine then
waits out a backoff) or while its provider is cooling down after a 429; it takes a place again
before its next request. So runs on a provider that is down wait without holding the places that
runs on healthy providers need. A failure that is retried at once, on another server of an
endpoint pool, keeps the place.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable

import anyio

from intermodel.config.request import Request
from intermodel.errors import ProviderError
from intermodel.experiment.limits import SharedLimit
from intermodel.providers.base import Provider, ProviderWrapper, StreamEvent

__all__ = ["RunSlot", "SlotProvider"]


class RunSlot:
    def __init__(self, places: anyio.CapacityLimiter,
                 on_take: Callable[[], None] | None = None) -> None:
        self._places = places
        self._held = False
        self._on_take = on_take

    @property
    def held(self) -> bool:
        return self._held

    async def take(self) -> None:
        if not self._held:
            await self._places.acquire_on_behalf_of(self)
            self._held = True
            if self._on_take is not None:
                self._on_take()

    def give_back(self) -> None:
        if self._held:
            self._places.release_on_behalf_of(self)
            self._held = False


class SlotProvider(ProviderWrapper):
    """A provider whose requests are made holding the run's place, which a failed request
    gives back."""

    def __init__(self, inner: Provider, slot: RunSlot, limit: SharedLimit | None) -> None:
        super().__init__(inner)
        self.slot = slot
        self.limit = limit

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        if self.limit is not None:
            await self.limit.cooled()  # before taking a place, not holding one
        await self.slot.take()
        try:
            async for event in self.inner.stream(request):
                yield event
        except Exception as error:
            # A backoff follows, or the end of the run; but a pool's failing server is retried
            # on another at once, in the place the run holds.
            if not (isinstance(error, ProviderError) and error.elsewhere):
                self.slot.give_back()
            raise
