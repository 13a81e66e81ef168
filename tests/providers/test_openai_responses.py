"""An `openai` agent on OpenAI's Responses API (`api = "responses"`), through the real openai SDK,
over real HTTP on 127.0.0.1: thinking, the request on the wire, reasoning items sent back, and
every fault the fake server knows."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.config import Pairing, load_pairing
from intermodel.config.request import Message, Request, Sampling
from intermodel.engine.events import Retrying, ThinkingChunk, TurnCompleted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import ProviderError
from intermodel.lineage.audit import verify_transcript
from intermodel.providers.base import Finished, StreamEvent, TextDelta, ThinkingDelta, UsageReport
from intermodel.providers.openai_responses import OpenAIResponsesProvider
from intermodel.providers.registry import make_provider
from intermodel.records import ReasoningItem
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Fault, Reply, ScriptedResponder

pytestmark = pytest.mark.anyio

KEY = "test-key-0123456789"
THOUGHT = "First, the premise.\n\nThen, the catch."


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def agent_toml(name: str, srv: FakeServer, extra: str = "", *, api: str = "responses",
               model: str = "gpt-5.2") -> str:
    return f"""
[agents.{name}]
provider = "openai"
api = "{api}"
model = "{model}"
base_url = "{srv.base_url}/v1"
api_key_env = "TEST_KEY"
prompt = "You are {{name}}."
timeout = 1
max_tokens = 512
{extra}
"""


def pairing_for(srv: FakeServer, tmp_path: Path, *, turns: int = 4, extra_a: str = "",
                extra_b: str = "", dialogue: str = "", b_api: str = "responses") -> Pairing:
    """A pairing of two Responses API agents (ada, bo), written to a file of its own so that
    resume and branch find their seats vouched for."""
    text = f"""
