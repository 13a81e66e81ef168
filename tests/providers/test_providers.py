"""The openai and anthropic providers, through the real SDKs, over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import anyio
import pytest

from intermodel.config import Pairing, parse_pairing
from intermodel.config.request import Message, Request, Sampling
from intermodel.engine.events import Retrying, TurnCompleted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import ProviderError
from intermodel.providers.anthropic import AnthropicProvider
from intermodel.providers.base import Finished, StreamEvent, TextDelta, ThinkingDelta, UsageReport
from intermodel.providers.openai import OpenAIProvider
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Fault, Reply, ScriptedResponder

pytestmark = pytest.mark.anyio

KEY = "test-key-0123456789"
PROTOCOLS = ["openai", "anthropic"]


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def agent_toml(name: str, protocol: str, srv: FakeServer, extra: str = "") -> str:
    url = srv.base_url + ("/v1" if protocol == "openai" else "")
    return f"""
[agents.{name}]
provider = "{protocol}"
model = "model-{name}"
base_url = "{url}"
api_key_env = "TEST_KEY"
prompt = "You are {{name}}."
timeout = 1
max_tokens = 512
{extra}
"""


def pairing_for(srv: FakeServer, a: str = "openai", b: str = "anthropic", *, turns: int = 4,
                extra_a: str = "", extra_b: str = "", dialogue: str = "") -> Pairing:
    text = f"""
