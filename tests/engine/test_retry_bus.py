from __future__ import annotations

import random
from datetime import UTC, datetime

import anyio
import pytest

from intermodel.config.model import RetryConfig
from intermodel.engine.bus import EventBus
from intermodel.engine.events import Paused, TextChunk, ThinkingChunk
from intermodel.engine.retry import RetryPolicy
from intermodel.errors import BadRequest, RateLimited, ServerUnavailable
from intermodel.providers.errors import error_for_status, parse_retry_after


def policy(**kw: float) -> RetryPolicy:
    return RetryPolicy(RetryConfig(**kw), random.Random(1))  # type: ignore[arg-type]


def test_backoff_doubles_with_jitter_up_to_the_cap() -> None:
    p = policy(backoff_initial=1, backoff_max=8, attempts=10, max_wait=1000)
    waits = [p.wait_before_retry(ServerUnavailable("x"), n, 0) for n in range(1, 7)]
    for n, wait in enumerate(waits, start=1):
        full = min(8, 2 ** (n - 1))
        assert wait is not None and full / 2 <= wait <= full


def test_retry_after_is_honoured_up_to_its_cap() -> None:
    p = policy(backoff_initial=0.1, max_retry_after=30)
    assert p.wait_before_retry(RateLimited("x", retry_after=12), 1, 0) == 12
    assert p.wait_before_retry(RateLimited("x", retry_after=3600), 1, 0) == 30


def test_fatal_errors_are_never_retried_and_limits_hold() -> None:
    p = policy(attempts=2, max_wait=10)
    assert p.wait_before_retry(BadRequest("no"), 1, 0) is None
    assert p.wait_before_retry(ServerUnavailable("x"), 3, 0) is None
    assert p.wait_before_retry(RateLimited("x", retry_after=8), 1, 5) is None


def test_a_pool_server_failing_while_another_is_ready_is_retried_at_once() -> None:
    p = policy(attempts=2, backoff_initial=5, max_wait=10)
    rerouted = RateLimited("x", retry_after=60)
    rerouted.elsewhere = True
    assert p.wait_before_retry(rerouted, 1, 0) == 0.0  # Retry-After is that server's alone
    assert p.wait_before_retry(rerouted, 3, 0) is None  # attempts still count
    refused = BadRequest("no")
    refused.elsewhere = True  # never set for fatal errors; and would change nothing
    assert p.wait_before_retry(refused, 1, 0) is None


def test_retry_after_parsing() -> None:
    now = datetime(2026, 1, 1, 12, 0, 0, tzinfo=UTC)
    assert parse_retry_after({"retry-after": "7"}) == 7
    assert parse_retry_after({"retry-after-ms": "1500", "retry-after": "9"}) == 1.5
    assert parse_retry_after({"retry-after": "Thu, 01 Jan 2026 12:00:30 GMT"}, now) == 30
    assert parse_retry_after({"retry-after": "soon"}) is None
    assert parse_retry_after({}) is None


@pytest.mark.parametrize(("status", "body", "kind"), [
    (429, "Rate limit reached", "rate_limited"),
    (429, "You exceeded your current quota (insufficient_quota)", "quota_exhausted"),
    (401, "bad key", "authentication_failed"),
    (403, "forbidden", "authentication_failed"),
    (404, "model not found", "model_not_found"),
    (400, "request (9031 tokens) exceeds the available context size", "context_too_long"),
    (400, "prompt is too long: 210000 tokens > 200000 maximum", "context_too_long"),
    (400, "temperature must be <= 1", "bad_request"),
    (500, "boom", "server_unavailable"),
    (529, "Overloaded", "server_unavailable"),
    (408, "timeout", "timed_out"),
])
def test_status_classification(status: int, body: str, kind: str) -> None:
    assert error_for_status(status, body, provider="p").kind == kind


@pytest.mark.anyio
async def test_bus_merges_chunks_for_a_lagging_subscriber_and_keeps_order() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    for piece in ("a", "b", "c"):
        bus.publish(TextChunk(1, "ada", piece))
    bus.publish(ThinkingChunk(1, "ada", "t"))
    bus.publish(TextChunk(1, "ada", "d"))
    bus.publish(Paused())
    bus.publish(TextChunk(2, "bo", "e"))
    bus.close()
    got = [e async for e in sub]
    assert got == [TextChunk(1, "ada", "abc"), ThinkingChunk(1, "ada", "t"),
                   TextChunk(1, "ada", "d"), Paused(), TextChunk(2, "bo", "e")]


@pytest.mark.anyio
async def test_bus_delivers_to_every_subscriber_independently() -> None:
    bus = EventBus()
    fast, slow = bus.subscribe(), bus.subscribe()
    received: list[str] = []

    async def reader() -> None:
        async for event in fast:
            assert isinstance(event, TextChunk)
            received.append(event.text)

    async with anyio.create_task_group() as tg:
        tg.start_soon(reader)
        for n in range(5):
            bus.publish(TextChunk(1, "ada", str(n)))
            await anyio.sleep(0.01)
        bus.close()
    assert received == ["0", "1", "2", "3", "4"]
    assert slow.drain() == [TextChunk(1, "ada", "01234")]


@pytest.mark.anyio
async def test_interleaved_streams_merge_per_agent_without_crossing_other_events() -> None:
    bus = EventBus()
    sub = bus.subscribe()
    bus.publish(Paused())  # something queued: from here on the subscriber lags
    for piece in range(3):
        for agent in ("ann", "ben", "cy"):
            bus.publish(TextChunk(1, agent, f"{agent[0]}{piece}"))
    bus.publish(Paused())
    bus.publish(TextChunk(1, "ann", "a3"))
    bus.publish(ThinkingChunk(1, "ann", "t"))
    bus.publish(TextChunk(1, "ann", "a4"))
    bus.close()
    got = [e async for e in sub]
    assert got == [Paused(), TextChunk(1, "ann", "a0a1a2"), TextChunk(1, "ben", "b0b1b2"),
                   TextChunk(1, "cy", "c0c1c2"), Paused(), TextChunk(1, "ann", "a3"),
                   ThinkingChunk(1, "ann", "t"), TextChunk(1, "ann", "a4")]
