"""Relay overhead: a bare SDK streaming loop against a full intermodel run, same server, same reply.

The loopback fake server (a separate process, so it does not share our GIL) streams replies of
exactly N chunks as fast as it can. For each protocol we time, in alternation:

- bare: the SDK's own `create(stream=True)` loop, counting content chunks;
- intermodel: a whole dialogue turn — provider, orchestrator, key redaction, event bus,
  transcript writer (fsync per record) and the headless console rendering into a null stream.

Both sides use the same API key, one as long as a real one, so the redactor does the work it does
in a real run. Throughput is chunks per second of the turn (request start to last chunk). Time to
first token runs from just before the request (bare: before `create`; intermodel: when the turn
producer asks its provider for the stream) to the first chunk in the loop (bare) or the first text
chunk reaching a subscriber of the run's events (intermodel). The ratio and the added time are
medians over pairs: each intermodel run against the bare run beside it (ABBA order), which ran
under the same load. Prints a table, and the load average the figures were measured under.

`responses` is OpenAI's Responses API: bare, `client.responses.create(stream=True)`; through
intermodel, an `openai` agent with `api = "responses"`.

    python bench/relay.py [--chunks 2000] [--runs 15] [--protocol openai anthropic responses]
"""

from __future__ import annotations

import argparse
import gc
import io
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Awaitable, Callable
from pathlib import Path

import anthropic
import anyio
import openai

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from intermodel.config import parse_pairing  # noqa: E402
from intermodel.config.model import AgentConfig  # noqa: E402
from intermodel.config.request import Request  # noqa: E402
from intermodel.console.render import run_console  # noqa: E402
from intermodel.engine.events import TextChunk  # noqa: E402
from intermodel.engine.prepare import prepared_run  # noqa: E402
from intermodel.providers.base import Provider, ProviderWrapper, StreamEvent  # noqa: E402
from intermodel.providers.registry import make_provider  # noqa: E402
from intermodel.security.secrets import Credentials  # noqa: E402
from intermodel.transcript.reader import read_transcript  # noqa: E402

Sample = tuple[float, float]  # (chunks per second, seconds to first chunk)
# Seconds between making the clients and the timed request, on both sides: the server is still
# closing the previous stream, and a client's making (it loads the CA certificates, tens of
# milliseconds of CPU) must not count against the request that follows it.
SETTLE = 0.2
# A key of a real key's length on both sides: a run redacts every known key from the reply as it
# streams, and a key too short to count as a secret would leave that work out.
KEY = "sk-bench-" + "0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMN"


def start_server(chunks: int) -> tuple[subprocess.Popen[str], str]:
    proc = subprocess.Popen(
        [sys.executable, "-m", "tests.fakeserver", "--port", "0", "--chunks", str(chunks)],
        cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    line = proc.stdout.readline().strip()
    if not line.startswith("READY "):
        proc.kill()
        raise SystemExit(f"fake server did not start: {line!r}")
    return proc, line.split()[1]


async def bare_openai(base_url: str, chunks: int) -> Sample:
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0)
    await anyio.sleep(SETTLE)
    started = time.perf_counter()
    first = None
    count = 0
    stream = await client.chat.completions.create(
        model="m", messages=[{"role": "user", "content": "Go."}], max_tokens=chunks + 10,
        stream=True, stream_options={"include_usage": True})
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            if first is None:
                first = time.perf_counter() - started
            count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert count == chunks, count
    return count / elapsed, first or 0.0


async def bare_anthropic(base_url: str, chunks: int) -> Sample:
    client = anthropic.AsyncAnthropic(base_url=base_url, api_key=KEY, max_retries=0)
    await anyio.sleep(SETTLE)
    started = time.perf_counter()
    first = None
    count = 0
    stream = await client.messages.create(
        model="m", messages=[{"role": "user", "content": "Go."}], max_tokens=chunks + 10,
        stream=True)
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            if first is None:
                first = time.perf_counter() - started
            count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert count == chunks, count
    return count / elapsed, first or 0.0


async def bare_responses(base_url: str, chunks: int) -> Sample:
    client = openai.AsyncOpenAI(base_url=base_url + "/v1", api_key=KEY, max_retries=0)
    await anyio.sleep(SETTLE)
    started = time.perf_counter()
    first = None
    count = 0
    stream = await client.responses.create(
        model="m", input=[{"role": "user", "content": "Go."}], max_output_tokens=chunks + 10,
        stream=True)
    async for event in stream:
        if event.type == "response.output_text.delta":
            if first is None:
                first = time.perf_counter() - started
            count += 1
    elapsed = time.perf_counter() - started
    await client.close()
    assert count == chunks, count
    return count / elapsed, first or 0.0


BARE: dict[str, Callable[[str, int], Awaitable[Sample]]] = {
    "openai": bare_openai, "anthropic": bare_anthropic, "responses": bare_responses,
}
RELAYED = ("openai", "anthropic", "responses")  # the protocols an intermodel run relays


def pairing_text(protocol: str, base_url: str, chunks: int) -> str:
    url = base_url if protocol == "anthropic" else base_url + "/v1"
    provider = 'provider = "openai"\napi = "responses"' if protocol == "responses" \
        else f'provider = "{protocol}"'
    agents = "".join(f"""
[agents.{name}]
{provider}
model = "m"
base_url = "{url}"
api_key_env = "BENCH_KEY"
max_tokens = {chunks + 10}
""" for name in ("ada", "bo"))
    return f'name = "relay"\n[dialogue]\nopener = "Go."\nmax_turns = 1\n{agents}'


