"""Relay overhead without the network: what intermodel adds per chunk, the stream's bytes replayed.

`bench/relay.py` times whole turns against a server in another process; on a shared machine the
load swings its figures by more than intermodel's own cost. Here each protocol's event stream is
taken once from the loopback fake server (N chunks), then replayed from memory under the HTTP
client, one event per read, in alternation:

- the SDK loop: the SDK's own streaming loop (`create(stream=True)`), testing each event as
  `bench/relay.py` does;
- decoding alone: the raw response through the providers' event reader and JSON decoding
  (`providers.wire`), each event tested as above: the floor under intermodel's path;
- intermodel: a whole dialogue turn whose provider's HTTP client reads the replayed bytes —
  provider, orchestrator, key redaction (a key of a real key's length), event bus, transcript
  writer and the headless console into a null stream.

Every path decodes the same bytes, and none waits for a socket. Prints microseconds per chunk
(medians; for intermodel over decoding alone, the best too), and intermodel's speed over the SDK
loop's.

    python bench/relay_replay.py [--chunks 2000] [--runs 9] [--protocol openai anthropic responses]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import sys
import tempfile
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anthropic
import anyio
import httpx2
import openai

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from relay import KEY, pairing_text, start_server  # noqa: E402

from intermodel.config import parse_pairing  # noqa: E402
from intermodel.config.model import AgentConfig  # noqa: E402
from intermodel.console.render import run_console  # noqa: E402
from intermodel.engine.prepare import prepared_run  # noqa: E402
from intermodel.providers.base import Provider  # noqa: E402
from intermodel.providers.registry import make_provider  # noqa: E402
from intermodel.providers.wire import json_object, member, server_events  # noqa: E402
from intermodel.security.secrets import Credentials  # noqa: E402
from intermodel.transcript.reader import read_transcript  # noqa: E402


def replaying(pieces: list[bytes]) -> httpx2.MockTransport:
    """A transport that answers every request with the captured stream, one event per read (as
    a model's events arrive: each in a read of its own)."""

    async def body() -> AsyncIterator[bytes]:
        for piece in pieces:
            yield piece

    def answer(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": "text/event-stream"}, content=body())

    return httpx2.MockTransport(answer)


PATHS = {"openai": "/v1/chat/completions", "anthropic": "/v1/messages",
         "responses": "/v1/responses"}


def capture(protocol: str, base_url: str, chunks: int) -> list[bytes]:
    """The fake server's event stream for one reply, cut into its events."""
    messages = [{"role": "user", "content": "Go."}]
    body: dict[str, Any] = {"model": "m", "stream": True}
    if protocol == "responses":
        body |= {"input": messages, "max_output_tokens": chunks + 10}
    else:
        body |= {"messages": messages, "max_tokens": chunks + 10}
    if protocol == "openai":
        body["stream_options"] = {"include_usage": True}
    headers = {"authorization": f"Bearer {KEY}", "x-api-key": KEY,
               "anthropic-version": "2023-06-01"}
    with httpx2.Client() as client:
        reply = client.post(base_url + PATHS[protocol], json=body, headers=headers)
    events = reply.content.split(b"\n\n")
    return [event + b"\n\n" for event in events if event]


def sdk_client(protocol: str, pieces: list[bytes]) -> Any:
    http = httpx2.AsyncClient(transport=replaying(pieces))
    if protocol == "anthropic":
        return anthropic.AsyncAnthropic(base_url="http://replay", api_key=KEY, max_retries=0,
                                        http_client=http)
    return openai.AsyncOpenAI(base_url="http://replay/v1", api_key=KEY, max_retries=0,
                              http_client=http)


async def bare(protocol: str, pieces: list[bytes], chunks: int) -> float:
    """Seconds per chunk of the bare SDK loop over the replayed bytes."""
    client = sdk_client(protocol, pieces)
    messages: Any = [{"role": "user", "content": "Go."}]
    count = 0
    started = time.perf_counter()
    if protocol == "openai":
        stream = await client.chat.completions.create(
            model="m", messages=messages, max_tokens=chunks + 10, stream=True,
            stream_options={"include_usage": True})
        async for chunk in stream:
            if chunk.choices and chunk.choices[0].delta.content:
                count += 1
    elif protocol == "anthropic":
        stream = await client.messages.create(model="m", messages=messages,
                                              max_tokens=chunks + 10, stream=True)
        async for event in stream:
            if event.type == "content_block_delta" and event.delta.type == "text_delta":
                count += 1
    else:
        stream = await client.responses.create(model="m", input=messages,
                                               max_output_tokens=chunks + 10, stream=True)
        async for event in stream:
            if event.type == "response.output_text.delta":
                count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert count == chunks, count
    return elapsed / chunks


async def decoded(protocol: str, pieces: list[bytes], chunks: int) -> float:
    """Seconds per chunk of the floor under intermodel's path: the raw response through the
    same event reader and JSON decoding as the providers, each event tested as the bare loop
    tests it, and nothing more."""
    client = sdk_client(protocol, pieces)
    messages: Any = [{"role": "user", "content": "Go."}]
    count = 0
    started = time.perf_counter()
    if protocol == "openai":
        call = client.chat.completions.with_streaming_response.create(
            model="m", messages=messages, max_tokens=chunks + 10, stream=True,
            stream_options={"include_usage": True})
    elif protocol == "anthropic":
        call = client.messages.with_streaming_response.create(
            model="m", messages=messages, max_tokens=chunks + 10, stream=True)
    else:
        call = client.responses.with_streaming_response.create(
            model="m", input=messages, max_output_tokens=chunks + 10, stream=True)
    async with call as response:
        async for _, data in server_events(response.http_response.aiter_bytes()):
            if data.startswith("[DONE]"):
                break
            event = json_object(data)
            if protocol == "openai":
                choices = event.get("choices")
                if choices and member(member(choices[0], "delta"), "content"):
                    count += 1
            elif protocol == "anthropic":
                if event.get("type") == "content_block_delta" \
                        and member(event.get("delta"), "type") == "text_delta":
                    count += 1
            elif event.get("type") == "response.output_text.delta":
                count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert count == chunks, count
    return elapsed / chunks


async def through_intermodel(protocol: str, pieces: list[bytes], chunks: int,
                             folder: str) -> float:
    """Seconds per chunk of a whole turn over the replayed bytes (the turn's own latency)."""
    pairing = parse_pairing(pairing_text(protocol, "http://replay", chunks), source="relay.toml")

    def replayed(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        provider = make_provider(agent, partner, credentials)
        # The transport under the provider's own HTTP client, swapped for the replay (private
        # attributes: this is a benchmark's look inside, not an interface).
        provider._client._client._transport = replaying(pieces)  # type: ignore[attr-defined]
        return provider

    async with prepared_run(pairing, out_dir=folder, environ={"BENCH_KEY": KEY},
                            provider_factory=replayed) as run:
        console = run.session.subscribe()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_console(console, io.StringIO(), color=True, width=100,
                                              write=lambda text: None))
            await run.session.run()
    assert run.transcript is not None
    [turn] = read_transcript(run.transcript).turns
    assert turn.text
    return turn.latency / chunks


Row = tuple[str, list[float], list[float], list[float]]  # protocol; SDK, floor, intermodel


async def measure(protocols: list[str], base_url: str, chunks: int, runs: int) -> list[Row]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for protocol in protocols:
            pieces = capture(protocol, base_url, chunks)
            for _ in range(2):  # warm up every path
                await bare(protocol, pieces, chunks)
                await decoded(protocol, pieces, chunks)
                await through_intermodel(protocol, pieces, chunks, folder)
            sdk: list[float] = []
            floor: list[float] = []
            ours: list[float] = []
            for _ in range(runs):
                gc.collect()
                sdk.append(await bare(protocol, pieces, chunks))
                gc.collect()
                floor.append(await decoded(protocol, pieces, chunks))
                gc.collect()
                ours.append(await through_intermodel(protocol, pieces, chunks, folder))
            rows.append((protocol, sdk, floor, ours))
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)  # fits the fake server's context
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--protocol", nargs="+", default=["openai", "anthropic", "responses"],
                        choices=["openai", "anthropic", "responses"])
    args = parser.parse_args()
    proc, base_url = start_server(args.chunks)
    load_before = os.getloadavg()[0]
    try:
        rows = anyio.run(measure, args.protocol, base_url, args.chunks, args.runs)
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    print(f"relay replayed: {args.chunks} chunks per reply, {args.runs} runs, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after")
    print()
    print("| protocol | SDK loop µs/chunk | decoding alone µs/chunk | intermodel µs/chunk "
          "| intermodel over decoding, median / best | ratio to the SDK loop |")
    print("|---|---:|---:|---:|---:|---:|")
    for protocol, sdk, floor, ours in rows:
        b, f, o = (statistics.median(runs) * 1e6 for runs in (sdk, floor, ours))
        best = (min(ours) - min(floor)) * 1e6
        # The relay's speed against the SDK loop's, as bench/relay.py reports it.
        print(f"| {protocol} | {b:.2f} | {f:.2f} | {o:.2f} | {o - f:+.2f} / {best:+.2f} "
              f"| {b / o:.3f} |")

if __name__ == "__main__":
    main()