name = "wire"
[dialogue]
opener = "Start."
max_turns = {turns}
{dialogue}
[retry]
backoff_initial = 0.01
backoff_max = 0.05
max_retry_after = 0.3
{agent_toml("ada", a, srv, extra_a)}
{agent_toml("bo", b, srv, extra_b)}
"""
    return parse_pairing(text, source="wire.toml")


def provider_for(protocol: str, srv: FakeServer, extra: str = ""):  # type: ignore[no-untyped-def]
    pairing = pairing_for(srv, protocol, protocol, extra_a=extra)
    agent = pairing.agent("ada")
    cls = OpenAIProvider if protocol == "openai" else AnthropicProvider
    return cls(agent, Credentials(api_key=KEY))


def request(thinking_budget: int | None = None, **sampling: object) -> Request:
    return Request(model="model-x", system="Be kind.",
                   messages=(Message("user", "Hi"), Message("assistant", "Hello"),
                             Message("user", "How are you?")),
                   sampling=Sampling(**sampling),  # type: ignore[arg-type]
                   thinking_budget=thinking_budget)


async def collect(provider, req: Request) -> list[StreamEvent]:  # type: ignore[no-untyped-def]
    try:
        return [event async for event in provider.stream(req)]
    finally:
        await provider.aclose()


def split(events: list[StreamEvent]) -> tuple[str, str, list[UsageReport], Finished]:
    text = "".join(e.text for e in events if isinstance(e, TextDelta))
    thinking = "".join(e.text for e in events if isinstance(e, ThinkingDelta))
    usage = [e for e in events if isinstance(e, UsageReport)]
    finished = [e for e in events if isinstance(e, Finished)]
    assert len(finished) == 1 and events[-1] is finished[0]
    return text, thinking, usage, finished[0]


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_reply_streams_with_usage_and_the_reported_model(
        server: FakeServer, protocol: str) -> None:
    server.responder = ScriptedResponder([Reply("Fine, thanks for asking.", model="served-x",
                                                usage=(42, 7))])
    events = await collect(provider_for(protocol, server), request())
    text, thinking, usage, finished = split(events)
    assert text == "Fine, thanks for asking."
    assert thinking == ""
    assert [(u.input_tokens, u.output_tokens) for u in usage] == [(42, 7)]
    assert finished.model == "served-x"
    assert finished.stop_reason == ("stop" if protocol == "openai" else "end_turn")
    assert sum(isinstance(e, TextDelta) for e in events) > 3  # really streamed


@pytest.mark.parametrize("style", ["reasoning_content", "reasoning", "think_tags"])
async def test_openai_reasoning_in_every_form_becomes_thinking(server: FakeServer,
                                                               style: str) -> None:
    server.responder = ScriptedResponder([Reply("The answer is 4.", thinking="2 plus 2 is 4.",
                                                thinking_style=style)])  # type: ignore[arg-type]
    text, thinking, _, _ = split(await collect(provider_for("openai", server), request()))
    assert (thinking, text) == ("2 plus 2 is 4.", "The answer is 4.")


async def test_anthropic_thinking_comes_with_its_signature(server: FakeServer) -> None:
    server.responder = ScriptedResponder([Reply("Four.", thinking="Two and two.")])
    events = await collect(provider_for("anthropic", server), request(thinking_budget=1024))
    text, thinking, _, finished = split(events)
    assert (thinking, text) == ("Two and two.", "Four.")
    assert finished.signature
    sent = server.requests[-1].json
    assert sent["thinking"] == {"type": "enabled", "budget_tokens": 1024}


async def test_openai_request_on_the_wire(server: FakeServer) -> None:
    extra = 'seed = 7\ntemperature = 0.3\nstop = ["END"]\n[agents.ada.extra_body]\ntop_k = 5\n'
    provider = provider_for("openai", server, extra)
    await collect(provider, request(max_tokens=64, seed=provider.agent.sampling.seed,
                                    temperature=0.3, stop=("END",)))
    sent = server.requests[-1]
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    body = sent.json
    assert body["messages"] == [
        {"role": "system", "content": "Be kind."}, {"role": "user", "content": "Hi"},
        {"role": "assistant", "content": "Hello"}, {"role": "user", "content": "How are you?"}]
    assert body["stream"] is True and body["stream_options"] == {"include_usage": True}
    assert body["max_tokens"] == 64  # a compatible server, not api.openai.com
    assert (body["seed"], body["temperature"], body["stop"]) == (7, 0.3, ["END"])
    assert "x-stainless-retry-count" not in sent.headers or \
        sent.headers["x-stainless-retry-count"] == "0"


async def test_anthropic_request_on_the_wire(server: FakeServer) -> None:
    req = Request(model="m", system="Be kind.",
                  messages=(Message("user", "Hi"),
                            Message("assistant", "Hello", thinking="hm", signature="sig"),
                            Message("user", "Again?")),
                  sampling=Sampling(max_tokens=99, stop=("END",)))
    await collect(provider_for("anthropic", server), req)
    body = server.requests[-1].json
    assert body["system"] == "Be kind."
    assert body["max_tokens"] == 99
    assert body["stop_sequences"] == ["END"]
    assert "temperature" not in body  # API version 2026-10-21 refuses sampling settings
    assert body["messages"][1] == {"role": "assistant", "content": [
        {"type": "thinking", "thinking": "hm", "signature": "sig"},
        {"type": "text", "text": "Hello"}]}


async def test_servers_that_send_no_usage_give_none_not_invented_counts(
        server: FakeServer) -> None:
    server.responder = ScriptedResponder([Reply("No usage here.", include_usage=False)])
    _, _, usage, _ = split(await collect(provider_for("openai", server), request()))
    assert usage == []


FAULTS = [
    (Fault.status(429, retry_after="2"), "rate_limited", 2.0),
    # An HTTP date an hour after the server sends it (whenever in the suite the test runs).
    (Fault.status(429, retry_at=3600), "rate_limited", 3600.0),
    (Fault.status(500), "server_unavailable", None),
    (Fault.status(502), "server_unavailable", None),
    (Fault.status(503), "server_unavailable", None),
    (Fault.status(529), "server_unavailable", None),
    (Fault.reset(), "connection_failed", None),
    (Fault.cut_midway(after_chunks=2), "stream_interrupted", None),
    (Fault.stall(after_chunks=2, seconds=1.6), "timed_out", None),
    (Fault.malformed_sse(after_chunks=2), "stream_interrupted", None),
    (Fault.stream_error(after_chunks=2), "server_unavailable", None),
    (Fault.status(400), "bad_request", None),
    (Fault.status(401), "authentication_failed", None),
    (Fault.status(403), "authentication_failed", None),
    (Fault.status(404), "model_not_found", None),
    (Fault.context_too_long(), "context_too_long", None),
]


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(("fault", "kind", "retry_after"), FAULTS,
                         ids=[f"{f.kind}-{f.code or ''}" for f, _, _ in FAULTS])
async def test_every_failure_becomes_one_of_our_errors(
        server: FakeServer, protocol: str, fault: Fault, kind: str,
        retry_after: float | None) -> None:
    server.faults.push(fault)
    with pytest.raises(ProviderError) as caught:
        await collect(provider_for(protocol, server), request())
    error = caught.value
    assert error.kind == kind
    assert error.provider == protocol
    assert error.transient == (kind in {"rate_limited", "server_unavailable", "connection_failed",
                                        "stream_interrupted", "timed_out"})
    if retry_after is not None:
        assert error.retry_after == pytest.approx(retry_after, abs=120)
    assert len(server.requests) == 1  # the SDK's own retries are off


async def test_connection_refused_is_transient(tmp_path: Path) -> None:
    with FakeServer() as srv:
        pairing = pairing_for(srv)
    agent = pairing.agent("ada")  # the server is gone: nothing listens on that port now
    with pytest.raises(ProviderError) as caught:
        await collect(OpenAIProvider(agent, Credentials(api_key=KEY)), request())
    assert caught.value.kind == "connection_failed"


@pytest.mark.parametrize(("a", "b"), [("openai", "anthropic"), ("anthropic", "openai")])
async def test_a_dialogue_survives_faults_and_records_each_retry(
        server: FakeServer, tmp_path: Path, a: str, b: str) -> None:
    server.faults.push(Fault.status(429, retry_after="0.05"), Fault.ok(), Fault.cut_midway(2),
                       Fault.stream_error(1), Fault.ok(), Fault.status(503))
    pairing = pairing_for(server, a, b, turns=4)
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        subscription = run.session.subscribe()
        with anyio.fail_after(20):
            end = await run.session.run()
    assert end.reason == "max_turns"
    events = subscription.drain()
    turns = [e.turn for e in events if isinstance(e, TurnCompleted)]
    assert [t.agent for t in turns] == ["ada", "bo", "ada", "bo"]
    assert all(t.text.startswith("Reply") for t in turns)
    retries = [e.retry for e in events if isinstance(e, Retrying)]
    assert len(retries) == 4
    assert run.transcript is not None
    transcript = read_transcript(run.transcript)
    assert len(transcript.turns) == 4
    assert KEY not in run.transcript.read_text()
    # Each turn's request as recorded is the one the server received.
    from intermodel.lineage.audit import verify_transcript

    assert all(r.matches for r in verify_transcript(transcript))


async def test_a_fatal_error_ends_the_run_at_once(server: FakeServer, tmp_path: Path) -> None:
    server.faults.push(Fault.ok(), Fault.status(401))
    pairing = pairing_for(server)
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        end = await run.session.run()
    assert end.reason == "error"
    assert end.detail.startswith("bo: anthropic 401 authentication failed")
    assert len([r for r in server.requests if r.method == "POST"]) == 2  # no retry
    assert run.transcript is not None
    last = read_transcript(run.transcript).end
    assert last is not None and last.reason == "error"


async def test_an_error_that_echoes_the_key_is_redacted(server: FakeServer,
                                                        tmp_path: Path) -> None:
    body = {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "invalid_api_key",
                      "code": "invalid_api_key"}}
    server.faults.push(Fault.status(401, body=body))
    pairing = pairing_for(server)
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        end = await run.session.run()
    assert KEY not in end.detail and "[redacted]" in end.detail
    assert run.transcript is not None
    assert KEY not in run.transcript.read_text()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_extras_pass_through_unchanged(server: FakeServer, protocol: str) -> None:
    pairing = pairing_for(server, protocol, protocol)
    cls = OpenAIProvider if protocol == "openai" else AnthropicProvider
    provider = cls(pairing.agent("ada"), Credentials(api_key=KEY, headers={"X-Trace": "t-1"}))
    req = Request(model="m", system="", messages=(Message("user", "Hi"),),
                  extra_body={"top_k": 5, "metadata": {"run": "r1"}})
    await collect(provider, req)
    sent = server.requests[-1]
    assert sent.headers["x-trace"] == "t-1"
    assert sent.json["top_k"] == 5 and sent.json["metadata"] == {"run": "r1"}
    assert "system" not in sent.json or sent.json["system"] != ""
