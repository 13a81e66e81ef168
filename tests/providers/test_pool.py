"""Endpoint pools (`base_urls`): real runs against three real loopback servers, through the real
SDKs. Requests go to the least busy server, a failing one is set aside and its turn retried on
another at once, fatal errors are not retried elsewhere, and every turn names its server."""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, Iterator
from contextlib import ExitStack
from pathlib import Path

import anyio
import pytest

from intermodel.config import parse_pairing
from intermodel.config.model import AgentConfig
from intermodel.config.request import Message, Request
from intermodel.engine.prepare import prepared_run
from intermodel.providers.base import Provider, Serving, StreamEvent, TextDelta
from intermodel.providers.pool import PooledProvider
from intermodel.providers.registry import make_provider
from intermodel.records import Retry, RunEnd
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import Transcript, read_transcript
from tests.fakeserver import FakeServer, Fault, Reply, ScriptedResponder
from tests.fakeserver.handler import GENERATION_PATHS

pytestmark = pytest.mark.anyio

KEY = "pool-test-key-0123456789"
PROTOCOLS = ["openai", "anthropic"]


@pytest.fixture
def servers() -> Iterator[list[FakeServer]]:
    """Three servers; each answers every request with its own name, so a turn shows who
    served it."""
    with ExitStack() as stack:
        found = [stack.enter_context(FakeServer()) for _ in range(3)]
        for n, server in enumerate(found):
            server.responder = ScriptedResponder([Reply(f"I am server {n}.")])
        yield found


def url_of(server: FakeServer, protocol: str) -> str:
    return server.base_url + ("/v1" if protocol == "openai" else "")


def generations(server: FakeServer) -> int:
    """Model requests the server received (the context probes aside)."""
    return sum(1 for r in server.requests if r.path in GENERATION_PATHS)


def pool_pairing_text(urls: list[str], protocol: str = "openai", *, turns: int = 6,
                      agent_extra: str = "", retry: str = "") -> str:
    listed = ", ".join(f'"{u}"' for u in urls)
    agents = "".join(f"""
[agents.{name}]
provider = "{protocol}"
model = "m"
base_urls = [{listed}]
api_key_env = "TEST_KEY"
timeout = 5
max_tokens = 64
{agent_extra}
""" for name in ("ada", "bo"))
    return f"""
name = "pool"
[dialogue]
opener = "Start."
max_turns = {turns}
[retry]
{retry or "backoff_initial = 5"}
{agents}"""


async def run_pool(text: str, tmp_path: Path) -> tuple[RunEnd, Transcript]:
    pairing = parse_pairing(text, source="pool.toml")
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        with anyio.fail_after(30):
            end = await run.session.run()
    assert run.transcript is not None
    return end, read_transcript(run.transcript)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_turns_spread_over_the_healthy_servers_and_a_failing_one_is_set_aside(
        servers: list[FakeServer], tmp_path: Path, protocol: str) -> None:
    good, bad, other = servers
    bad.fault_rate(1.0, seed=1, kinds=[Fault.status(500)])  # every model request fails
    urls = [url_of(s, protocol) for s in servers]
    # A backoff of 5 s would show: the retry on another server must not wait at all.
    end, transcript = await run_pool(pool_pairing_text(urls, protocol), tmp_path)

    assert end.reason == "max_turns"
    assert [t.index for t in transcript.turns] == [1, 2, 3, 4, 5, 6]  # no turn lost
    for turn in transcript.turns:  # each names the server that answered it
        assert turn.text == f"I am server {urls.index(turn.endpoint)}."
        assert turn.endpoint != urls[1]
    # Round robin among the idle servers: 0, then 1 (fails, set aside) and at once 2, then 0, 2…
    assert [urls.index(t.endpoint) for t in transcript.turns] == [0, 2, 0, 2, 0, 2]
    assert [t.attempts for t in transcript.turns] == [1, 2, 1, 1, 1, 1]
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert (retry.turn, retry.error, retry.status, retry.wait, retry.endpoint) == (
        2, "server_unavailable", 500, 0.0, urls[1])
    # Set aside after one failure: it was not asked again within its cool-down.
    assert (generations(good), generations(bad), generations(other)) == (3, 1, 3)


async def test_a_server_that_refuses_connections_is_set_aside(
        servers: list[FakeServer], tmp_path: Path) -> None:
    servers[0].stop()  # down: its port refuses connections
    urls = [url_of(s, "openai") for s in servers]
    end, transcript = await run_pool(pool_pairing_text(urls, turns=4), tmp_path)

    assert end.reason == "max_turns"
    assert [urls.index(t.endpoint) for t in transcript.turns] == [1, 2, 1, 2]
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert (retry.turn, retry.error, retry.wait, retry.endpoint) == (
        1, "connection_failed", 0.0, urls[0])
    assert (generations(servers[1]), generations(servers[2])) == (2, 2)


async def test_a_fatal_error_is_not_retried_on_another_server(
        servers: list[FakeServer], tmp_path: Path) -> None:
    servers[0].faults.push(Fault.status(400))  # the request itself is refused
    urls = [url_of(s, "openai") for s in servers]
    end, transcript = await run_pool(pool_pairing_text(urls, turns=2), tmp_path)

    assert end.reason == "error"
    assert end.detail.startswith(f"ada: openai at {urls[0]} 400 bad request")
    assert not [r for r in transcript.records if isinstance(r, Retry)]
    assert transcript.turns == []
    assert (generations(servers[1]), generations(servers[2])) == (0, 0)


