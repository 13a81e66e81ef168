"""The fake server speaks each protocol as the real SDKs expect (streams, thinking, usage,
endpoints, keys)."""

from __future__ import annotations

from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.fakeserver import (
    TRANSIENT_MIX,
    FakeServer,
    Fault,
    Reply,
    ScriptedResponder,
    split_tokens,
)

from .conftest import (
    DEFAULT_TEXT,
    MESSAGES,
    anthropic_client,
    anthropic_text,
    openai_client,
    openai_text,
)


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
    with httpx2.Client(base_url=srv.base_url) as http:
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
    async with httpx2.AsyncClient(base_url=srv.base_url) as http:
        body = {"model": "m", "max_tokens": 8, "messages": MESSAGES}
        headers = {"x-api-key": "secret-value", "anthropic-version": "2023-06-01"}
        assert (await http.post("/v1/messages", json=body, headers=headers)).status_code == 200


def test_transient_faults_are_the_ones_worth_retrying() -> None:
    assert all(fault.transient for fault in TRANSIENT_MIX)
    fatal = [Fault.status(code) for code in (400, 401, 403, 404)] + [Fault.context_too_long()]
    assert not any(fault.transient for fault in fatal)
