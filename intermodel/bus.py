"""Fan-out of dialogue events to any number of live subscribers.

Publishing never waits for a subscriber. Each subscription keeps its own queue; while a subscriber
lags, adjacent text (or thinking) chunks of the same turn are merged into one chunk, so a slow
consumer receives the same text in fewer, larger pieces and its queue stays short. Every other event
is delivered exactly once, in order. (Durability is not the bus's job: the transcript writer is
awaited by the dialogue before an event is published.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator

import anyio

from intermodel.events import Event, TextChunk, ThinkingChunk

__all__ = ["EventBus", "Subscription"]


Chunk = TextChunk | ThinkingChunk
_CHUNK_TYPES = (TextChunk, ThinkingChunk)


class _Merged:
    """Pieces of adjacent chunks waiting to be delivered as one (joined once, not per piece)."""

    __slots__ = ("agent", "kind", "parts", "turn")

    def __init__(self, first: Chunk, second: Chunk) -> None:
        self.kind = type(first)
        self.turn = first.turn
        self.agent = first.agent
        self.parts = [first.text, second.text]

    def continues(self, chunk: Chunk) -> bool:
        return type(chunk) is self.kind and chunk.turn == self.turn and chunk.agent == self.agent

    def event(self) -> Chunk:
        return self.kind(self.turn, self.agent, "".join(self.parts))


def _deliver(item: Event | _Merged) -> Event:
    return item.event() if isinstance(item, _Merged) else item


class Subscription:
    """An async iterator of events; ends after the bus closes and the queue drains."""

    def __init__(self) -> None:
        self._queue: deque[Event | _Merged] = deque()
        self._ready = anyio.Event()
        self._closed = False

    def push(self, event: Event) -> None:
        queue = self._queue
        if queue and isinstance(event, _CHUNK_TYPES):  # a tuple: the fast isinstance
            last = queue[-1]
            if isinstance(last, _Merged):
                if last.continues(event):
                    last.parts.append(event.text)
                    return
            elif (isinstance(last, _CHUNK_TYPES) and type(last) is type(event)
                  and last.turn == event.turn and last.agent == event.agent):
                queue[-1] = _Merged(last, event)
                return
        queue.append(event)
        self._ready.set()

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def drain(self) -> list[Event]:
        """Everything queued now, without waiting (for consumers that render in batches)."""
        items = [_deliver(item) for item in self._queue]
        self._queue.clear()
        return items

    async def wait(self) -> bool:
        """Wait until something is queued; False once closed and empty."""
        while not self._queue:
            if self._closed:
                return False
            await self._ready.wait()
            self._ready = anyio.Event()
        return True

    def __aiter__(self) -> AsyncIterator[Event]:
        return self

    async def __anext__(self) -> Event:
        if not await self.wait():
            raise StopAsyncIteration
        return _deliver(self._queue.popleft())


class EventBus:
    def __init__(self) -> None:
        self._subscriptions: list[Subscription] = []
        self._closed = False

    def subscribe(self) -> Subscription:
        subscription = Subscription()
        if self._closed:
            subscription.close()
        self._subscriptions.append(subscription)
        return subscription

    def unsubscribe(self, subscription: Subscription) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription.close()

    def publish(self, event: Event) -> None:
        for subscription in self._subscriptions:
            subscription.push(event)

    def close(self) -> None:
        self._closed = True
        for subscription in self._subscriptions:
            subscription.close()
