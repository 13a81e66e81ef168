"""Every fault the fake server injects, as each real SDK sees it; and the server's lifecycle."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from email.utils import parsedate_to_datetime

import anthropic
import anyio
import httpx2
import openai
import pytest

from tests.fakeserver import (
    Backlogged,
    DefaultResponder,
    FakeServer,
    Fault,
    ScriptedResponder,
)

from .conftest import (
    DEFAULT_TEXT,
    MESSAGES,
    ROOT,
    SHORT_READ,
    anthropic_client,
    anthropic_text,
    openai_client,
    openai_text,
    responses_text,
)

# Faults: what each SDK raises, on Chat Completions (openai), Anthropic Messages and OpenAI's
# Responses API. Keep in step with the table in tests/fakeserver/faults.py. Mid-stream faults
# strike after 6 events: a Responses stream opens with 4 events before its first text delta.

PROTOCOLS = ["openai", "anthropic", "responses"]
Raised = type[BaseException]
FAULT_TABLE: list[tuple[str, Fault, Raised, Raised, Raised]] = [
    ("429", Fault.status(429, retry_after="2"),
     openai.RateLimitError, anthropic.RateLimitError, openai.RateLimitError),
    ("500", Fault.status(500),
     openai.InternalServerError, anthropic.InternalServerError, openai.InternalServerError),
    ("502", Fault.status(502),
     openai.InternalServerError, anthropic.InternalServerError, openai.InternalServerError),
    ("503", Fault.status(503),
     openai.InternalServerError, anthropic.ServiceUnavailableError, openai.InternalServerError),
    ("529", Fault.status(529),
     openai.InternalServerError, anthropic.OverloadedError, openai.InternalServerError),
    ("400", Fault.status(400),
     openai.BadRequestError, anthropic.BadRequestError, openai.BadRequestError),
    ("401", Fault.status(401),
     openai.AuthenticationError, anthropic.AuthenticationError, openai.AuthenticationError),
    ("403", Fault.status(403),
     openai.PermissionDeniedError, anthropic.PermissionDeniedError, openai.PermissionDeniedError),
    ("404", Fault.status(404),
     openai.NotFoundError, anthropic.NotFoundError, openai.NotFoundError),
    ("context", Fault.context_too_long(),
     openai.BadRequestError, anthropic.BadRequestError, openai.BadRequestError),
    ("reset", Fault.reset(),
     openai.APIConnectionError, anthropic.APIConnectionError, openai.APIConnectionError),
    ("refuse", Fault.refuse(),
     openai.APIConnectionError, anthropic.APIConnectionError, openai.APIConnectionError),
    ("cut", Fault.cut_midway(6),
     openai.APIConnectionError, httpx2.RemoteProtocolError, openai.APIConnectionError),
    ("stall", Fault.stall(6, seconds=5),
     openai.APITimeoutError, httpx2.ReadTimeout, openai.APITimeoutError),
    ("malformed", Fault.malformed_sse(6),
     json.JSONDecodeError, json.JSONDecodeError, json.JSONDecodeError),
    ("stream_error", Fault.stream_error(6),
     openai.APIError, anthropic.APIStatusError, openai.APIError),
]


def _client(srv: FakeServer, protocol: str) -> openai.AsyncOpenAI | anthropic.AsyncAnthropic:
    return anthropic_client(srv) if protocol == "anthropic" else openai_client(srv)


STREAM_TEXT: dict[str, Callable[..., Awaitable[str]]] = {
    "openai": openai_text, "anthropic": anthropic_text, "responses": responses_text,
}


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("fault", "openai_raises", "anthropic_raises", "responses_raises"),
    [row[1:] for row in FAULT_TABLE],
    ids=[row[0] for row in FAULT_TABLE],
)
@pytest.mark.anyio
async def test_streamed_fault_surfaces_as(
    srv: FakeServer, protocol: str, fault: Fault,
    openai_raises: Raised, anthropic_raises: Raised, responses_raises: Raised,
) -> None:
    # Only the client under test is built: each costs an SSL context, and there are many cases.
    client = _client(srv, protocol)
    stream_text = STREAM_TEXT[protocol]
    expected = {"openai": openai_raises, "anthropic": anthropic_raises,
                "responses": responses_raises}[protocol]
    srv.faults.push(fault)
    received: list[str] = []
    async with client:
        with pytest.raises(expected) as info:
            await stream_text(client, received, timeout=SHORT_READ)
    assert type(info.value) is expected

    if fault.kind == "refuse":
        assert (srv.refusals, srv.requests) == ([fault], [])
        return
    assert srv.requests[-1].fault == fault
    if fault.mid_stream:  # part of the reply arrived before the failure
        assert received
        assert DEFAULT_TEXT.startswith("".join(received))
        assert "".join(received) != DEFAULT_TEXT


# Hostile servers: what each SDK raises, or that it raises nothing and goes on waiting or reading.
# Keep in step with the second table in tests/fakeserver/faults.py.

Outcome = type[BaseException] | str
HOSTILE_TABLE: list[tuple[str, Fault, Outcome, Outcome, Outcome]] = [
    ("silent", Fault.silent(),
     openai.APITimeoutError, anthropic.APITimeoutError, openai.APITimeoutError),
    ("drip", Fault.drip(6, seconds=0.05), "waits", "waits", "waits"),
    ("endless", Fault.endless(), "reads on", "reads on", "reads on"),
    ("linger", Fault.linger(),
     openai.APITimeoutError, httpx2.ReadTimeout, openai.APITimeoutError),
    ("linger-no-usage", Fault.linger(usage=False),
     openai.APITimeoutError, httpx2.ReadTimeout, openai.APITimeoutError),
    ("invalid_utf8", Fault.bad_payload("invalid_utf8", 6),
     UnicodeDecodeError, UnicodeDecodeError, UnicodeDecodeError),
    ("huge_int", Fault.bad_payload("huge_int", 6), ValueError, ValueError, ValueError),
    ("deep_nesting", Fault.bad_payload("deep_nesting", 6),
     RecursionError, RecursionError, RecursionError),
    ("absurd_usage", Fault.bad_payload("absurd_usage"),
     "usage 10^400", "usage 10^400", "usage 10^400"),
]


async def _hostile_outcome(client: openai.AsyncOpenAI | anthropic.AsyncAnthropic,
                           received: list[str], protocol: str) -> str:
    """Stream one reply for at most a second: how it ended, if the SDK raised nothing."""
    usage: list[int] = []
    with anyio.move_on_after(1.0):
        if protocol == "responses":
            assert isinstance(client, openai.AsyncOpenAI)
            response = await client.responses.create(model="m", input=MESSAGES, stream=True,
                                                     timeout=SHORT_READ)
            async for event in response:
                if event.type == "response.output_text.delta":
                    received.append(event.delta)
                elif event.type == "response.completed" and event.response.usage:
                    usage.append(event.response.usage.output_tokens)
        elif isinstance(client, openai.AsyncOpenAI):
            stream = await client.chat.completions.create(
                model="m", messages=MESSAGES, stream=True, timeout=SHORT_READ,
                stream_options={"include_usage": True})
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    received.append(chunk.choices[0].delta.content)
                if chunk.usage is not None:
                    usage.append(chunk.usage.completion_tokens)
        else:
            events = await client.messages.create(model="m", max_tokens=64, messages=MESSAGES,
                                                  stream=True, timeout=SHORT_READ)
            async for event in events:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    received.append(event.delta.text)
                elif event.type == "message_delta":
                    usage.append(event.usage.output_tokens)
        return f"usage 10^{len(str(usage[-1])) - 1}" if usage else "ended"
    return "reads on" if len(received) > 100 else "waits"


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.parametrize(
    ("fault", "openai_outcome", "anthropic_outcome", "responses_outcome"),
    [row[1:] for row in HOSTILE_TABLE],
    ids=[row[0] for row in HOSTILE_TABLE],
)
@pytest.mark.anyio
async def test_hostile_fault_surfaces_as(
    srv: FakeServer, protocol: str, fault: Fault, openai_outcome: Outcome,
    anthropic_outcome: Outcome, responses_outcome: Outcome,
) -> None:
    client = _client(srv, protocol)
    expected = {"openai": openai_outcome, "anthropic": anthropic_outcome,
                "responses": responses_outcome}[protocol]
    srv.faults.push(fault)
    received: list[str] = []
    async with client:
        if isinstance(expected, str):
            assert await _hostile_outcome(client, received, protocol) == expected
        else:
            with pytest.raises(expected) as info:
                await _hostile_outcome(client, received, protocol)
            assert type(info.value) is expected
    assert srv.requests[-1].fault == fault
    if fault.kind == "linger":  # the whole reply came before the silence
        assert "".join(received) == DEFAULT_TEXT
    elif fault.kind in ("drip", "bad_payload") and fault.payload != "absurd_usage":
        assert received and DEFAULT_TEXT.startswith("".join(received))


@pytest.mark.parametrize("protocol", PROTOCOLS)
@pytest.mark.anyio
async def test_sdks_follow_a_redirect_elsewhere_with_every_extra_header(
    srv: FakeServer, protocol: str
) -> None:
    with FakeServer() as elsewhere:
        path = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
                "responses": "/v1/responses"}[protocol]
        srv.faults.push(Fault.redirect(elsewhere.base_url + path, 307))
        headers = {"x-api-key": "proxy-secret", "x-proxy-token": "token-secret"}
        if protocol != "anthropic":
            async with openai.AsyncOpenAI(base_url=srv.base_url + "/v1", api_key="test-key",
                                          max_retries=0, default_headers=headers) as oai:
                assert await STREAM_TEXT[protocol](oai, [])
        else:
            async with anthropic.AsyncAnthropic(base_url=srv.base_url, api_key="test-key",
                                                max_retries=0, default_headers=headers) as ant:
                assert await anthropic_text(ant, [])
        [followed] = elsewhere.requests
    assert srv.requests[-1].fault == Fault.redirect(elsewhere.base_url + path, 307)
    assert followed.headers["x-api-key"] == "proxy-secret"
    assert followed.headers["x-proxy-token"] == "token-secret"
    assert "authorization" not in followed.headers  # the one header httpx2 strips


@pytest.mark.parametrize("kind", ["silent", "drip"])
@pytest.mark.anyio
async def test_every_request_gets_the_hostile_answer_probes_included(
    srv: FakeServer, kind: str
) -> None:
    srv.every_request = Fault.silent() if kind == "silent" else Fault.drip(seconds=0.05)
    async with httpx2.AsyncClient(base_url=srv.base_url, timeout=0.2) as http:
        with anyio.move_on_after(1.0) as waited:
            if kind == "silent":
                with pytest.raises(httpx2.ReadTimeout):
                    await http.get("/props")
            else:
                await http.get("/props")  # each byte resets the read timeout: it never fires
    assert waited.cancelled_caught == (kind == "drip")
    assert [(r.path, r.fault) for r in srv.requests] == [("/props", srv.every_request)]


@pytest.mark.anyio
async def test_a_backlogged_port_hangs_the_connection_attempt() -> None:
    with Backlogged() as port:
        started = time.perf_counter()
        async with httpx2.AsyncClient(timeout=httpx2.Timeout(5.0, connect=0.3)) as http:
            with pytest.raises(httpx2.ConnectTimeout):
                await http.get(port.base_url + "/props")
        assert 0.3 <= time.perf_counter() - started < 2


@pytest.mark.parametrize(
    ("fault", "openai_raises", "anthropic_raises"),
    [
        (Fault.cut_midway(), openai.APIConnectionError, anthropic.APIConnectionError),
        (Fault.stall(seconds=5), openai.APITimeoutError, anthropic.APITimeoutError),
        (Fault.malformed_sse(), json.JSONDecodeError, json.JSONDecodeError),
        (Fault.stream_error(), openai.InternalServerError, anthropic.OverloadedError),
    ],
    ids=["cut", "stall", "malformed", "stream_error"],
)
@pytest.mark.anyio
async def test_non_streamed_fault_surfaces_as(
    srv: FakeServer, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic,
    fault: Fault, openai_raises: type[BaseException], anthropic_raises: type[BaseException],
) -> None:
    srv.faults.push(fault, fault, fault)
    with pytest.raises(openai_raises) as oai_error:
        await oai.chat.completions.create(model="m", messages=MESSAGES, timeout=SHORT_READ)
    with pytest.raises(anthropic_raises) as ant_error:
        await ant.messages.create(
            model="m", max_tokens=64, messages=MESSAGES, timeout=SHORT_READ
        )
    with pytest.raises(openai_raises) as responses_error:  # the Responses API: as for chat
        await oai.responses.create(model="m", input=MESSAGES, timeout=SHORT_READ)
    assert (type(oai_error.value), type(ant_error.value), type(responses_error.value)) == (
        openai_raises, anthropic_raises, openai_raises)


@pytest.mark.parametrize(
    ("protocol", "fault", "cause"),
    [
        ("openai", Fault.reset(), httpx2.ReadError),
        ("openai", Fault.refuse(), httpx2.ConnectError),
        ("openai", Fault.cut_midway(), httpx2.RemoteProtocolError),
        ("openai", Fault.stall(seconds=5), httpx2.ReadTimeout),
        ("anthropic", Fault.reset(), httpx2.ReadError),
        ("anthropic", Fault.refuse(), httpx2.ConnectError),
    ],
    ids=["openai-reset", "openai-refuse", "openai-cut", "openai-stall", "anthropic-reset",
         "anthropic-refuse"],
)
@pytest.mark.anyio
async def test_connection_errors_keep_the_transport_cause(
    srv: FakeServer, protocol: str, fault: Fault, cause: type[Exception]
) -> None:
    client = openai_client(srv) if protocol == "openai" else anthropic_client(srv)
    stream_text: Callable[..., Awaitable[str]] = (
        openai_text if protocol == "openai" else anthropic_text
    )
    srv.faults.push(fault)
    async with client:
        with pytest.raises((openai.APIConnectionError, anthropic.APIConnectionError)) as info:
            await stream_text(client, [], timeout=SHORT_READ)
    assert type(info.value.__cause__) is cause


@pytest.mark.anyio
async def test_in_stream_error_bodies(
    srv: FakeServer, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    srv.faults.push(Fault.stream_error(kind="rate_limit"), Fault.stream_error())
    with pytest.raises(openai.APIError) as oai_error:
        await openai_text(oai, [])
    assert oai_error.value.body == {
        "message": "Rate limit reached for requests.", "type": "requests", "param": None,
        "code": "rate_limit_exceeded",
    }
    with pytest.raises(anthropic.APIStatusError) as ant_error:
        await anthropic_text(ant, [])
    assert ant_error.value.status_code == 200  # the stream had already started
    assert ant_error.value.body == {
        "type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}
    }


@pytest.mark.anyio
async def test_responses_in_stream_failures_in_each_shape(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    received: list[str]
    srv.faults.push(
        Fault.stream_error(6, kind="rate_limit"),
        Fault.stream_error(6, kind="rate_limit", responses="llamacpp"),
        Fault.stream_error(6, responses="error_documented"),
        Fault.stream_error(6, kind="api_error", responses="response.failed"),
    )
    # As the live API sends it, and as llama.cpp's server does: the SDK raises.
    for _ in range(2):
        received = []
        with pytest.raises(openai.APIError) as raised:
            await responses_text(oai, received)
        assert type(raised.value) is openai.APIError
        assert raised.value.body == {
            "message": "Rate limit reached for requests.", "type": "requests", "param": None,
            "code": "rate_limit_exceeded",
        }
        assert received[0] == "Reply"
        assert len(received) == 2  # the 2 text events before the failure

    # As documented, and as response.failed: the SDK yields the event and raises nothing.
    for expected in ("error", "response.failed"):
        stream = await oai.responses.create(model="m", input=MESSAGES, stream=True)
        events = [event async for event in stream]
        assert [e.sequence_number for e in events] == list(range(7))
        last = events[-1]
        assert last.type == expected
        if last.type == "error":
            assert (last.code, last.message) == (None, "Overloaded.")
        elif last.type == "response.failed":
            assert last.response.status == "failed"
            assert last.response.error is not None
            assert (last.response.error.code, last.response.error.message) == (
                "server_error", "The server had an error while processing your request.")
            assert last.response.usage is None


@pytest.mark.anyio
async def test_responses_empty_stream_ends_without_an_event(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    srv.faults.push(Fault.empty_stream())
    stream = await oai.responses.create(model="m", input=MESSAGES, stream=True)
    assert [event async for event in stream] == []


@pytest.mark.anyio
async def test_retry_after_headers(
    srv: FakeServer, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    srv.faults.push(
        Fault.status(429, retry_after="2", retry_after_ms=2000),
        Fault.status(503, retry_at=30),
        Fault.status(529, retry_after="1"),
    )
    with pytest.raises(openai.RateLimitError) as limited:
        await openai_text(oai, [])
    headers = limited.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("2", "2000")
    assert headers["x-request-id"].startswith("req_")

    with pytest.raises(openai.InternalServerError) as unavailable:
        await openai_text(oai, [])
    retry_at = parsedate_to_datetime(unavailable.value.response.headers["retry-after"])
    assert 25 < retry_at.timestamp() - time.time() <= 31

    with pytest.raises(anthropic.OverloadedError) as overloaded:
        await anthropic_text(ant, [])
    assert overloaded.value.response.headers["retry-after"] == "1"

    srv.faults.push(Fault.status(429, retry_after="3", retry_after_ms=3000))
    with pytest.raises(openai.RateLimitError) as responses_limited:
        await responses_text(oai, [])
    headers = responses_limited.value.response.headers
    assert (headers["retry-after"], headers["retry-after-ms"]) == ("3", "3000")
    assert overloaded.value.response.headers["request-id"].startswith("req_")


@pytest.mark.anyio
async def test_context_too_long_bodies(
    srv: FakeServer, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    srv.n_ctx = 2048
    srv.faults.push(
        Fault.context_too_long(), Fault.context_too_long("openai"), Fault.context_too_long()
    )
    with pytest.raises(openai.BadRequestError) as llamacpp:
        await openai_text(oai, [])
    assert llamacpp.value.body == {
        "code": 400, "type": "exceed_context_size_error", "n_prompt_tokens": 2049, "n_ctx": 2048,
        "message": "request (2049 tokens) exceeds the available context size (2048 tokens), "
                   "try increasing it",
    }
    with pytest.raises(openai.BadRequestError) as official:
        await openai_text(oai, [])
    assert official.value.code == "context_length_exceeded"
    with pytest.raises(anthropic.BadRequestError) as too_long:
        await anthropic_text(ant, [])
    assert too_long.value.body["error"]["type"] == "invalid_request_error"
    assert re.fullmatch(
        r"prompt is too long: \d+ tokens > 2048 maximum", too_long.value.body["error"]["message"]
    )
    srv.faults.push(Fault.context_too_long("openai"))
    with pytest.raises(openai.BadRequestError) as responses_official:
        await responses_text(oai, [])
    assert (responses_official.value.code, responses_official.value.param) == (
        "context_length_exceeded", "input")


@pytest.mark.anyio
async def test_faults_apply_in_order_to_generation_requests_only(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    first, second = Fault.status(500), Fault.status(429)
    srv.faults.push(first, second)
    await oai.models.list()  # not a generation request: consumes nothing
    with pytest.raises(openai.InternalServerError):
        await openai_text(oai, [])
    with pytest.raises(openai.RateLimitError):
        await openai_text(oai, [])
    assert await openai_text(oai, [])
    assert [r.fault for r in srv.requests] == [None, first, second, None]
    assert len(srv.faults) == 0
    srv.reset()
    assert srv.requests == []


def test_fault_rate_is_seeded_and_queue_goes_first() -> None:
    def statuses(seed: int) -> list[int]:
        with FakeServer() as server, httpx2.Client(base_url=server.base_url) as http:
            server.fault_rate(0.5, seed=seed, kinds=[Fault.status(500)])
            server.faults.push(Fault.status(418))
            body = {"model": "m", "messages": MESSAGES}
            return [http.post("/v1/chat/completions", json=body).status_code for _ in range(30)]

    first = statuses(7)
    assert first == statuses(7)
    assert first != statuses(8)
    assert first[0] == 418
    assert set(first[1:]) == {200, 500}


@pytest.mark.anyio
async def test_refuse_reaches_a_pooled_client_then_the_port_reopens(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    await openai_text(oai, [])  # leaves a keep-alive connection in the client's pool
    port = srv.base_url
    srv.faults.push(Fault.refuse(seconds=0.2))
    with pytest.raises(openai.APIConnectionError) as info:
        await openai_text(oai, [])
    assert isinstance(info.value.__cause__, httpx2.ConnectError)
    await anyio.sleep(0.5)
    assert await openai_text(oai, [])
    assert srv.base_url == port
    assert len(srv.requests) == 2


@pytest.mark.anyio
async def test_default_fault_mix_raises_only_sdk_or_transport_errors() -> None:
    with FakeServer() as server:
        server.fault_rate(0.4, seed=4)  # this seed draws a refusal and a stall within 20
        outcomes = []
        async with openai_client(server, timeout=SHORT_READ) as oai:
            for _ in range(20):
                try:
                    await openai_text(oai, [])
                    outcomes.append("ok")
                except (openai.APIError, json.JSONDecodeError) as error:
                    outcomes.append(type(error).__name__)
                    if isinstance(error.__cause__, httpx2.ConnectError):
                        await anyio.sleep(0.6)  # wait out the refusal window
        kinds = {r.fault.kind for r in server.requests if r.fault}
        assert server.refusals
    assert outcomes.count("ok") >= 6
    assert len(kinds) >= 4


@pytest.mark.anyio
async def test_chunk_delay_spaces_out_events(srv: FakeServer, oai: openai.AsyncOpenAI) -> None:
    srv.responder = ScriptedResponder(["a b c d e"])
    srv.chunk_delay = 0.02
    started = time.perf_counter()
    assert await openai_text(oai, []) == "a b c d e"
    assert time.perf_counter() - started >= 0.02 * 9  # keep-alive, role, 5 pieces, finish, DONE


def _server_threads() -> list[threading.Thread]:
    return [t for t in threading.enumerate() if t.name.startswith("fakeserver")]


@pytest.mark.anyio
async def test_stop_wakes_stalls_joins_threads_and_prints_nothing(
    capfd: pytest.CaptureFixture[str],
) -> None:
    with FakeServer() as server:
        async with openai_client(server, timeout=SHORT_READ) as oai:
            server.faults.push(Fault.reset(), Fault.cut_midway(), Fault.stall(seconds=60))
            for _ in range(3):
                with pytest.raises(openai.APIConnectionError):
                    await openai_text(oai, [])
            server.responder = DefaultResponder(chunks=200_000)
            stream = await oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
            async for _ in stream:
                break  # walk away mid-stream
            await stream.close()
        assert _server_threads()
        stopping = time.perf_counter()
    assert time.perf_counter() - stopping < 1  # the 60 s stall was cut short
    assert _server_threads() == []
    assert capfd.readouterr().err == ""


def test_module_entry_point_serves_until_sigterm() -> None:
    command = [sys.executable, "-m", "tests.fakeserver", "--port", "0", "--chunks", "7"]
    with subprocess.Popen(
        command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    ) as proc:
        try:
            assert proc.stdout is not None
            assert proc.stderr is not None
            ready = proc.stdout.readline().split()
            assert ready[0] == "READY"
            assert ready[1].startswith("http://127.0.0.1:")
            body = {"model": "m", "stream": True, "messages": MESSAGES}
            sse = httpx2.post(ready[1] + "/v1/chat/completions", json=body).text
            chunks = [json.loads(line[6:]) for line in sse.splitlines()
                      if line.startswith("data: {")]
            assert sum(1 for c in chunks if c["choices"] and "content" in c["choices"][0]["delta"]
                       and c["choices"][0]["delta"]["content"]) == 7
            proc.send_signal(signal.SIGTERM)
            assert proc.wait(timeout=5) == 0
            assert proc.stderr.read() == ""
        finally:
            if proc.poll() is None:
                proc.kill()
