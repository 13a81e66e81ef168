"""Fan-out of dialogue events to any number of live subscribers.

Publishing never waits for a subscriber. Each subscription keeps its own queue; while a subscriber
lags, text (or thinking) chunks of the same stream — one agent's turn — are merged into one chunk,
even when several streams interleave (a panel), so a slow consumer receives the same text in fewer,
larger pieces and its queue stays short: at most one pending chunk per stream between two other
events. Every other event is delivered exactly once, in order, and no chunk moves across one.
(Durability is not the bus's job: the transcript writer is awaited by the dialogue before an event
is published.)
"""

from __future__ import annotations

from collections import deque
from collections.abc import AsyncIterator
from typing import Protocol

import anyio

from intermodel.engine.events import E, Event, TextChunk, ThinkingChunk, redacted
from intermodel.security.secrets import Redactor

__all__ = ["EventBus", "Subscriber", "Subscription"]


class Subscriber(Protocol):
    """Anything the bus hands each event to, synchronously, as it is published (it must not
    block: a `Subscription` queues, a control socket's feed keeps the history)."""

    def push(self, event: Event) -> None: ...

    def close(self) -> None: ...


Chunk = TextChunk | ThinkingChunk
_CHUNK_TYPES = (TextChunk, ThinkingChunk)


StreamKey = tuple[int, str]  # (turn, agent): one agent's turn


class _Merged:
    """Pieces of one stream's chunks waiting to be delivered as one (joined once, not per
    piece)."""

    __slots__ = ("agent", "kind", "parts", "turn")

    def __init__(self, *chunks: Chunk) -> None:
        self.kind = type(chunks[0])
        self.turn = chunks[0].turn
        self.agent = chunks[0].agent
        self.parts = [chunk.text for chunk in chunks]

    @property
    def key(self) -> StreamKey:
        return (self.turn, self.agent)

    def event(self) -> Chunk:
        return self.kind(self.turn, self.agent, "".join(self.parts))


class Subscription:
    """An async iterator of events; ends after the bus closes and the queue drains.

    With a `limit`, a subscriber that falls further behind than `limit` queued items (merged
    chunks count once) is cut off: its queue is dropped and it ends, `overflowed` set. That
    bounds the memory a stalled consumer in another process can hold in the run's."""

    def __init__(self, limit: int | None = None) -> None:
        self._queue: deque[Event | _Merged] = deque()
        self._limit = limit
        self.overflowed = False
        # Pending merges that later chunks of their stream may still join: only those queued
        # after the last other event, so that no chunk is delivered before an event it followed.
        self._open: dict[StreamKey, _Merged] = {}
        self._ready = anyio.Event()
        self._closed = False

    def push(self, event: Event) -> None:
        if self._closed:
            return  # cut off (or closed by its consumer): nothing more is kept
        queue = self._queue
        if not queue:  # the subscriber keeps up: the common case, kept cheap
            queue.append(event)
            self._ready.set()
            return
        if isinstance(event, _CHUNK_TYPES):  # a tuple: the fast isinstance
            key = (event.turn, event.agent)
            pending = self._open.get(key)
            if pending is not None and pending.kind is type(event):
                pending.parts.append(event.text)
                return
            # Thinking after text (or the reverse) starts a new piece: their order is kept.
            last = queue[-1]
            if (isinstance(last, _CHUNK_TYPES) and type(last) is type(event)
                    and (last.turn, last.agent) == key):
                merged = queue[-1] = _Merged(last, event)
            else:
                merged = _Merged(event)
                queue.append(merged)
                if self._limit is not None and len(queue) > self._limit:
                    self._overflow()
                    return
            self._open[key] = merged
            return
        self._open.clear()
        queue.append(event)
        self._ready.set()
        if self._limit is not None and len(queue) > self._limit:
            self._overflow()

    def _overflow(self) -> None:
        self.overflowed = True
        self._queue.clear()
        self._open.clear()
        self.close()

    def _deliver(self, item: Event | _Merged) -> Event:
        if isinstance(item, _Merged):
            if self._open.get(item.key) is item:
                del self._open[item.key]  # delivered: later chunks start a new piece
            return item.event()
        return item

    def close(self) -> None:
        self._closed = True
        self._ready.set()

    def drain(self) -> list[Event]:
        """Everything queued now, without waiting (for consumers that render in batches)."""
        items = [self._deliver(item) for item in self._queue]
        self._queue.clear()
        self._open.clear()
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
        return self._deliver(self._queue.popleft())


class EventBus:
    def __init__(self, redactor: Redactor | None = None) -> None:
        self._subscriptions: list[Subscriber] = []
        self._closed = False
        self._redactor = redactor or Redactor()

    @property
    def redactor(self) -> Redactor:
        """What removes the run's secrets from whatever it shows."""
        return self._redactor

    def cleaned(self, event: E) -> E:
        """`event` as the bus would publish it: without secrets."""
        return redacted(event, self._redactor)

    def subscribe(self, limit: int | None = None) -> Subscription:
        subscription = Subscription(limit)
        self.add(subscription)
        return subscription

    def add(self, subscriber: Subscriber) -> None:
        """Hand every event published from now on to `subscriber` (closed at once if the bus
        already is)."""
        if self._closed:
            subscriber.close()
        self._subscriptions.append(subscriber)

    @property
    def closed(self) -> bool:
        return self._closed

    def unsubscribe(self, subscription: Subscriber) -> None:
        if subscription in self._subscriptions:
            self._subscriptions.remove(subscription)
        subscription.close()

    def publish(self, event: Event) -> None:
        if not isinstance(event, _CHUNK_TYPES):
            event = redacted(event, self._redactor)
        for subscription in self._subscriptions:
            subscription.push(event)

    def close(self) -> None:
        self._closed = True
        for subscription in self._subscriptions:
            subscription.close()