async def test_when_every_server_is_set_aside_the_backoff_applies(
        servers: list[FakeServer], tmp_path: Path) -> None:
    first, second = servers[:2]
    first.faults.push(Fault.status(503))
    second.faults.push(Fault.status(503))
    urls = [url_of(s, "openai") for s in (first, second)]
    end, transcript = await run_pool(
        pool_pairing_text(urls, turns=2, agent_extra="endpoint_cool_down = 60",
                          retry="backoff_initial = 0.2\nbackoff_max = 0.2"), tmp_path)

    assert end.reason == "max_turns"
    retries = [r for r in transcript.records if isinstance(r, Retry)]
    # The first failure has another server ready: at once. The second has none: a backoff.
    assert [(r.endpoint, r.wait > 0) for r in retries] == [(urls[0], False), (urls[1], True)]
    # Then the server whose cool-down ends first is tried, answers, and is back at once; the
    # other is still set aside, so turn 2 goes to the first again.
    assert [(t.endpoint, t.attempts) for t in transcript.turns] == [(urls[0], 3), (urls[0], 1)]
    assert (generations(first), generations(second)) == (3, 1)


def agent_on(urls: list[str]) -> AgentConfig:
    return AgentConfig(name="ada", provider="openai", model="m", base_urls=tuple(urls),
                       timeout=5)


def request() -> Request:
    return Request(model="m", system="", messages=(Message("user", "Hi"),))


async def start(provider: Provider) -> tuple[AsyncGenerator[StreamEvent, None], str]:
    """A request to `provider`, read until its reply has begun streaming and then held there,
    in flight: the stream, and the server it went to."""
    events = provider.stream(request())
    first = await anext(events)
    assert isinstance(first, Serving)
    async for event in events:
        if isinstance(event, TextDelta):
            return events, first.endpoint
    raise AssertionError("the reply never began")


async def complete(provider: Provider) -> str:
    """A whole request to `provider`: the server that answered it."""
    events, endpoint = await start(provider)
    async for _ in events:
        pass
    return endpoint


async def test_requests_go_to_the_server_with_the_fewest_in_flight(
        servers: list[FakeServer]) -> None:
    urls = [url_of(s, "openai") for s in servers[:2]]
    provider = make_provider(agent_on(urls), "", Credentials(api_key=KEY))
    assert isinstance(provider, PooledProvider)
    async with provider:
        with anyio.fail_after(20):
            slow, where = await start(provider)  # held in flight on the first server
            assert where == urls[0]
            # Round robin would alternate; the least busy server takes them all.
            assert [await complete(provider) for _ in range(3)] == [urls[1]] * 3
            # Now one in flight on each: a tie, settled round robin (after the last chosen).
            held, where = await start(provider)
            assert where == urls[1]
            third, where = await start(provider)
            assert where == urls[0]
            for stream in (slow, held, third):
                await stream.aclose()
    assert [e.in_flight for e in provider.pool.endpoints] == [0, 0]
    assert [generations(s) for s in servers[:2]] == [2, 4]


async def test_concurrent_requests_spread_over_the_pool(servers: list[FakeServer]) -> None:
    for server in servers:
        server.chunk_delay = 0.05  # replies long enough to overlap
    urls = [url_of(s, "openai") for s in servers]
    provider = make_provider(agent_on(urls), "", Credentials(api_key=KEY))
    served: list[str] = []
    async with provider, anyio.create_task_group() as tg:
        for _ in range(9):
            tg.start_soon(lambda: _append(served, complete(provider)))
    assert sorted(served) == sorted(urls * 3)
    assert [generations(s) for s in servers] == [3, 3, 3]


async def _append(found: list[str], endpoint: object) -> None:
    found.append(await endpoint)  # type: ignore[misc]


async def test_a_pool_is_shared_by_every_provider_that_lists_its_servers(
        servers: list[FakeServer]) -> None:
    urls = [url_of(s, "openai") for s in servers]
    one = make_provider(agent_on(urls), "", Credentials(api_key=KEY))
    two = make_provider(agent_on(urls), "", Credentials(api_key=KEY))
    assert isinstance(one, PooledProvider) and isinstance(two, PooledProvider)
    assert one.pool is two.pool  # as for two runs of a batch
    async with one, two:
        with anyio.fail_after(20):
            first, where_one = await start(one)
            second, where_two = await start(two)
            assert (where_one, where_two) == (urls[0], urls[1])
            await first.aclose()
            await second.aclose()


async def test_turn_records_on_disk_name_their_server_without_credentials(
        servers: list[FakeServer], tmp_path: Path) -> None:
    host = servers[0].base_url.removeprefix("http://")
    urls = [f"http://user:pool-secret-word@{host}/v1"]
    end, transcript = await run_pool(pool_pairing_text(urls, turns=1), tmp_path)
    assert end.reason == "max_turns", end.detail
    lines = [json.loads(line) for line in transcript.path.read_text().splitlines()]
    [turn] = [line for line in lines if line.get("kind") == "turn"]
    assert turn["endpoint"] == f"http://{host}/v1"
    assert "pool-secret-word" not in transcript.path.read_text().split("\n", 1)[1]
