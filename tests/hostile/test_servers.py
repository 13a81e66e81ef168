"""Hostile servers, through the real SDKs over real loopback HTTP: redirects that would carry
credentials elsewhere, header values that can never be sent, replies that stall, drip, never end,
never close, or carry data no honest server sends. Each ends as a recorded retry, a kept turn or
one classified line; none hangs a run or costs a completed reply."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import AsyncGenerator
from pathlib import Path

import anyio
import pytest

from intermodel.config.credentials import resolve_credentials
from intermodel.config.request import Message, Request
from intermodel.engine.events import Notice, TextChunk
from intermodel.engine.prepare import prepared_run
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.turns import DISCARD_KEPT, TurnProducer
from intermodel.errors import EXIT_USAGE, ConfigError, ProviderError
from intermodel.providers.anthropic import AnthropicProvider
from intermodel.providers.base import (
    Finished,
    Provider,
    ProviderBase,
    StreamEvent,
    TextDelta,
    UsageReport,
)
from intermodel.providers.openai import OpenAIProvider
from intermodel.providers.probe import ProbeFailed
from intermodel.records import Discard, Retry
from intermodel.security.secrets import Credentials, Redactor
from intermodel.transcript.schema import Run, read_record
from tests.fakeserver import FakeServer, Fault, Reply, ScriptedResponder
from tests.fakeserver.sse import ENDLESS_PIECE

from .server_pairings import (
    KEY,
    PROTOCOLS,
    notes,
    pairing_for,
    pairing_text,
    run_to_end,
    transcript_of,
)

pytestmark = pytest.mark.anyio

REPO = Path(__file__).resolve().parents[2]
ENV = {"TEST_KEY": KEY}


@pytest.fixture
def server() -> FakeServer:
    with FakeServer() as srv:
        yield srv  # type: ignore[misc]


def provider_for(protocol: str, srv: FakeServer, extra: str = "",
                 headers: dict[str, str] | None = None) -> Provider:
    agent = pairing_for(srv.base_url, protocol, protocol, extra_a=extra).agent("ada")
    cls = OpenAIProvider if protocol == "openai" else AnthropicProvider
    return cls(agent, Credentials(api_key=KEY, headers=headers or {}))


def request() -> Request:
    return Request(model="m", system="", messages=(Message("user", "Hi"),))


async def collect(provider: Provider) -> list[StreamEvent]:
    try:
        with anyio.fail_after(20):
            return [event async for event in provider.stream(request())]
    finally:
        await provider.aclose()


# -- credentials and redirects -------------------------------------------------------------------


@pytest.mark.parametrize("code", [301, 307, 308])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_model_request_follows_no_redirect(server: FakeServer, protocol: str,
                                                   code: int) -> None:
    with FakeServer() as elsewhere:
        path = "/v1/chat/completions" if protocol == "openai" else "/v1/messages"
        server.faults.push(Fault.redirect(elsewhere.base_url + path, code))
        headers = {"x-api-key": "proxy-secret-value", "X-Proxy-Token": "token-secret-value"}
        with pytest.raises(ProviderError) as caught:
            await collect(provider_for(protocol, server, headers=headers))
        assert elsewhere.requests == []  # nothing, and no credential, went elsewhere
    error = caught.value
    assert (error.kind, error.status, error.transient) == ("provider_broken", code, False)
    assert f"redirects to {elsewhere.base_url}{path}" in error.message
    assert "\n" not in error.describe()


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_not_even_a_redirect_to_the_same_server_is_followed(server: FakeServer,
                                                                   protocol: str) -> None:
    server.faults.push(Fault.redirect(server.base_url + "/elsewhere", 308))
    with pytest.raises(ProviderError, match="redirects to"):
        await collect(provider_for(protocol, server))
    assert [r.path for r in server.requests if r.method == "POST"] == [
        "/v1/chat/completions" if protocol == "openai" else "/v1/messages"]


async def test_the_context_probes_follow_no_redirect(server: FakeServer) -> None:
    with FakeServer() as elsewhere:
        server.every_request = Fault.redirect(elsewhere.base_url + "/props", 307)
        provider = provider_for("openai", server, headers={"x-api-key": "proxy-secret-value"})
        try:
            assert await provider.context_limit() is None  # type: ignore[attr-defined]
        finally:
            await provider.aclose()
        assert elsewhere.requests == []
    assert [r.path for r in server.requests] == ["/props", "/v1/models", "/api/show"]


BAD_VALUES = {"line feed": "Bearer abc\nX-Injected: 1", "carriage return": "abc\rdef",
              "control character": "abc\x01def", "non-ASCII": "café"}


@pytest.mark.parametrize("value", list(BAD_VALUES.values()), ids=list(BAD_VALUES))
async def test_a_header_value_that_cannot_be_sent_is_refused_in_the_pairing(
        make_pairing, value: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError) as caught:
        make_pairing(extra=f"[agents.ada.extra_headers]\nX-Trace = {json.dumps(value)}\n")
    [issue] = caught.value.issues
    assert issue.path == "agents.ada.extra_headers.X-Trace"
    assert "header values are printable ASCII" in issue.message
    assert ("line break" in issue.message) == (value != BAD_VALUES["control character"]
                                               and value != BAD_VALUES["non-ASCII"])


async def test_a_header_name_that_cannot_be_sent_is_refused(make_pairing) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ConfigError, match="not a header name"):
        make_pairing(extra='[agents.ada.extra_headers]\n"X Bad:Name" = "v"\n')


async def test_a_line_break_read_from_the_environment_is_refused_before_any_request(
        server: FakeServer) -> None:
    pairing = pairing_for(server.base_url, extra_a='[agents.ada.extra_headers]\n'
                                                   'X-Proxy-Token = "Bearer ${PROXY_TOKEN}"\n')
    environ = {**ENV, "PROXY_TOKEN": "secret\r\nX-Injected: yes"}
    with pytest.raises(ConfigError) as caught:
        resolve_credentials(pairing, environ)
    [issue] = caught.value.issues
    assert issue.path == "agents.ada.extra_headers.X-Proxy-Token"
    assert "line break" in issue.message and "secret" not in str(caught.value)
    with pytest.raises(ConfigError):
        async with prepared_run(pairing, record=False, environ=environ):
            pass
    assert server.requests == []
    with pytest.raises(ConfigError, match=r"api_key_env: the key in TEST_KEY holds a line break"):
        resolve_credentials(pairing, {"TEST_KEY": KEY + "\n"})


def _intermodel(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "intermodel", *args], cwd=REPO,
                          env={**os.environ, **env, "NO_COLOR": "1"}, capture_output=True,
                          text=True, timeout=60, check=False)


def test_validate_and_run_refuse_a_header_with_a_line_break_in_one_line(tmp_path: Path) -> None:
    config = tmp_path / "p.toml"
    config.write_text(pairing_text("http://127.0.0.1:9", extra_a='[agents.ada.extra_headers]\n'
                                                                 'X-Token = "${PROXY_TOKEN}"\n'))
    env = {**ENV, "PROXY_TOKEN": "abc\ndef", "INTERMODEL_TRANSCRIPTS": str(tmp_path / "t")}
    checked = _intermodel("validate", str(config), env=env)
    assert checked.returncode == EXIT_USAGE
    [line] = [x for x in checked.stdout.splitlines() if "error:" in x]
    assert "X-Token: with its variables read, the value holds a line break" in line
    ran = _intermodel("run", str(config), "--headless", env=env)
    assert ran.returncode == EXIT_USAGE
    assert ran.stderr.count("\n") == 1 and "holds a line break" in ran.stderr
    assert "Traceback" not in ran.stderr
    assert not (tmp_path / "t").exists()  # refused before a transcript was started


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_header_the_http_library_refuses_is_fatal_not_retried(server: FakeServer,
                                                                      protocol: str) -> None:
    # Past the config checks (a provider given such a value directly): still no retry for hours.
    provider = provider_for(protocol, server, headers={"X-Trace": "a\r\nX-Injected: 1"})
    with pytest.raises(ProviderError) as caught:
        await collect(provider)
    assert (caught.value.kind, caught.value.transient) == ("bad_request", False)
    assert caught.value.message.startswith("the request could not be sent")
    assert server.requests == []


# -- stalls and deadlines ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_dripping_stream_is_a_stall_and_is_retried(server: FakeServer, tmp_path: Path,
                                                           protocol: str) -> None:
    # A byte every 0.3 s: no read ever waits the 1 s timeout, but no event completes either.
    server.faults.push(Fault.drip(after_chunks=3, seconds=0.3))
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert (retry.error, retry.message) == ("timed_out",
                                            "no complete event for 1 s (the server stalled)")
    assert retry.partial_chars > 0
    [turn] = transcript.turns
    assert turn.attempts == 2 and turn.text.startswith("Reply 2")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_reply_slower_than_its_deadline_is_retried(server: FakeServer, tmp_path: Path,
                                                           protocol: str) -> None:
    # Every event comes well within the stall timeout, but the whole reply would take 6 s.
    server.chunk_delay = 0.1
    server.responder = ScriptedResponder([Reply(" ".join(["word"] * 60)), Reply("Short.")])
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1,
                          extra_a="timeout = 2\nmax_reply_seconds = 1\n")
    started = time.perf_counter()
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    assert time.perf_counter() - started < 5
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert (retry.error, retry.message) == (
        "timed_out", "the reply took longer than 1 s (max_reply_seconds)")
    assert transcript.turns[0].text == "Short."


async def test_the_context_too_long_check_has_a_deadline_too(server: FakeServer,
                                                             tmp_path: Path) -> None:
    # An empty stream makes the provider ask again, unstreamed; that answer drips.
    server.faults.push(Fault.empty_stream(), Fault.drip(seconds=0.3))
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert retry.error == "timed_out"
    posts = [r for r in server.requests if r.method == "POST"]
    assert [r.stream for r in posts] == [True, False, True]


async def test_an_endless_unstreamed_answer_is_read_no_further_than_64_kib(
        server: FakeServer, tmp_path: Path) -> None:
    # The unstreamed request that explains an empty stream gets a body that never ends.
    server.faults.push(Fault.empty_stream(), Fault.endless())
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1, extra_a="timeout = 5\n")
    started = time.perf_counter()
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    assert time.perf_counter() - started < 4  # cut at 64 KiB, not by the 5 s stall watchdog
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert retry.error == "stream_interrupted" and "malformed" in retry.message


# -- endless replies -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_endless_reply_is_cut_and_kept_as_a_length_stop(server: FakeServer,
                                                                 tmp_path: Path,
                                                                 protocol: str) -> None:
    server.faults.push(Fault.endless())
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1)  # max_tokens = 64
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    [turn] = transcript.turns
    assert (turn.stop_reason, turn.client_stop, turn.attempts) == ("length", True, 1)
    assert 4096 < len(turn.text) <= 4096 + len(ENDLESS_PIECE)  # the floor of the cap, 4096
    assert turn.text.startswith(ENDLESS_PIECE * 2)
    [note] = [n for n in notes(transcript.records) if "turn 1" in n]
    assert note == ("ada, turn 1: the reply passed 4,096 characters without finishing; "
                    "intermodel cut it there (stop_reason length, client_stop)")
    assert not any(isinstance(r, Retry) for r in transcript.records)


async def test_the_cap_follows_max_tokens_and_max_reply_chars(server: FakeServer,
                                                              tmp_path: Path) -> None:
    server.faults.push(Fault.endless(), Fault.endless())
    server.n_ctx = 1_000_000  # room for long replies in the agents' views
    pairing = pairing_for(server.base_url, "openai", "openai", turns=2,
                          extra_a="max_tokens = 500\n",  # 32 x 500 = 16,000 characters
                          extra_b="max_tokens = 500\nmax_reply_chars = 2000\n")
    _, transcript = await run_to_end(pairing, tmp_path)
    first, second = transcript.turns
    assert 16_000 < len(first.text) <= 16_000 + len(ENDLESS_PIECE)
    assert 2_000 < len(second.text) <= 2_000 + len(ENDLESS_PIECE)
    assert first.client_stop and second.client_stop


async def test_a_server_length_stop_is_not_a_client_stop(server: FakeServer,
                                                         tmp_path: Path) -> None:
    server.responder = ScriptedResponder([Reply("Cut short", stop_reason="length")])
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1)
    _, transcript = await run_to_end(pairing, tmp_path)
    [turn] = transcript.turns
    assert (turn.stop_reason, turn.client_stop) == ("length", False)
    records = [json.loads(line) for line in transcript.path.read_text().splitlines()]
    assert [r["client_stop"] for r in records if r["kind"] == "turn"] == [False]


async def test_a_discarded_reply_keeps_a_bounded_prefix_and_its_length(server: FakeServer,
                                                                       tmp_path: Path) -> None:
    server.faults.push(Fault.endless())
    server.n_ctx = 1_000_000
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1,
                          extra_a="max_tokens = 100000\n")  # a cap far away: 3.2 M characters
    async with prepared_run(pairing, out_dir=tmp_path, environ=ENV) as run:
        subscription = run.session.subscribe()

        async def stop_past(chars: int) -> None:
            seen = 0
            while await subscription.wait():
                for event in subscription.drain():
                    if isinstance(event, TextChunk):
                        seen += len(event.text)
                if seen > chars:
                    run.session.controls.stop(now=True)
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_past, 3 * DISCARD_KEPT)
            with anyio.fail_after(15):
                end = await run.session.run()
    assert end.reason == "stopped"
    [discard] = [r for r in transcript_of(run.transcript).records if isinstance(r, Discard)]
    assert len(discard.text) == DISCARD_KEPT
    assert discard.text_chars is not None and discard.text_chars > 3 * DISCARD_KEPT
    assert (discard.thinking, discard.thinking_chars) == ("", 0)


def test_a_discard_written_before_lengths_were_kept_still_reads() -> None:
    old = {"kind": "discard", "turn": 3, "agent": "bo", "reason": "interrupted",
           "text": "half a rep", "thinking": "", "at": "2026-11-26T19:30:55.647Z"}
    discard = read_record(old, Run(agents=("ada", "bo")))
    assert isinstance(discard, Discard)
    assert (discard.text, discard.text_chars, discard.thinking_chars) == ("half a rep", None, None)


# -- malformed payloads --------------------------------------------------------------------------

PAYLOADS = [("invalid_utf8", "stream_interrupted", True),
            ("huge_int", "provider_broken", False),
            ("deep_nesting", "provider_broken", False)]


@pytest.mark.parametrize(("payload", "kind", "transient"), PAYLOADS,
                         ids=[p[0] for p in PAYLOADS])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_malformed_payload_is_a_classified_error(server: FakeServer, protocol: str,
                                                         payload: str, kind: str,
                                                         transient: bool) -> None:
    server.faults.push(Fault.bad_payload(payload, 4))  # type: ignore[arg-type]
    with pytest.raises(ProviderError) as caught:
        await collect(provider_for(protocol, server))
    error = caught.value
    assert (error.kind, error.transient, error.provider) == (kind, transient, protocol)
    line = error.describe()
    assert "\n" not in line and len(line) < 500 and "Traceback" not in line


async def test_a_run_ends_on_a_hostile_payload_with_one_line(server: FakeServer,
                                                             tmp_path: Path) -> None:
    server.faults.push(Fault.ok(), Fault.bad_payload("deep_nesting", 4))
    pairing = pairing_for(server.base_url, turns=2)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "error"
    assert end.detail == ("bo: anthropic provider broken: the server sent JSON nested too "
                          "deeply to read")
    assert len(transcript.turns) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_absurd_usage_costs_the_counts_not_the_reply(server: FakeServer, tmp_path: Path,
                                                           protocol: str) -> None:
    server.faults.push(Fault.bad_payload("absurd_usage"))
    pairing = pairing_for(server.base_url, protocol, protocol, turns=2)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    first, second = transcript.turns
    assert first.text.startswith("Reply 1") and first.attempts == 1
    assert (first.usage.input_tokens, first.usage.output_tokens) == (None, None)
    assert second.usage.output_tokens is not None  # an honest reply keeps its counts
    found = [n for n in notes(transcript.records) if "turn 1" in n]
    assert len(found) == 2 and all("turn 1: the server reported" in n for n in found)
    assert f"output_tokens = 1{'0' * 19}… (401 characters); recorded as unknown" in found[1]
    assert transcript.end is not None and transcript.end.usage["bo"].output_tokens is not None


class _Reports(ProviderBase):
    """A provider that reports the given usage with an otherwise ordinary reply."""

    name = "reports"

    def __init__(self, usage: UsageReport) -> None:
        self.usage = usage

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        yield TextDelta("fine")
        yield self.usage
        yield Finished("stop", "m")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("reported", "kept"), [
    ((12, 34, 5), (12, 34, 5)),
    ((12.0, 1e400, -1), (12, None, None)),
    ((True, "34", 2**53 + 1), (None, None, None)),
    ((None, 2**53, None), (None, 2**53, None)),
])
async def test_only_plausible_counts_are_kept(reported: tuple[object, object, object],
                                              kept: tuple[object, object, object]) -> None:
    emitted: list[object] = []

    async def emit(event: object) -> None:
        emitted.append(event)

    producer = TurnProducer(emit=emit, publish=lambda event: None,  # type: ignore[arg-type]
                            retry=RetryPolicy(pairing_for("http://x").retry), redact=Redactor(),
                            deadline=lambda: float("inf"), stop_reason=lambda: None)

    async def fit(refused: bool) -> Request:
        return request()

    turn, _ = await producer.produce(1, "ada", _Reports(UsageReport(*reported)),  # type: ignore[arg-type]
                                     fit, 1)
    usage = turn.usage
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == kept
    dropped = sum(1 for r, k in zip(reported, kept, strict=True) if r is not None and k is None)
    assert len([e for e in emitted if isinstance(e, Notice)]) == dropped


# -- a finished reply on a connection that stays open ---------------------------------------------


@pytest.mark.parametrize("usage", [True, False], ids=["with-usage", "no-usage"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_finished_reply_is_complete_though_the_connection_stays_open(
        server: FakeServer, tmp_path: Path, protocol: str, usage: bool) -> None:
    server.faults.push(Fault.linger(usage=usage))
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1,
                          extra_a="timeout = 10\n")
    started = time.perf_counter()
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    assert time.perf_counter() - started < 4  # not the 10 s read timeout
    [turn] = transcript.turns
    assert turn.attempts == 1 and turn.text.startswith("Reply 1")
    assert not any(isinstance(r, Retry) for r in transcript.records)
    has_counts = usage or protocol == "anthropic"  # Anthropic's usage comes with the stop
    assert (turn.usage.output_tokens is not None) == has_counts


# -- the context probes --------------------------------------------------------------------------


@pytest.mark.parametrize("hang", ["drip", "silent"])
async def test_a_probe_that_gets_no_answer_costs_seconds_and_a_note(server: FakeServer,
                                                                    tmp_path: Path,
                                                                    hang: str) -> None:
    server.every_request = Fault.drip(seconds=0.3) if hang == "drip" else Fault.silent()
    pairing = pairing_for(server.base_url, "openai", "anthropic", turns=2,
                          extra_a="context_window = 3000\n")
    async with prepared_run(pairing, out_dir=tmp_path, environ=ENV) as run:
        subscription = run.session.subscribe()

        async def answer_after_the_probes() -> None:
            while await subscription.wait():
                if any(isinstance(e, Notice) for e in subscription.drain()):
                    server.every_request = None  # the server recovers: the turns go through
                    return

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(answer_after_the_probes)
            with anyio.fail_after(15):
                end = await run.session.run()
    assert end.reason == "max_turns"
    transcript = transcript_of(run.transcript)
    assert notes(transcript.records)[0] == (
        "ada: context size unknown: the server did not answer the probe in 1 s; using the "
        "configured context_window of 3000")
    assert time.perf_counter() - started < 6
    assert [t.agent for t in transcript.turns] == ["ada", "bo"]


async def test_a_probe_of_a_server_that_is_gone_says_so(tmp_path: Path) -> None:
    with FakeServer() as srv:
        pairing = pairing_for(srv.base_url, "openai", "openai")
    provider = OpenAIProvider(pairing.agent("ada"), Credentials(api_key=KEY))
    try:
        with anyio.fail_after(5), pytest.raises(ProbeFailed, match=r"^the probe failed: "):
            await provider.context_limit()
    finally:
        await provider.aclose()


@pytest.mark.parametrize("answer", [
    {"default_generation_settings": {"n_ctx": 10**400}},
    {"default_generation_settings": {"n_ctx": -5}},
    {"default_generation_settings": ["n_ctx", 4096]},
    [1, 2, 3],
    "[" * 100_000 + "]" * 100_000,
], ids=["huge", "negative", "misshapen", "a-list", "deeply-nested"])
async def test_absurd_probe_answers_mean_unknown(server: FakeServer, answer: object) -> None:
    server.flavor = "plain"  # /api/show is not found: only the absurd answers below answer
    server.answers = {"/props": answer, "/v1/models": answer}
    provider = provider_for("openai", server)
    try:
        assert await provider.context_limit() is None  # type: ignore[attr-defined]
    finally:
        await provider.aclose()
    assert [r.path for r in server.requests] == ["/props", "/v1/models", "/api/show"]
