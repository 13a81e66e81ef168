"""The context probes against hostile or absent servers: a probe that gets no answer costs
seconds and a note, one of a server that is gone says so, and absurd answers mean unknown."""

from __future__ import annotations

import time
from pathlib import Path

import anyio
import pytest

from intermodel.engine.events import Notice
from intermodel.engine.prepare import prepared_run
from intermodel.providers.openai import OpenAIProvider
from intermodel.providers.probe import ProbeFailed
from intermodel.security.secrets import Credentials
from tests.fakeserver import FakeServer, Fault

from .server_pairings import (
    ENV,
    KEY,
    notes,
    pairing_for,
    provider_for,
    transcript_of,
)

pytestmark = pytest.mark.anyio


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
