"""Relay overhead without the network: what intermodel adds per chunk, SDK events replayed.

`bench/relay.py` times whole turns against a server in another process; on a shared machine the
load swings its figures by more than intermodel's own cost. Here each protocol's stream is taken
once from the loopback fake server (N chunks, parsed by the SDK as usual), then replayed from
memory, in alternation:

- bare: the bare SDK loop's own test of each event, over the replayed events;
- intermodel: a whole dialogue turn whose provider's SDK client hands back the replayed events —
  provider, orchestrator, key redaction (a key of a real key's length), event bus, transcript
  writer and the headless console into a null stream.

Neither side waits for a socket or parses bytes, so the difference is intermodel's own work per
chunk. Prints the median and the best of the runs, in microseconds per chunk.

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
from collections.abc import AsyncGenerator, AsyncIterator
from pathlib import Path
from types import TracebackType
from typing import Any

import anthropic
import anyio
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
from intermodel.security.secrets import Credentials  # noqa: E402
from intermodel.transcript.reader import read_transcript  # noqa: E402


class Replay:
    """A stream the SDK returned, replayed: `async with` and `async for`, as the providers use."""

    def __init__(self, events: list[Any]) -> None:
        self.events = events

    async def __aenter__(self) -> Replay:
        return self

    async def __aexit__(self, kind: type[BaseException] | None, error: BaseException | None,
                        traceback: TracebackType | None) -> None:
        return None

    def __aiter__(self) -> AsyncIterator[Any]:
        return self._events()

    async def _events(self) -> AsyncGenerator[Any, None]:
        for event in self.events:
            yield event


class ReplayClient:
    """Stands in for a provider's SDK client: every `create` returns the replayed stream."""

    def __init__(self, events: list[Any], real: Any) -> None:
        self.events = events
        self.real = real
        self.api_key = real.api_key
        self.chat = self.completions = self.messages = self.responses = self

    async def create(self, **params: Any) -> Replay:
        return Replay(self.events)

    async def close(self) -> None:
        await self.real.close()


async def capture(protocol: str, base_url: str, chunks: int) -> list[Any]:
    """The SDK's events for one reply of the fake server."""
    messages = [{"role": "user", "content": "Go."}]
    stream: Any
    if protocol == "anthropic":
        claude = anthropic.AsyncAnthropic(base_url=base_url, api_key=KEY, max_retries=0)
        stream = await claude.messages.create(model="m", messages=messages,  # type: ignore[arg-type]
                                              max_tokens=chunks + 10, stream=True)
        events = [event async for event in stream]
        await claude.close()
        return events
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0)
    if protocol == "openai":
        stream = await client.chat.completions.create(
            model="m", messages=messages, max_tokens=chunks + 10,  # type: ignore[arg-type]
            stream=True, stream_options={"include_usage": True})
    else:
        stream = await client.responses.create(model="m", input=messages,  # type: ignore[arg-type]
                                               max_output_tokens=chunks + 10, stream=True)
    events = [event async for event in stream]
    await client.close()
    return events


async def bare(protocol: str, events: list[Any], chunks: int) -> float:
    """Seconds per chunk of the bare loop's work over the replayed events."""
    count = 0
    started = time.perf_counter()
    async with Replay(events) as stream:
        if protocol == "openai":
            async for chunk in stream:
                if chunk.choices and chunk.choices[0].delta.content:
                    count += 1
        elif protocol == "anthropic":
            async for event in stream:
                if event.type == "content_block_delta" and event.delta.type == "text_delta":
                    count += 1
        else:
            async for event in stream:
                if event.type == "response.output_text.delta":
                    count += 1
    elapsed = time.perf_counter() - started
    assert count == chunks, count
    return elapsed / chunks


async def through_intermodel(protocol: str, base_url: str, events: list[Any], chunks: int,
                             folder: str) -> float:
    """Seconds per chunk of a whole turn over the replayed events (the turn's own latency)."""
    pairing = parse_pairing(pairing_text(protocol, base_url, chunks), source="relay.toml")

    def replaying(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        provider = make_provider(agent, partner, credentials)
        # The provider's own SDK client, swapped for one that replays (a private attribute: this
        # is a benchmark's look inside, not an interface).
        provider._client = ReplayClient(events, provider._client)  # type: ignore[attr-defined]
        return provider

    async with prepared_run(pairing, out_dir=folder, environ={"BENCH_KEY": KEY},
                            provider_factory=replaying) as run:
        console = run.session.subscribe()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_console(console, io.StringIO(), color=True, width=100,
                                              write=lambda text: None))
            await run.session.run()
    assert run.transcript is not None
    [turn] = read_transcript(run.transcript).turns
    assert turn.text
    return turn.latency / chunks


async def measure(protocols: list[str], base_url: str, chunks: int,
                  runs: int) -> list[tuple[str, list[float], list[float]]]:
    rows = []
    with tempfile.TemporaryDirectory() as folder:
        for protocol in protocols:
            events = await capture(protocol, base_url, chunks)
            for _ in range(2):  # warm up both paths
                await bare(protocol, events, chunks)
                await through_intermodel(protocol, base_url, events, chunks, folder)
            ours: list[float] = []
            theirs: list[float] = []
            for _ in range(runs):
                gc.collect()
                theirs.append(await bare(protocol, events, chunks))
                gc.collect()
                ours.append(await through_intermodel(protocol, base_url, events, chunks, folder))
            rows.append((protocol, theirs, ours))
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
    print("| protocol | bare µs/chunk | intermodel µs/chunk | added µs/chunk (median) "
          "| added µs/chunk (best) |")
    print("|---|---:|---:|---:|---:|")
    for protocol, theirs, ours in rows:
        b, o = statistics.median(theirs) * 1e6, statistics.median(ours) * 1e6
        best = (min(ours) - min(theirs)) * 1e6
        print(f"| {protocol} | {b:.2f} | {o:.2f} | {o - b:+.2f} | {best:+.2f} |")


if __name__ == "__main__":
    main()
