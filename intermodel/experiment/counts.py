"""Per provider, across a batch: how many replies stream now, how many requests were retried, and
how many of those a server refused with 429. What a person watching an overnight batch wants to
know first when it slows down: which provider, and whether it is saying no."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from dataclasses import asdict, dataclass

from intermodel.config.request import Request
from intermodel.providers.base import Provider, ProviderWrapper, StreamEvent
from intermodel.records import Retry

__all__ = ["CountedProvider", "ProviderCounts", "Tally"]


@dataclass
class Tally:
    streams: int = 0  # streaming now
    retries: int = 0
    rate_limited: int = 0  # retries after a 429

    def as_json(self) -> dict[str, int]:
        return asdict(self)


class ProviderCounts:
    """One tally per provider name, made on first use."""

    def __init__(self) -> None:
        self.tallies: dict[str, Tally] = {}

    def of(self, provider: str) -> Tally:
        return self.tallies.setdefault(provider, Tally())

    def retried(self, provider: str, retry: Retry) -> None:
        tally = self.of(provider)
        tally.retries += 1
        if retry.status == 429 or retry.error == "rate_limited":
            tally.rate_limited += 1

    def as_json(self) -> dict[str, dict[str, int]]:
        return {name: tally.as_json() for name, tally in sorted(self.tallies.items())}


class CountedProvider(ProviderWrapper):
    """A provider whose streams are counted while they are open."""

    def __init__(self, inner: Provider, tally: Tally) -> None:
        super().__init__(inner)
        self.tally = tally

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        self.tally.streams += 1
        try:
            async for event in self.inner.stream(request):
                yield event
        finally:
            self.tally.streams -= 1