class Timed(ProviderWrapper):
    """An agent's provider, noting when each request begins: the bare loop's `started`. It hands
    back the provider's own stream, so it adds nothing per chunk."""

    def __init__(self, inner: Provider, starts: list[float]) -> None:
        super().__init__(inner)
        self.starts = starts

    def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        self.starts.append(time.perf_counter())
        return self.inner.stream(request)


async def through_intermodel(protocol: str, base_url: str, chunks: int, folder: str) -> Sample:
    pairing = parse_pairing(pairing_text(protocol, base_url, chunks), source="relay.toml")
    starts: list[float] = []
    first: list[float] = []

    def timed(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        return Timed(make_provider(agent, partner, credentials), starts)

    async with prepared_run(pairing, out_dir=folder, environ={"BENCH_KEY": KEY},
                            provider_factory=timed) as run:
        await anyio.sleep(SETTLE)
        console = run.session.subscribe()
        probe = run.session.subscribe()  # a subscriber that keeps up, until the first chunk

        async def first_chunk() -> None:
            async for event in probe:
                if type(event) is TextChunk:
                    first.append(time.perf_counter())
                    break
            run.session.bus.unsubscribe(probe)

        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_console(console, io.StringIO(), color=True, width=100,
                                              write=lambda text: None))
            tg.start_soon(first_chunk)
            await run.session.run()
    assert run.transcript is not None
    [turn] = read_transcript(run.transcript).turns
    assert turn.text and len(starts) == 1 and first
    return chunks / turn.latency, first[0] - starts[0]


def median(samples: list[Sample], index: int) -> float:
    return statistics.median(s[index] for s in samples)


async def measure(protocol: str, base_url: str, chunks: int, runs: int) -> dict[str, list[Sample]]:
    bare = BARE[protocol]
    relayed = protocol in RELAYED
    results: dict[str, list[Sample]] = {"bare": [], "intermodel": []}
    with tempfile.TemporaryDirectory() as folder:
        for _ in range(2):  # warm up both paths (imports, connection setup, caches)
            await bare(base_url, chunks)
            if relayed:
                await through_intermodel(protocol, base_url, chunks, folder)
        for n in range(runs):
            # Alternate the order (ABBA), so drift in machine load hits both alike.
            for path in (("bare", "intermodel") if n % 2 == 0 else ("intermodel", "bare")):
                gc.collect()  # the previous run's garbage is collected in neither
                if path == "bare":
                    results[path].append(await bare(base_url, chunks))
                elif relayed:
                    results[path].append(await through_intermodel(protocol, base_url, chunks,
                                                                  folder))
    return results


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--chunks", type=int, default=2000)
    parser.add_argument("--runs", type=int, default=15)
    parser.add_argument("--protocol", nargs="+", default=list(BARE),
                        choices=list(BARE))
    parser.add_argument("--samples", action="store_true", help="print every run's figures too")
    args = parser.parse_args()
    proc, base_url = start_server(args.chunks)
    load_before = os.getloadavg()[0]
    try:
        # (protocol, bare rate, our rate, ratio, bare TTFT, added TTFT); None: not relayed yet
        rows: list[tuple[str, float, float | None, float | None, float, float | None]] = []
        for protocol in args.protocol:
            results = anyio.run(measure, protocol, base_url, args.chunks, args.runs)
            bare, ours = results["bare"], results["intermodel"]
            if args.samples:
                for name, samples in results.items():
                    print(f"{protocol} {name}: " + ", ".join(
                        f"{rate:,.0f}/s {ttft * 1000:.1f} ms" for rate, ttft in samples))
            if not ours:  # measured on the bare side only
                rows.append((protocol, median(bare, 0), None, None, median(bare, 1) * 1000,
                             None))
                continue
            # Each intermodel run against the bare run beside it, which ran under the same load:
            # on a shared machine the load swings more between runs than the two paths differ.
            ratios = [o[0] / b[0] for b, o in zip(bare, ours, strict=True)]
            added = [o[1] - b[1] for b, o in zip(bare, ours, strict=True)]
            rows.append((protocol, median(bare, 0), median(ours, 0), statistics.median(ratios),
                         median(bare, 1) * 1000, statistics.median(added) * 1000))
    finally:
        proc.terminate()
        proc.wait(timeout=10)
    load_after = os.getloadavg()[0]
    print(f"relay: {args.chunks} chunks per reply, median of {args.runs} runs, "
          f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
          f"load average {load_before:.1f} before, {load_after:.1f} after")
    print()
    print("| protocol | bare SDK chunks/s | intermodel chunks/s | ratio | bare TTFT ms "
          "| added TTFT ms |")
    print("|---|---:|---:|---:|---:|---:|")
    for protocol, bare_rate, our_rate, ratio, ttft, added_ttft in rows:
        if our_rate is None or ratio is None or added_ttft is None:
            print(f"| {protocol} | {bare_rate:,.0f} | — | — | {ttft:.2f} | — |")
            continue
        print(f"| {protocol} | {bare_rate:,.0f} | {our_rate:,.0f} | {ratio:.3f} | {ttft:.2f} "
              f"| {added_ttft:+.3f} |")


if __name__ == "__main__":
    main()