name = "responses"
[dialogue]
opener = "Start."
max_turns = {turns}
{dialogue}
[retry]
backoff_initial = 0.01
backoff_max = 0.05
max_retry_after = 0.3
{agent_toml("ada", srv, extra_a)}
{agent_toml("bo", srv, extra_b, api=b_api)}
"""
    path = tmp_path / "responses.toml"
    path.write_text(text)
    return load_pairing(path)


def provider_for(srv: FakeServer, tmp_path: Path, extra: str = "") -> OpenAIResponsesProvider:
    provider = make_provider(pairing_for(srv, tmp_path, extra_a=extra).agent("ada"), "bo",
                             Credentials(api_key=KEY))
    assert isinstance(provider, OpenAIResponsesProvider)
    return provider


def request(**changes: Any) -> Request:
    fields: dict[str, Any] = {
        "model": "gpt-5.2", "system": "Be kind.",
        "messages": (Message("user", "Hi"), Message("assistant", "Hello"),
                     Message("user", "How are you?")),
        "sampling": Sampling(max_tokens=300), "reasoning": {"summary": "auto"}}
    return Request(**{**fields, **changes})


async def collect(provider: OpenAIResponsesProvider, req: Request) -> list[StreamEvent]:
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


def sent(srv: FakeServer) -> list[dict[str, Any]]:
    return [r.json for r in srv.requests if r.path.endswith("/responses")]


async def test_summaries_become_thinking_and_output_text_the_reply(
        server: FakeServer, tmp_path: Path) -> None:
    server.responder = ScriptedResponder([Reply(
        "It holds.", thinking=THOUGHT, summary_parts=THOUGHT.split("\n\n"), model="gpt-5.2-x",
        usage=(40, 90), reasoning_tokens=70)])
    events = await collect(provider_for(server, tmp_path), request())
    text, thinking, usage, finished = split(events)
    assert (thinking, text) == (THOUGHT, "It holds.")  # two summary parts, a blank line between
    assert [(u.input_tokens, u.output_tokens, u.reasoning_tokens) for u in usage] == \
        [(40, 90, 70)]
    assert (finished.stop_reason, finished.model) == ("completed", "gpt-5.2-x")
    assert finished.reasoning_items == ()  # not sent back, so not kept
    assert sum(isinstance(e, ThinkingDelta) for e in events) > 3  # really streamed


async def test_the_request_on_the_wire(server: FakeServer, tmp_path: Path) -> None:
    extra = "[agents.ada.extra_body]\nservice_tier = \"flex\"\n"
    await collect(provider_for(server, tmp_path, extra),
                  request(reasoning={"effort": "low", "summary": "concise"},
                          sampling=Sampling(max_tokens=64, temperature=0.5, top_p=0.9),
                          extra_body={"service_tier": "flex"}))
    [body] = sent(server)
    assert server.requests[-1].headers["authorization"] == f"Bearer {KEY}"
    assert body["instructions"] == "Be kind."
    assert body["input"] == [
        {"type": "message", "role": "user", "content": "Hi"},
        {"type": "message", "role": "assistant", "content": "Hello"},
        {"type": "message", "role": "user", "content": "How are you?"}]
    assert (body["max_output_tokens"], body["temperature"], body["top_p"]) == (64, 0.5, 0.9)
    assert body["reasoning"] == {"effort": "low", "summary": "concise"}
    assert (body["stream"], body["store"]) == (True, False)
    assert "include" not in body  # encrypted reasoning only for an agent that sends it back
    assert body["service_tier"] == "flex"
    assert not {"seed", "stop", "messages", "max_tokens"} & set(body)


async def test_a_sent_back_reply_keeps_its_encrypted_reasoning(server: FakeServer,
                                                               tmp_path: Path) -> None:
    server.responder = ScriptedResponder([Reply("Yes.", thinking="Because.")])
    provider = provider_for(server, tmp_path, "[agents.ada.thinking]\nsend_back = true\n")
    _, thinking, _, finished = split(await collect(provider, request()))
    [body] = sent(server)
    assert body["include"] == ["reasoning.encrypted_content"] and body["store"] is False
    [item] = finished.reasoning_items
    assert item.id.startswith("rs_") and item.summary == ("Because.",)
    assert item.encrypted_content and item.content is None
    assert thinking == "Because."


async def test_reasoning_text_becomes_thinking_too(server: FakeServer, tmp_path: Path) -> None:
    """Servers that expose the whole reasoning (llama.cpp) stream it as reasoning_text."""
    server.responses_dialect = "llamacpp"
    server.responder = ScriptedResponder([Reply("Four.", thinking="two and two\n",
                                                reasoning_output="text")])
    provider = provider_for(server, tmp_path, "[agents.ada.thinking]\nsend_back = true\n")
    text, thinking, usage, finished = split(await collect(provider, request()))
    assert (thinking, text) == ("two and two\n", "Four.")
    assert usage[0].reasoning_tokens is None  # llama.cpp reports none
    [item] = finished.reasoning_items
    assert item.content == ("two and two\n",)  # what llama.cpp wants back


async def test_think_tags_in_the_output_are_split_off(server: FakeServer, tmp_path: Path) -> None:
    server.responses_dialect = "llamacpp"
    server.responder = ScriptedResponder([Reply("<think>hm, four</think>\n\nFour.")])
    text, thinking, _, _ = split(await collect(provider_for(server, tmp_path), request()))
    assert (thinking, text) == ("hm, four", "Four.")


@pytest.mark.parametrize(("stop", "reason"), [("length", "max_output_tokens"),
                                               ("content_filter", "content_filter")])
async def test_an_incomplete_response_gives_its_reason_as_the_stop_reason(
        server: FakeServer, tmp_path: Path, stop: str, reason: str) -> None:
    server.responder = ScriptedResponder([Reply("Cut sh", thinking="long", stop_reason=stop)])
    text, _, usage, finished = split(await collect(provider_for(server, tmp_path), request()))
    assert (text, finished.stop_reason) == ("Cut sh", reason)
    assert usage and usage[0].output_tokens


FAULTS = [
    (Fault.status(429, retry_after="2"), "rate_limited", 2.0),
    (Fault.status(429, retry_at=3600), "rate_limited", 3600.0),
    (Fault.status(429, retry_after_ms=1500), "rate_limited", 1.5),
    (Fault.status(500), "server_unavailable", None),
    (Fault.status(502), "server_unavailable", None),
    (Fault.status(503, retry_after="7"), "server_unavailable", 7.0),
    (Fault.status(529), "server_unavailable", None),
    (Fault.reset(), "connection_failed", None),
    (Fault.empty_stream(), "stream_interrupted", None),
    (Fault.cut_midway(after_chunks=2), "stream_interrupted", None),
    (Fault.stall(after_chunks=2, seconds=1.6), "timed_out", None),
    (Fault.malformed_sse(after_chunks=2), "stream_interrupted", None),
    (Fault.stream_error(after_chunks=2), "server_unavailable", None),
    (Fault.stream_error(after_chunks=2, kind="rate_limit"), "rate_limited", None),
    (Fault.stream_error(after_chunks=2, responses="error_documented"), "server_unavailable",
     None),
    (Fault.stream_error(after_chunks=2, responses="response.failed"), "server_unavailable",
     None),
    (Fault.stream_error(after_chunks=2, kind="rate_limit", responses="response.failed"),
     "rate_limited", None),
    (Fault.stream_error(after_chunks=2, responses="llamacpp"), "server_unavailable", None),
    (Fault.bad_payload("invalid_utf8", after_chunks=2), "stream_interrupted", None),
    (Fault.bad_payload("huge_int", after_chunks=2), "provider_broken", None),
    (Fault.bad_payload("deep_nesting", after_chunks=2), "provider_broken", None),
    (Fault.bad_payload("not_an_object", after_chunks=2), "provider_broken", None),
    (Fault.bad_payload("mistyped_text", after_chunks=2), "provider_broken", None),
    (Fault.status(400), "bad_request", None),
    (Fault.status(401), "authentication_failed", None),
    (Fault.status(403), "authentication_failed", None),
    (Fault.status(404), "model_not_found", None),
    (Fault.context_too_long("openai"), "context_too_long", None),
    (Fault.context_too_long("llamacpp"), "context_too_long", None),
    (Fault.redirect("http://127.0.0.1:9/v1/responses"), "provider_broken", None),
]


def _fault_id(fault: Fault) -> str:
    return "-".join(str(p) for p in (fault.kind, fault.code or "", fault.stream_error_kind
                                     if fault.kind == "stream_error" else "",
                                     fault.responses_error if fault.kind == "stream_error"
                                     else "", fault.payload if fault.kind == "bad_payload"
                                     else "") if p)


@pytest.mark.parametrize(("fault", "kind", "retry_after"), FAULTS,
                         ids=[_fault_id(f) + (f"-{r}" if r else "") for f, _, r in FAULTS])
async def test_every_failure_becomes_one_of_our_errors(
        server: FakeServer, tmp_path: Path, fault: Fault, kind: str,
        retry_after: float | None) -> None:
    server.responder = ScriptedResponder([Reply("A reply of several pieces, long enough.",
                                                thinking="some thought here")])
    server.faults.push(fault)
    with pytest.raises(ProviderError) as caught:
        await collect(provider_for(server, tmp_path), request())
    error = caught.value
    assert error.kind == kind, error.message
    assert error.provider == "openai"
    assert error.transient == (kind in {"rate_limited", "server_unavailable", "connection_failed",
                                        "stream_interrupted", "timed_out"})
    if retry_after is not None:
        assert error.retry_after == pytest.approx(retry_after, abs=120 if retry_after > 60
                                                  else 0.01)
    assert len(sent(server)) == 1  # the SDK's own retries are off


async def test_a_failed_response_that_refuses_the_prompt_is_fatal(server: FakeServer,
                                                                  tmp_path: Path) -> None:
    body = {"error": {"message": "Invalid prompt: flagged.", "type": "invalid_request_error",
                      "code": "invalid_prompt"}}
    server.faults.push(Fault.stream_error(after_chunks=1, responses="response.failed",
                                          body=body))
    with pytest.raises(ProviderError) as caught:
        await collect(provider_for(server, tmp_path), request())
    assert (caught.value.kind, caught.value.message) == ("bad_request", "Invalid prompt: flagged.")


async def test_a_stalled_or_endless_reply_is_ended_and_retried(server: FakeServer,
                                                               tmp_path: Path) -> None:
    """The turn producer's watchdog and length cap apply as for Chat Completions: a drip that
    never times a read out counts as a stall, an endless reply is cut and kept."""
    server.faults.push(Fault.drip(after_chunks=1, seconds=0.2), Fault.endless())
    pairing = pairing_for(server, tmp_path, turns=2,
                          extra_a="max_reply_chars = 4096\n", extra_b="max_reply_chars = 4096\n")
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        subscription = run.session.subscribe()
        with anyio.fail_after(30):
            end = await run.session.run()
    assert end.reason == "max_turns"
    events = subscription.drain()
    [retry] = [e.retry for e in events if isinstance(e, Retrying)]
    assert retry.error == "timed_out"
    cut = next(e.turn for e in events if isinstance(e, TurnCompleted))  # its second attempt
    assert (cut.stop_reason, cut.client_stop) == ("length", True)


async def test_a_dialogue_survives_faults_and_records_each_retry(server: FakeServer,
                                                                 tmp_path: Path) -> None:
    server.faults.push(Fault.status(429, retry_after="0.05"), Fault.ok(), Fault.cut_midway(2),
                       Fault.stream_error(1, responses="response.failed"), Fault.ok(),
                       Fault.stream_error(1), Fault.status(503))
    pairing = pairing_for(server, tmp_path, turns=4)
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        subscription = run.session.subscribe()
        with anyio.fail_after(20):
            end = await run.session.run()
    assert end.reason == "max_turns"
    events = subscription.drain()
    turns = [e.turn for e in events if isinstance(e, TurnCompleted)]
    assert [t.agent for t in turns] == ["ada", "bo", "ada", "bo"]
    assert all(t.text.startswith("Reply") for t in turns)
    assert len([e for e in events if isinstance(e, Retrying)]) == 5
    assert run.transcript is not None
    transcript = read_transcript(run.transcript)
    assert KEY not in run.transcript.read_text()
    assert all(r.matches for r in verify_transcript(transcript))


SEND_BACK = "[agents.ada.thinking]\nsend_back = true\n"


def thinking_replies() -> ScriptedResponder:
    return ScriptedResponder([Reply(f"Reply {n}.", thinking=f"thought {n}") for n in range(1, 9)])


async def run_pairing(pairing: Pairing, tmp_path: Path) -> tuple[Path, list[Any]]:
    async with prepared_run(pairing, out_dir=tmp_path, environ={"TEST_KEY": KEY}) as run:
        subscription = run.session.subscribe()
        with anyio.fail_after(20):
            end = await run.session.run()
    assert end.reason == "max_turns", end.detail
    assert run.transcript is not None
    return run.transcript, subscription.drain()


async def test_encrypted_reasoning_goes_back_to_its_agent_and_never_to_its_partner(
        server: FakeServer, tmp_path: Path) -> None:
    server.responder = thinking_replies()
    # bo shares in ada's thinking (its text), and sends its own back too.
    pairing = pairing_for(server, tmp_path, turns=5, extra_a=SEND_BACK,
                          extra_b=SEND_BACK.replace("ada", "bo"),
                          dialogue="share_thinking = true")
    path, events = await run_pairing(pairing, tmp_path)
    shown = "".join(e.text for e in events if isinstance(e, ThinkingChunk) and e.agent == "ada")
    assert shown == "thought 1thought 3thought 5"
    requests = [r for r in server.requests if r.path.endswith("/responses")]
    ada = [r for r in requests if r.json["instructions"] == "You are ada."]
    bo = [r for r in requests if r.json["instructions"] == "You are bo."]
    # Each of ada's requests hands back every reasoning item of hers, in order, each traced
    # to the response that issued it; bo's carry only bo's own.
    assert [server.reasoning_origins(r) for r in ada] == [[], [ada[0]], [ada[0], ada[1]]]
    assert [server.reasoning_origins(r) for r in bo] == [[], [bo[0]]]
    third = ada[2].json["input"]
    assert [i["type"] for i in third] == ["message", "reasoning", "message", "message",
                                          "reasoning", "message", "message"]
    assert third[1]["summary"] == [{"type": "summary_text", "text": "thought 1"}]
    # bo sees ada's thinking as text only (share_thinking), never her encrypted items.
    assert bo[0].json["input"][-1]["content"].startswith("<thinking>\nthought 1\n</thinking>")
    transcript = read_transcript(path)
    first = transcript.turns[0]
    assert first.reasoning_items == (ReasoningItem(
        third[1]["id"], third[1]["encrypted_content"], ("thought 1",)),)
    assert [r.matches for r in verify_transcript(transcript)] == [True] * 5


async def test_without_send_back_nothing_is_kept_or_sent(server: FakeServer,
                                                         tmp_path: Path) -> None:
    server.responder = thinking_replies()
    path, _ = await run_pairing(pairing_for(server, tmp_path, turns=3), tmp_path)
    assert all("include" not in body and body["store"] is False for body in sent(server))
    assert all(i["type"] == "message" for body in sent(server) for i in body["input"])
    transcript = read_transcript(path)
    assert [t.thinking for t in transcript.turns] == ["thought 1", "thought 2", "thought 3"]
    assert all(t.reasoning_items == () for t in transcript.turns)
    assert '"reasoning_items"' not in path.read_text()


async def test_a_pairing_with_a_chat_completions_partner(server: FakeServer,
                                                         tmp_path: Path) -> None:
    server.responder = thinking_replies()
    pairing = pairing_for(server, tmp_path, turns=4, extra_a=SEND_BACK, b_api="chat")
    path, _ = await run_pairing(pairing, tmp_path)
    paths = [r.path for r in server.requests if r.method == "POST"]
    assert paths == ["/v1/responses", "/v1/chat/completions"] * 2
    chat = [r.json for r in server.requests if r.path.endswith("/chat/completions")]
    assert all("reasoning" not in str(m) for body in chat for m in body["messages"])
    assert all(r.matches for r in verify_transcript(read_transcript(path)))


async def test_a_key_in_the_reasoning_is_redacted_and_the_encrypted_part_kept(
        server: FakeServer, tmp_path: Path) -> None:
    server.responder = ScriptedResponder([Reply("Fine.", thinking=f"the key is {KEY} here")])
    pairing = pairing_for(server, tmp_path, turns=3, extra_a=SEND_BACK)
    path, _ = await run_pairing(pairing, tmp_path)
    assert KEY not in path.read_text()
    transcript = read_transcript(path)
    [item] = transcript.turns[0].reasoning_items
    assert item.summary == ("the key is [redacted] here",)
    assert transcript.turns[0].thinking == "the key is [redacted] here"
    third = [r.json for r in server.requests if r.path.endswith("/responses")][2]
    assert third["input"][1]["encrypted_content"] == item.encrypted_content  # opaque, unchanged
    assert server.reasoning_origins(server.requests[-1]) != [None]
    assert all(r.matches for r in verify_transcript(transcript))
