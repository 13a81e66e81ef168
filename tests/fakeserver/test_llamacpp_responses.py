"""OpenAI's Responses API end to end: the real openai SDK against a server nobody here wrote,
llama.cpp's C++ `llama-server` serving the bundled model (see tests/llama_cpp_server.py).

Besides showing that the route works through the SDK, the tests pin down how this server's
dialect differs from OpenAI's (tests/fakeserver/wire/README.md lists every difference), and that
the fake server's imitation of it has the same shape, so a new llama.cpp version that changes
the dialect shows up here:

- no sequence numbers or output indexes (the SDK reads None);
- a reply cut by max_output_tokens still ends `response.completed`;
- usage without output_tokens_details (no reasoning_tokens);
- reasoning only as full text, and only with a chat template that has `<think>`;
- OpenAI's reasoning items (encrypted, without their text) are refused.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx2
import openai
import pytest

from tests import llama_cpp_server
from tests.fakeserver import FakeServer, Reply, ScriptedResponder, responses_llamacpp

pytestmark = pytest.mark.local

WIRE = Path(__file__).parent / "wire"
INPUT: list[Any] = [{"role": "user", "content": "Name a planet."}]
# Forces a <think> block, then a short answer, whatever the small model would say.
THINK_GRAMMAR = 'root ::= "<think>\\n" [a-z ]{10,40} "\\n</think>\\n\\n" [A-Za-z ]{3,30} "."'


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    with llama_cpp_server.running(tmp_path_factory.mktemp("llama-server") / "log") as base:
        yield base


@pytest.fixture(scope="module")
def thinking_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The same model with a ChatML template that puts reasoning in <think> tags, so llama.cpp
    parses them out of the reply."""
    template = ["--chat-template-file", str(WIRE / "chatml-think.jinja")]
    with llama_cpp_server.running(tmp_path_factory.mktemp("llama-server-think") / "log",
                                  extra=template) as base:
        yield base


def client(base: str) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(base_url=base + "/v1", api_key="unused", max_retries=0,
                              timeout=60)


