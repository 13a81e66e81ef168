"""The fake server, exercised through the real openai and anthropic SDKs and plain httpx."""

from __future__ import annotations

import json
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from email.utils import parsedate_to_datetime
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx
import httpx2
import openai
import pytest

from tests.fakeserver import (
    TRANSIENT_MIX,
    DefaultResponder,
    FakeServer,
    Fault,
    Reply,
    ScriptedResponder,
    http_date,
    split_tokens,
)

ROOT = Path(__file__).resolve().parents[1]
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about the sea, please."}]
DEFAULT_TEXT = (
    "Reply 1 from m: I read 1 messages; the last one began 'Tell me about the sea, please.'."
)
SHORT_READ = httpx2.Timeout(5.0, read=0.2)  # well under every stall below


@pytest.fixture
def srv() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def openai_client(
    srv: FakeServer, key: str = "test-key", timeout: float | httpx2.Timeout = 5.0
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=srv.base_url + "/v1", api_key=key, max_retries=0, timeout=timeout
    )


def anthropic_client(srv: FakeServer, key: str = "test-key") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=srv.base_url, api_key=key, max_retries=0, timeout=5.0)


@pytest.fixture
async def oai(srv: FakeServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai_client(srv) as client:
        yield client


@pytest.fixture
async def ant(srv: FakeServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic_client(srv) as client:
        yield client


async def openai_text(client: openai.AsyncOpenAI, received: list[str], **kwargs: Any) -> str:
    """Stream a reply, appending content pieces to `received` as they arrive."""
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, **kwargs
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
    return "".join(received)


async def anthropic_text(
    client: anthropic.AsyncAnthropic, received: list[str], **kwargs: Any
) -> str:
    stream = await client.messages.create(
        model="m", max_tokens=1024, messages=MESSAGES, stream=True, **kwargs
    )
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            received.append(event.delta.text)
    return "".join(received)


@pytest.mark.parametrize(
    "text", ["", "Two colours are:\n\nRed (Ace) and", "  spaced  out\t_snake_case_ x=1.5e3 ünï"]
)
def test_split_tokens_joins_back_to_the_text(text: str) -> None:
    assert "".join(split_tokens(text)) == text


def test_split_tokens_looks_like_real_tokens() -> None:
    assert split_tokens("Two colours are:\n\nRed") == [
        "Two", " colours", " are", ":", "\n", "\n", "Red"
    ]


# OpenAI protocol


@pytest.mark.anyio
async def test_openai_stream_has_role_text_finish_and_usage(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    stream = await oai.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, stream_options={"include_usage": True}
    )
    chunks = [chunk async for chunk in stream]

    assert chunks[0].choices[0].delta.role == "assistant"
    pieces = [c.choices[0].delta.content for c in chunks if c.choices]
    pieces = [p for p in pieces if p]
    assert "".join(pieces) == DEFAULT_TEXT
    assert [c.choices[0].finish_reason for c in chunks if c.choices][-1] == "stop"
    assert chunks[-1].choices == []
    usage = chunks[-1].usage
    assert usage is not None
    assert (usage.prompt_tokens, usage.completion_tokens) == (len(MESSAGES[0]["content"]) // 4 + 1,
                                                              len(pieces))
    assert usage.total_tokens == usage.prompt_tokens + usage.completion_tokens
    assert {(c.id, c.model, c.object) for c in chunks} == {
        (chunks[0].id, "m", "chat.completion.chunk")
    }


@pytest.mark.anyio
async def test_requests_are_recorded(srv: FakeServer, oai: openai.AsyncOpenAI) -> None:
    await openai_text(oai, [])
    [request] = srv.requests
    assert (request.method, request.path, request.protocol) == (
        "POST", "/v1/chat/completions", "openai"
    )
    assert request.headers["authorization"] == "Bearer test-key"
    assert request.json["messages"] == MESSAGES
    assert request.stream
    assert request.fault is None


@pytest.mark.parametrize("style", ["reasoning_content", "reasoning", "think_tags", "none"])
@pytest.mark.anyio
async def test_openai_thinking_styles(
    srv: FakeServer, oai: openai.AsyncOpenAI, style: Any
) -> None:
    thinking, text = "Water absorbs red light.", "It is blue."
    srv.responder = ScriptedResponder([Reply(text, thinking=thinking, thinking_style=style)])
    stream = await oai.chat.completions.create(model="m", messages=MESSAGES, stream=True)
    deltas = [chunk.choices[0].delta async for chunk in stream if chunk.choices]

    contents = [d.content for d in deltas if d.content]
    extras = {
        key: "".join((d.model_extra or {}).get(key) or "" for d in deltas)
        for key in ("reasoning_content", "reasoning")
    }
    if style == "think_tags":
        assert "".join(contents) == f"<think>{thinking}</think>{text}"
        assert not any("<think>" in c or "</think>" in c for c in contents)  # tags straddle chunks
    else:
        assert "".join(contents) == text
    for key, value in extras.items():
        assert value == (thinking if key == style else "")


@pytest.mark.anyio
async def test_openai_usage_follows_stream_options_unless_the_reply_ignores_them(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    srv.responder = ScriptedResponder(
        [Reply("One two.", usage=(5, 2)), Reply("One two."), Reply("One.", include_usage=False)]
    )
    include = {"include_usage": True}
    usages = []
    for options in (include, None, include):
        kwargs = {"stream_options": options} if options else {}
        stream = await oai.chat.completions.create(
            model="m", messages=MESSAGES, stream=True, **kwargs
        )
        usages.append([c.usage for c in [c async for c in stream] if c.usage])
    [first], second, third = usages
    assert (first.prompt_tokens, first.completion_tokens, first.total_tokens) == (5, 2, 7)
    assert second == third == []


@pytest.mark.anyio
async def test_openai_non_streaming(srv: FakeServer, oai: openai.AsyncOpenAI) -> None:
    srv.responder = ScriptedResponder(
        [Reply("Cut short", thinking="hm", stop_reason="length", model="served", usage=(3, 2))]
    )
    completion = await oai.chat.completions.create(model="m", messages=MESSAGES)
    choice = completion.choices[0]
    assert (choice.message.content, choice.finish_reason) == ("Cut short", "length")
    assert (choice.message.model_extra or {})["reasoning_content"] == "hm"
    assert completion.model == "served"
    assert completion.usage is not None
    assert completion.usage.total_tokens == 5


# Anthropic protocol


@pytest.mark.anyio
async def test_anthropic_stream_sends_thinking_then_text(
    srv: FakeServer, ant: anthropic.AsyncAnthropic
) -> None:
    srv.responder = ScriptedResponder(
        [Reply("Blue, mostly.", thinking="The sea looks blue.", usage=(40, 9))]
    )
    stream = await ant.messages.create(
        model="claude-x", max_tokens=2048, messages=MESSAGES, stream=True,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    events = [event async for event in stream]

    types = [e.type for e in events]
    assert types[0] == "message_start"
    assert types[-2:] == ["message_delta", "message_stop"]
    assert "ping" not in types  # the SDK drops pings
    assert [e.content_block.type for e in events if e.type == "content_block_start"] == [
        "thinking", "text"
    ]
    deltas = [e.delta for e in events if e.type == "content_block_delta"]
    kinds = [d.type for d in deltas]
    assert kinds.index("signature_delta") == kinds.count("thinking_delta")  # right after thinking
    thinking = "".join(d.thinking for d in deltas if d.type == "thinking_delta")
    assert thinking == "The sea looks blue."
    assert "".join(d.text for d in deltas if d.type == "text_delta") == "Blue, mostly."
    start, end = events[0], events[-2]
    assert start.type == "message_start"
    assert end.type == "message_delta"
    assert (start.message.model, start.message.usage.input_tokens) == ("claude-x", 40)
    assert (end.delta.stop_reason, end.usage.output_tokens) == ("end_turn", 9)


@pytest.mark.anyio
async def test_anthropic_stream_helper_accumulates_the_message(
    srv: FakeServer, ant: anthropic.AsyncAnthropic
) -> None:
    srv.responder = ScriptedResponder([Reply("Cut", thinking="Hmm.", stop_reason="length")])
    async with ant.messages.stream(
        model="m", max_tokens=2048, messages=MESSAGES,
        thinking={"type": "enabled", "budget_tokens": 1024},
    ) as stream:
        message = await stream.get_final_message()
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.stop_reason == "max_tokens"
    assert message.content[0].type == "thinking"
    assert message.content[0].signature


@pytest.mark.anyio
async def test_anthropic_thinking_only_when_requested(
    srv: FakeServer, ant: anthropic.AsyncAnthropic
) -> None:
    srv.responder = ScriptedResponder([Reply("Blue.", thinking="Unasked.")])
    stream = await ant.messages.create(model="m", max_tokens=64, messages=MESSAGES, stream=True)
    blocks = [e.content_block.type async for e in stream if e.type == "content_block_start"]
    assert blocks == ["text"]


@pytest.mark.anyio
async def test_anthropic_non_streaming(srv: FakeServer, ant: anthropic.AsyncAnthropic) -> None:
    srv.responder = ScriptedResponder([Reply("Cut short", thinking="hm", stop_reason="length")])
    message = await ant.messages.create(
        model="m", max_tokens=2048, messages=MESSAGES,
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    assert [block.type for block in message.content] == ["thinking", "text"]
    assert message.content[1].type == "text"
    assert message.content[1].text == "Cut short"
    assert message.stop_reason == "max_tokens"
    assert message.usage.output_tokens == 3  # "Cut", " short" and "hm"
    assert srv.requests[0].protocol == "anthropic"


# Other endpoints and keys


def test_models_props_and_unknown_paths(srv: FakeServer) -> None:
    srv.n_ctx = 8192
    with httpx.Client(base_url=srv.base_url) as http:
        model = http.get("/v1/models").json()["data"][0]
        assert (model["id"], model["meta"]["n_ctx"]) == ("SmolLM2-135M-Instruct.Q4_1.gguf", 8192)
        assert http.get("/props").json()["default_generation_settings"]["n_ctx"] == 8192
        missing = http.get("/v1/nope")
        assert missing.status_code == 404
        assert set(missing.json()["error"]) == {"message", "type", "param", "code"}
        missing = http.post("/v1/nope", headers={"anthropic-version": "2023-06-01"})
        assert missing.status_code == 404
        assert missing.json()["error"]["type"] == "not_found_error"
        assert missing.headers["request-id"].startswith("req_")
    assert [r.protocol for r in srv.requests] == ["openai", "llamacpp", "openai", "anthropic"]


@pytest.mark.anyio
async def test_require_key(srv: FakeServer) -> None:
    srv.require_key = "secret-value"
    for key, ok in (("wrong", False), ("secret-value", True)):
        async with openai_client(srv, key) as oai, anthropic_client(srv, key) as ant:
            if ok:
                await openai_text(oai, [])
                await anthropic_text(ant, [])
                continue
            with pytest.raises(openai.AuthenticationError) as oai_error:
                await openai_text(oai, [])
            assert oai_error.value.code == "invalid_api_key"
            with pytest.raises(anthropic.AuthenticationError) as ant_error:
                await anthropic_text(ant, [])
            assert ant_error.value.body["error"]["type"] == "authentication_error"
    async with httpx.AsyncClient(base_url=srv.base_url) as http:
        body = {"model": "m", "max_tokens": 8, "messages": MESSAGES}
        headers = {"x-api-key": "secret-value", "anthropic-version": "2023-06-01"}
        assert (await http.post("/v1/messages", json=body, headers=headers)).status_code == 200


def test_transient_faults_are_the_ones_worth_retrying() -> None:
    assert all(fault.transient for fault in TRANSIENT_MIX)
    fatal = [Fault.status(code) for code in (400, 401, 403, 404)] + [Fault.context_too_long()]
    assert not any(fault.transient for fault in fatal)


# Faults: what each SDK raises. Keep in step with the table in tests/fakeserver/faults.py.

FAULT_TABLE: list[tuple[str, Fault, type[BaseException], type[BaseException]]] = [
    ("429", Fault.status(429, retry_after="2"), openai.RateLimitError, anthropic.RateLimitError),
    ("500", Fault.status(500), openai.InternalServerError, anthropic.InternalServerError),
    ("502", Fault.status(502), openai.InternalServerError, anthropic.InternalServerError),
    ("503", Fault.status(503), openai.InternalServerError, anthropic.ServiceUnavailableError),
    ("529", Fault.status(529), openai.InternalServerError, anthropic.OverloadedError),
    ("400", Fault.status(400), openai.BadRequestError, anthropic.BadRequestError),
    ("401", Fault.status(401), openai.AuthenticationError, anthropic.AuthenticationError),
    ("403", Fault.status(403), openai.PermissionDeniedError, anthropic.PermissionDeniedError),
    ("404", Fault.status(404), openai.NotFoundError, anthropic.NotFoundError),
    ("context", Fault.context_too_long(), openai.BadRequestError, anthropic.BadRequestError),
    ("reset", Fault.reset(), openai.APIConnectionError, anthropic.APIConnectionError),
    ("refuse", Fault.refuse(), openai.APIConnectionError, anthropic.APIConnectionError),
    ("cut", Fault.cut_midway(3), openai.APIConnectionError, httpx2.RemoteProtocolError),
    ("stall", Fault.stall(3, seconds=5), openai.APITimeoutError, httpx2.ReadTimeout),
    ("malformed", Fault.malformed_sse(3), json.JSONDecodeError, json.JSONDecodeError),
    ("stream_error", Fault.stream_error(3), openai.APIError, anthropic.APIStatusError),
]


@pytest.mark.parametrize("protocol", ["openai", "anthropic"])
@pytest.mark.parametrize(
    ("fault", "openai_raises", "anthropic_raises"),
    [row[1:] for row in FAULT_TABLE],
    ids=[row[0] for row in FAULT_TABLE],
)
@pytest.mark.anyio
async def test_streamed_fault_surfaces_as(
    srv: FakeServer, protocol: str,
    fault: Fault, openai_raises: type[BaseException], anthropic_raises: type[BaseException],
) -> None:
    # Only the client under test is built: each costs an SSL context, and there are many cases.
    client = openai_client(srv) if protocol == "openai" else anthropic_client(srv)
    stream_text: Callable[..., Awaitable[str]] = (
        openai_text if protocol == "openai" else anthropic_text
    )
    expected = openai_raises if protocol == "openai" else anthropic_raises
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
    srv.faults.push(fault, fault)
    with pytest.raises(openai_raises) as oai_error:
        await oai.chat.completions.create(model="m", messages=MESSAGES, timeout=SHORT_READ)
    with pytest.raises(anthropic_raises) as ant_error:
        await ant.messages.create(
            model="m", max_tokens=64, messages=MESSAGES, timeout=SHORT_READ
        )
    assert (type(oai_error.value), type(ant_error.value)) == (openai_raises, anthropic_raises)


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
async def test_retry_after_headers(
    srv: FakeServer, oai: openai.AsyncOpenAI, ant: anthropic.AsyncAnthropic
) -> None:
    date = http_date(30)
    srv.faults.push(
        Fault.status(429, retry_after="2", retry_after_ms=2000),
        Fault.status(503, retry_after=date),
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
        with FakeServer() as server, httpx.Client(base_url=server.base_url) as http:
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
            sse = httpx.post(ready[1] + "/v1/chat/completions", json=body).text
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
