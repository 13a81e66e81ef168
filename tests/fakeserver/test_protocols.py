"""The fake server speaks each protocol as the real SDKs expect (streams, thinking, usage,
endpoints, keys)."""

from __future__ import annotations

from pathlib import Path
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
    responses,
    responses_llamacpp,
    split_tokens,
)

from .conftest import (
    DEFAULT_TEXT,
    MESSAGES,
    anthropic_client,
    anthropic_text,
    openai_client,
    openai_text,
    responses_text,
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


# Responses API

WIRE = Path(__file__).parent / "wire"  # what real servers sent
REASONING = {"effort": "low", "summary": "auto"}
ENCRYPTED = ["reasoning.encrypted_content"]


@pytest.mark.anyio
async def test_responses_stream_events_in_order_with_sequence_numbers(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    thinking = "**Colour**\n\nWater absorbs red light."
    srv.responder = ScriptedResponder([Reply(
        "It is blue.", thinking=thinking, summary_parts=["**Colour**", "Water absorbs red light."],
        usage=(40, 30), reasoning_tokens=20)])
    stream = await oai.responses.create(model="gpt-x", input=MESSAGES, stream=True,
                                        reasoning=REASONING)
    events = [event async for event in stream]

    assert [e.sequence_number for e in events] == list(range(len(events)))

    def summary_part(deltas: int) -> list[str]:
        return ["response.reasoning_summary_part.added",
                *["response.reasoning_summary_text.delta"] * deltas,
                "response.reasoning_summary_text.done", "response.reasoning_summary_part.done"]

    assert [e.type for e in events] == [
        "response.created", "response.in_progress",
        "response.output_item.added",  # the reasoning item
        *summary_part(3),  # "**", "Colour", "**"
        *summary_part(5),  # "Water", " absorbs", " red", " light", "."
        "response.output_item.done",
        "response.output_item.added", "response.content_part.added",  # the message
        *["response.output_text.delta"] * 4,  # "It", " is", " blue", "."
        "response.output_text.done", "response.content_part.done", "response.output_item.done",
        "response.completed",
    ]
    by_part: dict[int, str] = {}
    for e in events:
        if e.type == "response.reasoning_summary_text.delta":
            by_part[e.summary_index] = by_part.get(e.summary_index, "") + e.delta
    assert by_part == {0: "**Colour**", 1: "Water absorbs red light."}
    assert "".join(e.delta for e in events if e.type == "response.output_text.delta") == (
        "It is blue.")
    created, done = events[0], events[-1]
    assert created.type == "response.created"
    assert done.type == "response.completed"
    assert (created.response.status, created.response.output, created.response.usage) == (
        "in_progress", [], None)
    final = done.response
    assert (final.status, final.model, final.id) == ("completed", "gpt-x", created.response.id)
    assert [item.type for item in final.output] == ["reasoning", "message"]
    assert final.output_text == "It is blue."
    assert final.usage is not None
    assert (final.usage.input_tokens, final.usage.output_tokens, final.usage.total_tokens,
            final.usage.output_tokens_details.reasoning_tokens) == (40, 30, 70, 20)
    assert final.reasoning is not None
    assert (final.reasoning.effort, final.reasoning.summary) == ("low", "auto")


@pytest.mark.anyio
async def test_responses_stream_helper_accumulates_the_response(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    srv.responder = ScriptedResponder([Reply("Blue.", thinking="Red is absorbed.")])
    async with oai.responses.stream(model="m", input=MESSAGES, reasoning=REASONING) as stream:
        response = await stream.get_final_response()
    assert response.output_text == "Blue."
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert [part.text for part in reasoning.summary] == ["Red is absorbed."]


@pytest.mark.parametrize("summary", [None, "auto"])
@pytest.mark.anyio
async def test_responses_summary_only_when_asked_though_the_model_reasons(
    srv: FakeServer, oai: openai.AsyncOpenAI, summary: str | None
) -> None:
    srv.responder = ScriptedResponder([Reply("Blue.", thinking="Red is absorbed.")])
    reasoning: Any = {"effort": "high", "summary": summary} if summary else {"effort": "high"}
    stream = await oai.responses.create(model="m", input=MESSAGES, stream=True,
                                        reasoning=reasoning)
    events = [event async for event in stream]

    summaries = [e.delta for e in events if e.type == "response.reasoning_summary_text.delta"]
    assert "".join(summaries) == ("Red is absorbed." if summary else "")
    [item] = [e.item for e in events
              if e.type == "response.output_item.done" and e.item.type == "reasoning"]
    assert item.type == "reasoning"
    assert item.encrypted_content is None  # not asked for
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.usage is not None
    assert final.response.usage.output_tokens_details.reasoning_tokens == 4  # thinking pieces


@pytest.mark.anyio
async def test_responses_full_reasoning_text_and_no_reasoning_item_without_thinking(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    srv.responder = ScriptedResponder(
        [Reply("Blue.", thinking="Red is absorbed.", reasoning_output="text"), Reply("Blue.")])
    stream = await oai.responses.create(model="m", input=MESSAGES, stream=True)
    events = [event async for event in stream]
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == (
        "Red is absorbed.")
    [done] = [e.text for e in events if e.type == "response.reasoning_text.done"]
    assert done == "Red is absorbed."
    assert not [e for e in events if e.type.startswith("response.reasoning_summary")]

    stream = await oai.responses.create(model="m", input=MESSAGES, stream=True)
    events = [event async for event in stream]
    items = [e.item.type for e in events if e.type == "response.output_item.added"]
    assert items == ["message"]
    final = events[-1]
    assert final.type == "response.completed"
    assert final.response.usage is not None
    assert final.response.usage.output_tokens_details.reasoning_tokens == 0


@pytest.mark.parametrize(("stop", "reason"), [("length", "max_output_tokens"),
                                              ("content_filter", "content_filter")])
@pytest.mark.anyio
async def test_responses_incomplete(
    srv: FakeServer, oai: openai.AsyncOpenAI, stop: str, reason: str
) -> None:
    srv.responder = ScriptedResponder([Reply("Cut", stop_reason=stop)])
    stream = await oai.responses.create(model="m", input=MESSAGES, stream=True,
                                        max_output_tokens=16)
    events = [event async for event in stream]
    final = events[-1]
    assert final.type == "response.incomplete"
    assert final.response.status == "incomplete"
    assert final.response.incomplete_details is not None
    assert final.response.incomplete_details.reason == reason
    assert final.response.max_output_tokens == 16
    message = final.response.output[-1]
    assert message.type == "message"
    assert message.status == "incomplete"
    assert final.response.usage is not None


@pytest.mark.anyio
async def test_responses_encrypted_reasoning_only_when_included(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    srv.responder = ScriptedResponder([Reply("Blue.", thinking="Red is absorbed.")])
    stream = await oai.responses.create(model="m", input=MESSAGES, stream=True, store=False,
                                        include=ENCRYPTED)
    events = [event async for event in stream]
    added, done = [e.item for e in events if e.type.startswith("response.output_item.")
                   and e.item.type == "reasoning"]
    assert added.type == done.type == "reasoning"
    assert added.encrypted_content and done.encrypted_content
    # The SDK warns that an added item's blob may be incomplete; here it always is.
    assert done.encrypted_content.startswith(added.encrypted_content)
    assert responses.unseal(added.encrypted_content) is None
    assert responses.unseal(done.encrypted_content) == {
        "response": srv.requests[0].response_id, "item": done.id, "reasoning": "Red is absorbed."}


@pytest.mark.anyio
async def test_responses_reasoning_sent_back_is_traced_to_its_response(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    srv.responder = ScriptedResponder([Reply("One.", thinking="First."),
                                       Reply("Two.", thinking="Second."), Reply("Three.")])
    items: list[Any] = []
    for _ in range(2):
        response = await oai.responses.create(model="m", input=MESSAGES, store=False,
                                              include=ENCRYPTED)
        items.append(response.output[0].model_dump(exclude_none=True))
    forged = {**items[0], "encrypted_content": items[0]["encrypted_content"] + "x"}
    history = [MESSAGES[0], items[1], {"role": "assistant", "content": "Two."},
               {"role": "user", "content": "And then?"}]

    await oai.responses.create(model="m", input=[items[0], *history], store=False,
                               include=ENCRYPTED)
    first, second, third = srv.requests
    assert srv.reasoning_origins(third) == [first, second]
    assert third.response_id is not None
    assert srv.reasoning_origins(first) == []

    with pytest.raises(openai.BadRequestError) as unverified:
        await oai.responses.create(model="m", input=[forged, *history], store=False)
    assert unverified.value.code == "invalid_encrypted_content"
    assert f"for item {items[0]['id']} could not be verified" in unverified.value.message
    assert srv.reasoning_origins(srv.requests[-1]) == [None, second]

    bare = {key: value for key, value in items[0].items() if key != "encrypted_content"}
    with pytest.raises(openai.NotFoundError) as not_stored:
        await oai.responses.create(model="m", input=[bare, *history], store=False)
    assert "Items are not persisted when `store` is set to false" in not_stored.value.message
    assert srv.requests[-1].response_id is None  # refused, never answered


@pytest.mark.anyio
async def test_responses_requests_are_recorded(srv: FakeServer, oai: openai.AsyncOpenAI) -> None:
    await responses_text(oai, [], instructions="Be brief.", reasoning=REASONING,
                         max_output_tokens=300, include=ENCRYPTED, store=False)
    [request] = srv.requests
    assert (request.method, request.path, request.protocol) == ("POST", "/v1/responses",
                                                                "responses")
    assert request.stream
    body = request.json
    assert (body["input"], body["instructions"], body["reasoning"]) == (
        MESSAGES, "Be brief.", REASONING)
    assert (body["max_output_tokens"], body["include"], body["store"]) == (300, ENCRYPTED, False)
    assert request.response_id == "resp_fake000002"


@pytest.mark.anyio
async def test_responses_default_reply_reads_the_input_and_obfuscation_can_be_off(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    assert await responses_text(oai, []) == DEFAULT_TEXT
    stream = await oai.responses.create(model="m", input="Tell me about the sea, please.",
                                        stream=True,
                                        stream_options={"include_obfuscation": False})
    deltas = [e for e in [e async for e in stream] if e.type == "response.output_text.delta"]
    assert "".join(d.delta for d in deltas) == DEFAULT_TEXT.replace("Reply 1", "Reply 2")
    assert all("obfuscation" not in (d.model_extra or {}) for d in deltas)
    async with httpx2.AsyncClient(base_url=srv.base_url) as http:
        raw = await http.post("/v1/responses",
                              json={"model": "m", "input": "Hi", "stream": True})
    assert raw.headers["content-type"] == "text/event-stream; charset=utf-8"
    assert raw.text.startswith("event: response.created\ndata: {")
    assert '"obfuscation":"' in raw.text
    assert "[DONE]" not in raw.text


@pytest.mark.anyio
async def test_responses_non_streaming(srv: FakeServer, oai: openai.AsyncOpenAI) -> None:
    srv.responder = ScriptedResponder(
        [Reply("Cut short", thinking="hm", stop_reason="length", model="served", usage=(3, 2))])
    response = await oai.responses.create(model="m", input=MESSAGES, reasoning=REASONING)
    assert (response.output_text, response.status, response.model) == (
        "Cut short", "incomplete", "served")
    assert response.incomplete_details is not None
    assert response.incomplete_details.reason == "max_output_tokens"
    reasoning = response.output[0]
    assert reasoning.type == "reasoning"
    assert [part.text for part in reasoning.summary] == ["hm"]
    assert response.usage is not None
    assert (response.usage.total_tokens, response.usage.output_tokens_details.reasoning_tokens) \
        == (5, 1)


@pytest.mark.parametrize("capture", ["llamacpp-responses-stream.sse",
                                     "llamacpp-responses-think-stream.sse"])
def test_responses_llamacpp_dialect_has_the_captured_shape(srv: FakeServer, capture: str) -> None:
    real = responses_llamacpp.read_stream((WIRE / capture).read_text())
    [*_, (_, completed)] = real
    output = completed["response"]["output"]
    thinking = "".join(p["text"] for i in output if i["type"] == "reasoning" for p in i["content"])
    text = "".join(p["text"] for i in output if i["type"] == "message" for p in i["content"])
    srv.responses_dialect = "llamacpp"
    srv.responder = ScriptedResponder([Reply(text, thinking=thinking)])
    with httpx2.Client(base_url=srv.base_url) as http:
        request = {"model": "m", "input": "Name a planet.", "stream": True}
        fake = responses_llamacpp.read_stream(http.post("/v1/responses", json=request).text)
    assert responses_llamacpp.stream_shape(fake) == responses_llamacpp.stream_shape(real)


@pytest.mark.anyio
async def test_responses_llamacpp_dialect_through_the_sdk(
    srv: FakeServer, oai: openai.AsyncOpenAI
) -> None:
    srv.responses_dialect = "llamacpp"
    srv.responder = ScriptedResponder([Reply("Mars.", thinking="A planet.", stop_reason="length"),
                                       Reply("Mars.")])
    stream = await oai.responses.create(model="m", input=MESSAGES, stream=True,
                                        max_output_tokens=2)
    events = [event async for event in stream]
    assert {e.sequence_number for e in events} == {None}  # absent: the SDK reads None
    assert "".join(e.delta for e in events if e.type == "response.reasoning_text.delta") == (
        "A planet.")
    final = events[-1]
    assert final.type == "response.completed"  # even when cut short
    assert final.response.usage is not None
    assert final.response.usage.output_tokens_details is None  # no reasoning_tokens
    with pytest.raises(TypeError):  # the SDK's helper needs output_index (as with the real one)
        async with oai.responses.stream(model="m", input=MESSAGES) as helper:
            await helper.get_final_response()

    refusals = [
        ({"previous_response_id": "resp_1"}, "llama.cpp does not support 'previous_response_id'."),
        ({"input": [{"type": "reasoning", "id": "rs_1", "summary": [],
                     "encrypted_content": "gAAAAABo"}]}, "item['content'] is not an array"),
        ({"input": [*MESSAGES, {"role": "assistant", "content": "Mars."}]},
         "Cannot determine type of 'item'"),
    ]
    for extra, message in refusals:
        with pytest.raises(openai.BadRequestError) as refused:
            await oai.responses.create(**{"model": "m", "input": MESSAGES, **extra})
        assert refused.value.body == {"code": 400, "message": message,
                                      "type": "invalid_request_error"}
    history = [*MESSAGES, {"type": "message", "role": "assistant", "content": "Mars."}]
    response = await oai.responses.create(model="m", input=history)
    assert response.output_text


def test_reply_summary_parts_must_join_to_the_thinking() -> None:
    with pytest.raises(ValueError, match="summary_parts"):
        Reply("x", thinking="a b", summary_parts=["a", "b"])


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