@pytest.fixture
async def sdk(server: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with client(server) as oai:
        yield oai


@pytest.mark.anyio
async def test_a_streamed_response_through_the_sdk(sdk: openai.AsyncOpenAI) -> None:
    stream = await sdk.responses.create(
        model="gpt-5.2", instructions="You are Ada. Be brief.", input=INPUT, stream=True,
        max_output_tokens=8, reasoning={"effort": "low", "summary": "auto"},
        include=["reasoning.encrypted_content"], store=False, extra_body={"seed": 1})
    events = [event async for event in stream]

    types = [e.type for e in events]
    assert types[:4] == ["response.created", "response.in_progress",
                         "response.output_item.added", "response.content_part.added"]
    assert types[-4:] == ["response.output_text.done", "response.content_part.done",
                          "response.output_item.done", "response.completed"]
    assert set(types[4:-4]) == {"response.output_text.delta"}
    assert {e.sequence_number for e in events} == {None}  # the server sends none
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")
    done, final = events[-4], events[-1]
    assert done.type == "response.output_text.done"
    assert final.type == "response.completed"
    assert text and done.text == text
    assert final.response.output_text == text
    assert [item.type for item in final.response.output] == ["message"]  # no reasoning item
    assert final.response.model == llama_cpp_server.MODEL_FILE  # not the model asked for
    usage = final.response.usage
    assert usage is not None
    # Cut at max_output_tokens, yet `completed`, and no reasoning_tokens.
    assert (final.response.status, usage.output_tokens) == ("completed", 8)
    assert usage.output_tokens_details is None
    assert usage.total_tokens == usage.input_tokens + usage.output_tokens


@pytest.mark.anyio
async def test_a_response_without_streaming(sdk: openai.AsyncOpenAI) -> None:
    response = await sdk.responses.create(model="m", input="Name a planet.", max_output_tokens=6,
                                          extra_body={"seed": 1})
    assert response.status == "completed"
    assert response.output_text
    assert response.usage is not None
    assert response.usage.output_tokens == 6


@pytest.mark.anyio
async def test_openai_reasoning_items_are_refused(sdk: openai.AsyncOpenAI) -> None:
    openai_item = {"type": "reasoning", "id": "rs_0123", "summary": [],
                   "encrypted_content": "gAAAAABo"}
    with pytest.raises(openai.BadRequestError) as refused:
        await sdk.responses.create(model="m", input=[openai_item, *INPUT])  # type: ignore[list-item]
    assert refused.value.body == {"code": 400, "message": "item['content'] is not an array",
                                  "type": "invalid_request_error"}
    # An assistant message needs its "type" here, which OpenAI does not require.
    with pytest.raises(openai.BadRequestError) as untyped:
        await sdk.responses.create(model="m", input=[
            *INPUT, {"role": "assistant", "content": "Mars."}, {"role": "user", "content": "?"}])
    assert untyped.value.message.endswith("Cannot determine type of 'item'")
    response = await sdk.responses.create(model="m", max_output_tokens=4, input=[
        *INPUT, {"type": "message", "role": "assistant", "content": "Mars."},
        {"role": "user", "content": "Another?"}])
    assert response.output_text


@pytest.mark.anyio
async def test_a_think_template_gives_reasoning_text_which_can_go_back(
    thinking_server: str,
) -> None:
    async with client(thinking_server) as oai:
        # (Room for the grammar's longest output, even at a token a character: with less, a
        # long thought sometimes used up the budget before the message began.)
        stream = await oai.responses.create(
            model="m", input=INPUT, stream=True, max_output_tokens=160,
            reasoning={"effort": "low", "summary": "auto"}, extra_body={"grammar": THINK_GRAMMAR})
        events = [event async for event in stream]
        types = [e.type for e in events]
        reasoning = "".join(e.delta for e in events if e.type == "response.reasoning_text.delta")
        assert reasoning.endswith("\n")  # the newline before </think> stays
        assert not [t for t in types if "summary" in t]  # never summaries
        final = events[-1]
        assert final.type == "response.completed"
        item, message = final.response.output
        assert item.type == "reasoning"
        assert message.type == "message"
        assert item.content is not None
        assert [part.text for part in item.content] == [reasoning]
        assert item.encrypted_content == ""  # nothing encrypted, though include was not asked
        # The reasoning item closes after the last text delta.
        closed = types.index("response.output_item.done")
        last_text = len(types) - 1 - types[::-1].index("response.output_text.delta")
        assert closed > last_text

        # Its own reasoning item, with its text, is accepted back.
        reply = await oai.responses.create(model="m", max_output_tokens=4, input=[
            *INPUT, item.model_dump(exclude_none=True),
            {"type": "message", "role": "assistant", "content": message.content[0].text},
            {"role": "user", "content": "Another?"}])
        assert reply.status == "completed"


@pytest.mark.parametrize("thinking", [False, True])
def test_the_fake_servers_imitation_has_the_same_shape(
    server: str, thinking_server: str, thinking: bool
) -> None:
    body: dict[str, Any] = {"model": "m", "input": INPUT, "stream": True,
                            "max_output_tokens": 12, "seed": 1}
    if thinking:
        body["grammar"] = THINK_GRAMMAR
    base = thinking_server if thinking else server
    sent = httpx2.post(f"{base}/v1/responses", json=body, timeout=60).text
    real = responses_llamacpp.read_stream(sent)
    *_, (_, completed) = real
    output = completed["response"]["output"]
    reasoning = "".join(part["text"] for item in output if item["type"] == "reasoning"
                        for part in item["content"])
    text = "".join(part["text"] for item in output if item["type"] == "message"
                   for part in item["content"])
    with FakeServer() as fake:
        fake.responses_dialect = "llamacpp"
        fake.responder = ScriptedResponder([Reply(text, thinking=reasoning)])
        imitation = responses_llamacpp.read_stream(
            httpx2.post(f"{fake.base_url}/v1/responses", json=body, timeout=10).text)
    assert responses_llamacpp.stream_shape(imitation) == responses_llamacpp.stream_shape(real)
