"""Context windows: estimates, trimming that is recorded and rebuildable, the stop policy, server
refusals, and discovering what local servers really use."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from intermodel.config import parse_pairing
from intermodel.config.request import Message, Request
from intermodel.engine.events import Notice, Trimmed
from intermodel.engine.prepare import prepared_run
from intermodel.engine.tokens import Calibration, estimate_tokens
from intermodel.lineage.audit import verify_transcript
from intermodel.providers.openai import OpenAIProvider
from intermodel.records import Note, Trim
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.conftest import PairingFactory
from tests.fakes import run_dialogue, scripted_providers
from tests.fakeserver import FakeServer, Fault

pytestmark = pytest.mark.anyio

WORDS = " ".join(f"word{i}" for i in range(60))  # about 110 tokens by the estimate
WINDOWED = f"""
name = "window"
[dialogue]
opener = "Begin, please."
max_turns = 12
{{policy}}
[agents.ada]
provider = "scripted"
prompt = "You are ada."
max_tokens = 50
context_window = 600
[agents.ada.script]
replies = ["ada {WORDS} {{reply}}"]
[agents.bo]
provider = "scripted"
prompt = "You are bo."
max_tokens = 50
[agents.bo.script]
replies = ["bo {WORDS} {{reply}}"]
"""


def test_estimates_and_calibration() -> None:
    request = Request("m", "x" * 400, (Message("user", "y" * 400),))
    assert estimate_tokens(request) == 200 + 8
    calibration = Calibration()
    uncalibrated = calibration.input_tokens(request)
    calibration.learn(estimated=208, reported=416)  # this server counts twice as many
    assert calibration.input_tokens(request) == pytest.approx(2 * uncalibrated, rel=0.02)


async def test_oldest_turns_are_dropped_recorded_and_rebuildable(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    pairing = make_pairing(WINDOWED.replace("{policy}", ""))
    providers = scripted_providers(pairing)
    async with prepared_run(pairing, out_dir=tmp_path,
                            provider_factory=lambda a, p, c: providers[a.name]) as run:
        end = await run.session.run()
    assert end.reason == "max_turns"
    assert run.transcript is not None
    transcript = read_transcript(run.transcript)
    trims = [r for r in transcript.records if isinstance(r, Trim)]
    assert trims, "a 600-token window cannot hold twelve 110-token turns"
    assert all(t.agent == "ada" and t.cause == "estimate" and t.window == 600 for t in trims)
    assert all(t.estimated_tokens > 600 for t in trims)
    cutoffs = [t.dropped_through for t in trims]
    assert cutoffs == sorted(cutoffs)  # once dropped, a turn stays dropped
    for request in providers["ada"].requests:
        assert request.messages[0].content.startswith("Begin, please.")  # the opener stays
        assert request.system == "You are ada."  # and so does the role prompt
    assert len(providers["ada"].requests[-1].messages) < 11
    assert len(providers["bo"].requests[-1].messages) == 11  # bo has no window: nothing cut
    assert all(r.matches for r in verify_transcript(transcript))


async def test_stop_policy_ends_the_run_when_the_window_is_full(
        make_pairing: PairingFactory) -> None:
    pairing = make_pairing(WINDOWED.replace("{policy}", 'context_policy = "stop"'))
    end, events = await run_dialogue(pairing)
    assert end.reason == "context_full"
    assert "ada's request for turn" in end.detail and "600" in end.detail
    assert not any(isinstance(e, Trimmed) for e in events)


@pytest.fixture
def server() -> Iterator[FakeServer]:
    with FakeServer() as srv:
        yield srv


def openai_pairing(srv: FakeServer, extra: str = "", turns: int = 4):  # type: ignore[no-untyped-def]
    return parse_pairing(f"""
