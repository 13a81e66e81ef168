"""Providers are async context managers: `async with` holds their clients, leaving releases them
(even when cancelled), and a run enters every provider it is given, wrappers included."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from intermodel.config import Pairing, parse_pairing
from intermodel.config.model import AgentConfig
from intermodel.config.request import Message, Request
from intermodel.engine.prepare import prepared_run
from intermodel.providers.base import Provider, ProviderWrapper, TextDelta
from intermodel.providers.registry import make_provider
from intermodel.security.secrets import Credentials
from tests.fakeserver import FakeServer

pytestmark = pytest.mark.anyio
PROTOCOLS = ["openai", "anthropic"]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def pairing_for(srv: FakeServer, protocol: str) -> Pairing:
    url = srv.base_url + ("" if protocol == "anthropic" else "/v1")
    api = 'api = "responses"\n' if protocol == "responses" else ""
    agents = "".join(f"""
[agents.{name}]
provider = "{'openai' if protocol == 'responses' else protocol}"
{api}model = "model-{name}"
base_url = "{url}"
api_key_env = "TEST_KEY"
timeout = 5
""" for name in ("ada", "bo"))
    return parse_pairing(f'name = "life"\n[dialogue]\nopener = "Start."\nmax_turns = 2\n'
                         f"{agents}", source="life.toml")


def client_closed(provider: object) -> bool:
    # The SDK client's own account of whether it was closed (both SDKs have `is_closed`).
    return bool(provider._client.is_closed())  # type: ignore[attr-defined]


REQUEST = Request(model="model-ada", system="", messages=(Message("user", "Hi"),))


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_async_with_streams_then_closes_the_client(server: FakeServer,
                                                         protocol: str) -> None:
    agent = pairing_for(server, protocol).agent("ada")
    provider = make_provider(agent, "bo", Credentials(api_key="k"))
    async with provider as entered:
        assert entered is provider
        text = "".join([e.text async for e in entered.stream(REQUEST)
                        if isinstance(e, TextDelta)])
        assert text.startswith("Reply 1 from model-ada")
        assert not client_closed(provider)
    assert client_closed(provider)


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_leaving_a_cancelled_block_still_closes(server: FakeServer, protocol: str) -> None:
    agent = pairing_for(server, protocol).agent("ada")
    provider = make_provider(agent, "bo", Credentials(api_key="k"))
    with anyio.CancelScope() as scope:
        async with provider:
            scope.cancel()
            await anyio.sleep(1)
    assert scope.cancelled_caught
    assert client_closed(provider)


class Counting(ProviderWrapper):
    """Passes everything through to the provider it wraps; the run enters the wrapper."""


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_run_enters_its_providers_and_leaves_them_closed(
        server: FakeServer, protocol: str, tmp_path: Path) -> None:
    made: list[Provider] = []

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        inner = make_provider(agent, partner, credentials)
        made.append(inner)
        return Counting(inner) if agent.name == "bo" else inner

    async with prepared_run(pairing_for(server, protocol), out_dir=tmp_path,
                            environ={"TEST_KEY": "k"}, provider_factory=factory) as run:
        assert not any(client_closed(p) for p in made)
        assert isinstance(run.providers["bo"], Counting)
        await run.session.run()
    assert len(made) == 2 and all(client_closed(p) for p in made)


async def test_a_wrapper_passes_the_context_probe_through(server: FakeServer) -> None:
    agent = pairing_for(server, "openai").agent("ada")
    wrapped = Counting(make_provider(agent, "bo", Credentials(api_key="k")))
    async with wrapped:
        inner_limit = await wrapped.inner.context_limit()  # type: ignore[attr-defined]
        assert await wrapped.context_limit() == inner_limit


@pytest.mark.parametrize("protocol", [*PROTOCOLS, "responses"])
async def test_replies_in_a_row_reuse_one_connection(server: FakeServer, protocol: str) -> None:
    # A stream read to its end hands its connection back to the pool; one cut short at the
    # reply's finish would cost every turn a new connection (and, to a cloud API, a TLS
    # handshake).
    agent = pairing_for(server, protocol).agent("ada")
    async with make_provider(agent, "bo", Credentials(api_key="k")) as provider:
        for _ in range(3):
            assert [e async for e in provider.stream(REQUEST) if type(e) is TextDelta]
    ports = [r.port for r in server.requests if r.stream]
    assert len(ports) == 3 and len(set(ports)) == 1, ports
