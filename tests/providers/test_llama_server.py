"""intermodel's `openai` provider against a server nobody here wrote: llama-cpp-python's
OpenAI-compatible server (`python -m llama_cpp.server`) serving the bundled model.

Besides a whole pairing run through it, the tests pin down what this server actually sends, so a
change in a new version shows up here rather than as a puzzling run:

- no usage in a stream, even with `stream_options.include_usage`;
- `model` in every chunk echoes the name the client asked for, whatever was loaded;
- the first chunk carries only the role, the last one only the finish reason, then `[DONE]`;
- a streamed request too long for the context is answered 200 with an empty event stream (the
  server logs the error); the same request without streaming gets a proper 400.
"""

from __future__ import annotations

import importlib.util
import json
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import httpx2
import pytest

from intermodel.config.model import AgentConfig
from intermodel.config.request import Message, Request, Sampling
from intermodel.engine.events import TurnCompleted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import ProviderError
from intermodel.providers.base import Finished, TextDelta
from intermodel.providers.local import bundled_model_path
from intermodel.providers.openai import OpenAIProvider
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from tests.conftest import PairingFactory, require_local_model

require_local_model()
for needed in ("uvicorn", "sse_starlette", "starlette_context"):
    if importlib.util.find_spec(needed) is None:  # the dev extra brings llama-cpp-python[server]
        pytest.fail(f"llama-cpp-python's server needs {needed}", pytrace=False)

pytestmark = pytest.mark.local

N_CTX = 1024
STARTUP_SECONDS = 90


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The server's base URL (…/v1). Its log goes to a file, shown if it fails to start."""
    port = free_port()
    log_path = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(bundled_model_path()),
        "--host", "127.0.0.1", "--port", str(port),
        "--n_ctx", str(N_CTX),
        # Off, or two agents sharing the server cut each other's replies short.
        "--interrupt_requests", "False",
        "--verbose", "False",
    ]
    with log_path.open("wb") as log:
        process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
        try:
            base = f"http://127.0.0.1:{port}/v1"
            _wait_until_ready(process, base, log_path)
            yield base
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()


def _wait_until_ready(process: subprocess.Popen[bytes], base: str, log_path: Path) -> None:
    deadline = time.monotonic() + STARTUP_SECONDS
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n"
                        f"{log_path.read_text(errors='replace')[-2000:]}")
        try:
            if httpx2.get(f"{base}/models", timeout=1.0).status_code == 200:
                return
        except httpx2.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {STARTUP_SECONDS} s:\n"
                f"{log_path.read_text(errors='replace')[-2000:]}")


def sse_events(base: str, body: dict[str, Any]) -> tuple[int, list[str]]:
    """(status, the `data:` payloads) of one streamed chat completion."""
    with httpx2.stream("POST", f"{base}/chat/completions", json=body, timeout=60) as response:
        lines = [line for line in response.iter_lines() if line.startswith("data:")]
        return response.status_code, [line.removeprefix("data:").strip() for line in lines]


def chat(text: str, **extra: Any) -> dict[str, Any]:
    return {"model": "any-name", "messages": [{"role": "user", "content": text}],
            "stream": True, "max_tokens": 6, "seed": 1, **extra}


# -- what the server sends ------------------------------------------------------------------------


def test_the_stream_carries_no_usage_and_echoes_the_model_name(server: str) -> None:
    status, events = sse_events(server, chat("Name a planet.",
                                             stream_options={"include_usage": True}))
    assert status == 200
    assert events[-1] == "[DONE]"
    chunks = [json.loads(e) for e in events[:-1]]
    assert all("usage" not in c or c["usage"] is None for c in chunks)
    assert {c["model"] for c in chunks} == {"any-name"}
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
    last = chunks[-1]["choices"][0]
    assert last["delta"] == {} and last["finish_reason"] in ("stop", "length")
    assert all(c["choices"][0]["finish_reason"] is None for c in chunks[:-1])


def test_a_streamed_request_beyond_the_context_gets_an_empty_stream(server: str) -> None:
    status, events = sse_events(server, chat("word " * (N_CTX + 100)))
    assert (status, events) == (200, [])
    refused = httpx2.post(f"{server}/chat/completions",
                         json=chat("word " * (N_CTX + 100), stream=False), timeout=60)
    assert refused.status_code == 400
    assert refused.json()["error"]["code"] == "context_length_exceeded"


@pytest.mark.anyio
async def test_the_openai_provider_reports_the_empty_stream_as_a_failure(server: str) -> None:
    provider = OpenAIProvider(AgentConfig(name="ada", provider="openai", model="smollm2",
                                          base_url=server), Credentials(api_key="none"))
    request = Request(model="smollm2", system="", messages=(Message("user", "word " * N_CTX),),
                      sampling=Sampling(max_tokens=6))
    try:
        with pytest.raises(ProviderError):
            async for _ in provider.stream(request):
                pass
    finally:
        await provider.aclose()


# -- intermodel through it ------------------------------------------------------------------------

PAIR = """
name = "llama-server-pair"
[dialogue]
opener = "Say hello and ask one question."
max_turns = 4
[agents.ada]
provider = "openai"
model = "smollm2"
base_url = "{base}"
prompt = "You are {{name}}. Be brief."
max_tokens = 12
seed = 1
[agents.bo]
provider = "openai"
model = "smollm2"
base_url = "{base}"
prompt = "You are {{name}}. Be brief."
max_tokens = 12
seed = 2
"""


@pytest.mark.anyio
async def test_a_pairing_runs_through_the_server(server: str, make_pairing: PairingFactory,
                                                 tmp_path: Path) -> None:
    pairing = make_pairing(PAIR.format(base=server))
    async with prepared_run(pairing, out_dir=tmp_path, environ={}) as run:
        subscription = run.session.subscribe()
        end = await run.session.run()
        path = run.transcript
    turns = [e.turn for e in subscription.drain() if isinstance(e, TurnCompleted)]
    assert end.reason == "max_turns"
    assert [t.agent for t in turns] == ["ada", "bo", "ada", "bo"]
    for turn in turns:
        assert turn.text.strip()
        assert turn.stop_reason in ("stop", "length")
        assert turn.model == "smollm2"  # the echo, not the file that was loaded
        assert turn.usage.input_tokens is None and turn.usage.output_tokens is None
        assert turn.attempts == 1
    assert path is not None
    assert [t.text for t in read_transcript(path).turns] == [t.text for t in turns]


@pytest.mark.anyio
async def test_concurrent_streams_are_not_cut_off(server: str) -> None:
    """With `--interrupt_requests False` a second request waits instead of ending the first."""
    providers = [OpenAIProvider(AgentConfig(name=name, provider="openai", model="smollm2",
                                            base_url=server), Credentials(api_key="none"))
                 for name in ("ada", "bo")]
    finishes: list[Finished] = []
    texts: list[str] = []

    async def talk(provider: OpenAIProvider, topic: str) -> None:
        request = Request(model="smollm2", system="", messages=(Message("user", topic),),
                          sampling=Sampling(max_tokens=16, seed=3))
        text = ""
        async for event in provider.stream(request):
            if isinstance(event, TextDelta):
                text += event.text
            elif isinstance(event, Finished):
                finishes.append(event)
        texts.append(text)

    try:
        async with anyio.create_task_group() as tg:
            tg.start_soon(talk, providers[0], "Tell me about rivers.")
            tg.start_soon(talk, providers[1], "Tell me about mountains.")
    finally:
        for provider in providers:
            await provider.aclose()
    assert len(finishes) == 2 and all(t.strip() for t in texts)