name = "served"
[dialogue]
opener = "Begin."
max_turns = {turns}
[retry]
backoff_initial = 0.01
[agents.ada]
provider = "openai"
model = "served-model"
base_url = "{srv.base_url}/v1"
max_tokens = 100
{extra}
[agents.bo]
provider = "openai"
model = "served-model"
base_url = "{srv.base_url}/v1"
max_tokens = 100
""", source="served.toml")


async def test_a_server_refusal_trims_harder_and_the_turn_completes(
        server: FakeServer, tmp_path: Path) -> None:
    server.faults.push(*[Fault.ok()] * 4, Fault.context_too_long())
    pairing = openai_pairing(server, turns=6)
    async with prepared_run(pairing, out_dir=tmp_path) as run:
        end = await run.session.run()
    assert end.reason == "max_turns"
    assert run.transcript is not None
    transcript = read_transcript(run.transcript)
    [trim] = [r for r in transcript.records if isinstance(r, Trim)]
    assert (trim.agent, trim.turn, trim.cause) == ("ada", 5, "server")
    assert trim.dropped[0] == 1
    assert [t.index for t in transcript.turns] == [1, 2, 3, 4, 5, 6]
    assert transcript.turn(5).attempts == 2
    assert all(r.matches for r in verify_transcript(transcript))


async def test_an_empty_stream_is_explained_by_asking_again_unstreamed(
        server: FakeServer, tmp_path: Path) -> None:
    # llama-cpp-python's server: an over-long prompt gets 200 and no events when streamed, a
    # proper 400 when not. The provider asks again unstreamed and the trim policy takes over.
    server.faults.push(*[Fault.ok()] * 2, Fault.empty_stream(), Fault.context_too_long())
    async with prepared_run(openai_pairing(server, turns=4), out_dir=tmp_path) as run:
        end = await run.session.run()
    assert end.reason == "max_turns"
    assert run.transcript is not None
    [trim] = [r for r in read_transcript(run.transcript).records if isinstance(r, Trim)]
    assert (trim.turn, trim.cause) == (3, "server")
    posts = [r for r in server.requests if r.method == "POST"]
    assert posts[3].json["stream"] is False and posts[3].json["max_tokens"] == 1


@pytest.mark.parametrize(("flavor", "num_ctx", "extra", "expected"), [
    ("llamacpp", None, "", 4096),
    ("vllm", None, "", 8192),
    ("ollama", None, "", 4096),  # no num_ctx: Ollama's default, not the trained 131072
    ("ollama", 8192, "", 8192),
    ("ollama", None, "[agents.ada.extra_body]\noptions = { num_ctx = 16384 }", 16384),
    ("plain", None, "", None),
])
async def test_local_servers_are_asked_for_their_real_context(
        server: FakeServer, flavor: str, num_ctx: int | None, extra: str,
        expected: int | None) -> None:
    server.flavor = flavor  # type: ignore[assignment]
    server.n_ctx = 4096 if flavor == "llamacpp" else 8192
    server.ollama_num_ctx = num_ctx
    agent = openai_pairing(server, extra).agent("ada")
    provider = OpenAIProvider(agent, Credentials(api_key="k"))
    try:
        assert await provider.context_limit() == expected
    finally:
        await provider.aclose()


async def test_discovered_context_is_noted_and_used(server: FakeServer, tmp_path: Path) -> None:
    server.n_ctx = 2048
    pairing = openai_pairing(server, "context_window = 8000", turns=30)
    async with prepared_run(pairing, out_dir=tmp_path) as run:
        subscription = run.session.subscribe()
        end = await run.session.run()
    notices = [e.message for e in subscription.drain() if isinstance(e, Notice)]
    assert "ada: the server's context is 2048 tokens, less than the configured context_window " \
           "of 8000; using 2048" in notices
    assert any(n.startswith("bo: a full run could need about") for n in notices)
    assert end.reason == "max_turns"
    assert run.transcript is not None
    notes = [r.message for r in read_transcript(run.transcript).records if isinstance(r, Note)]
    assert notes == notices


async def test_a_pairing_that_cannot_fit_one_turn_is_refused_before_any_request(
        server: FakeServer, tmp_path: Path) -> None:
    server.n_ctx = 150
    async with prepared_run(openai_pairing(server), out_dir=tmp_path) as run:
        end = await run.session.run()
    assert end.reason == "context_full"
    assert "the context window is 150" in end.detail
    assert not [r for r in server.requests if r.path.endswith("/chat/completions")]
