"""Orchestration cost per turn as the history grows: turn 10 against turns 1,000 and 5,000.

Two scripted agents (no delay, replies of about `--words` words in a few chunks) run `--turns`
turns headless: transcript written (fsync per record), a subscriber draining the event bus, no
console. Each turn's CPU time is the process time between two consecutive turn records; the
figure at turn N is the median over the `--span` turns around it. The scripted provider's own CPU
time is measured apart (each step of its stream is timed) and taken out: what remains is what
intermodel adds around a provider (the request, its hash, the context estimate, the detectors,
the events and the transcript). The scripted provider stands in for a real SDK, and like one it
reads the whole request it is given; that part is shown in its own column.

For reference beside it, the openai SDK's own serialisation of the same request, no network: the
provider's messages through the SDK's parameter transform, then the HTTP request with its JSON
body (shown apart). Every request must be serialised whole to be sent, so this part grows with the
history whatever intermodel does.

Memory: the resident set size before the first turn, against after the last one (and the peak).

Each run is a fresh process; the figures are the medians of `--repeat` runs. `--source DIR`
imports intermodel from another checkout (to measure an earlier commit with this same script).

    python bench/history.py [--turns 5000] [--at 10,1000,5000] [--words 60] [--repeat 3]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import AsyncGenerator, Generator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent


class CpuClock:
    """Process time spent inside one provider's code, summed."""

    def __init__(self) -> None:
        self.spent = 0.0


class _TimedStep:
    """Awaits `coroutine`, adding the process time of each of its steps (never the time the event
    loop spends on other tasks while it waits) to `clock`."""

    def __init__(self, coroutine: Any, clock: CpuClock) -> None:
        self.coroutine = coroutine
        self.clock = clock

    def __await__(self) -> Generator[Any, Any, Any]:
        sent: Any = None
        thrown: BaseException | None = None
        while True:
            began = time.process_time()
            try:
                if thrown is None:
                    waiting = self.coroutine.send(sent)
                else:
                    waiting = self.coroutine.throw(thrown)
            except StopIteration as done:
                return done.value
            finally:
                self.clock.spent += time.process_time() - began
            try:
                sent, thrown = (yield waiting), None
            except BaseException as error:  # delivered to the coroutine, as a plain await would
                sent, thrown = None, error


def rss_kib(field: str = "VmRSS") -> int:
    with open("/proc/self/status") as status:
        for line in status:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def reply(words: int, seed: int) -> str:
    return " ".join(f"w{(i * 7 + seed) % 997}" for i in range(words)) + "."


def one(args: argparse.Namespace) -> dict[str, Any]:
    """One run in this process: the figures as JSON-ready values."""
    import anyio
    import openai
    from openai._models import FinalRequestOptions
    from openai._utils import maybe_transform
    from openai.types.chat import completion_create_params

    from intermodel.config import parse_pairing
    from intermodel.config.request import Request
    from intermodel.engine.dialogue import Dialogue
    from intermodel.providers.base import ProviderWrapper, StreamEvent
    from intermodel.providers.openai import chat_messages
    from intermodel.providers.scripted import ScriptedProvider
    from intermodel.records import Header, Record, Turn
    from intermodel.transcript.writer import TranscriptWriter

    replies = [json.dumps(reply(args.words, seed)) for seed in range(1, 5)]
    pairing = parse_pairing(f"""
name = "history"
[dialogue]
opener = "Begin."
max_turns = {args.turns}
[agents.ada]
provider = "scripted"
prompt = "You are {{name}}, talking with {{partner}}."
[agents.ada.script]
replies = [{replies[0]}, {replies[1]}]
chunk_words = 20
[agents.bo]
provider = "scripted"
prompt = "You are {{name}}, talking with {{partner}}."
[agents.bo.script]
replies = [{replies[2]}, {replies[3]}]
chunk_words = 20
""", source="history.toml")
    points = [n for n in args.at if n <= args.turns]
    clock = CpuClock()
    cpu: list[float] = []
    in_provider: list[float] = []
    sent: dict[int, Request] = {}

    class Timed(ProviderWrapper):
        """The scripted provider, its own CPU time counted apart."""

        async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
            if len(cpu) + 1 in points:
                sent[len(cpu) + 1] = request
            events = self.inner.stream(request)
            try:
                while True:
                    try:
                        event = await _TimedStep(events.__anext__(), clock)
                    except StopAsyncIteration:
                        return
                    yield event
            finally:
                await _TimedStep(events.aclose(), clock)

    class Clocked:
        """The transcript writer, with the process time read at each turn record."""

        def __init__(self, writer: TranscriptWriter) -> None:
            self.writer = writer

        async def record(self, record: Header | Record) -> None:
            await self.writer.record(record)
            if isinstance(record, Turn):
                cpu.append(time.process_time())
                in_provider.append(clock.spent)

    async def run(folder: str) -> tuple[int, int, int]:
        writer = TranscriptWriter.create(folder, pairing.name, "bench0history")
        providers = {a.name: Timed(ScriptedProvider(a, pairing.partner_of(a.name)))
                     for a in pairing.agents}
        dialogue = Dialogue(pairing, providers, recorder=Clocked(writer))
        subscription = dialogue.subscribe()

        async def drain() -> None:
            while await subscription.wait():
                subscription.drain()

        before = rss_kib()
        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            await dialogue.run()
        writer.close()
        return before, rss_kib(), rss_kib("VmHWM")

    with tempfile.TemporaryDirectory() as folder:
        before, after, peak = anyio.run(run, folder)
    if len(cpu) != args.turns:
        raise SystemExit(f"the run made {len(cpu)} turns of {args.turns}")

    client = openai.OpenAI(api_key="bench-not-a-key", base_url="http://127.0.0.1:9/v1")

    def sdk_body(request: Request) -> Any:
        return maybe_transform({"model": request.model, "messages": chat_messages(request),
                                "max_tokens": request.sampling.max_tokens, "stream": True},
                               completion_create_params.CompletionCreateParamsStreaming)

    def sdk_json(body: Any) -> int:
        options = FinalRequestOptions.construct(method="post", url="/chat/completions",
                                                json_data=body)
        return len(client._build_request(options).content)

    figures: dict[str, Any] = {"points": {}, "rss_before": before, "rss_after": after,
                               "rss_peak": peak}
    for n in points:
        lo, hi = max(2, n - args.span // 2), min(args.turns, n + args.span // 2)
        totals = [cpu[i - 1] - cpu[i - 2] for i in range(lo, hi + 1)]
        provider = [in_provider[i - 1] - in_provider[i - 2] for i in range(lo, hi + 1)]
        own = [t - p for t, p in zip(totals, provider, strict=True)]
        request = sent[n]
        body = sdk_body(request)
        size = sdk_json(body)
        began = time.process_time()
        for _ in range(args.sdk_repeat):
            sdk_body(request)
        transform = (time.process_time() - began) / args.sdk_repeat
        began = time.process_time()
        for _ in range(args.sdk_repeat):
            sdk_json(body)
        encode = (time.process_time() - began) / args.sdk_repeat
        figures["points"][str(n)] = {
            "orchestration": statistics.median(own), "orchestration_mean": statistics.fmean(own),
            "provider": statistics.median(provider), "total": statistics.median(totals),
            "sdk": transform + encode, "sdk_json": encode, "bytes": size,
            "messages": len(request.messages)}
    return figures


def main(args: argparse.Namespace) -> None:
    command = [sys.executable, __file__, "--one", f"--turns={args.turns}",
               f"--at={','.join(map(str, args.at))}", f"--words={args.words}",
               f"--span={args.span}", f"--sdk-repeat={args.sdk_repeat}",
               f"--source={args.source}"]
    runs = []
    for _ in range(args.repeat):
        done = subprocess.run(command, capture_output=True, text=True)
        if done.returncode:
            sys.exit(f"a run failed:\n{done.stderr[-3000:]}")
        runs.append(json.loads(done.stdout.strip().splitlines()[-1]))

    def median(*path: str) -> float:
        values = []
        for run in runs:
            value: Any = run
            for key in path:
                value = value[key]
            values.append(value)
        return float(statistics.median(values))

    print(f"{args.turns} turns of about {args.words} words, median of {args.repeat} runs "
          f"(load average {os.getloadavg()[0]:.1f} at the end)")
    print(f"{'turn':>6} {'messages':>8} {'orchestration µs':>17} {'(mean)':>8} "
          f"{'scripted provider µs':>21} {'SDK serialisation µs':>21} {'(JSON body)':>11} "
          f"{'request KB':>10}")
    points = [str(n) for n in args.at if n <= args.turns]
    for n in points:
        print(f"{n:>6} {median('points', n, 'messages'):>8.0f} "
              f"{median('points', n, 'orchestration') * 1e6:>17,.0f} "
              f"{median('points', n, 'orchestration_mean') * 1e6:>8,.0f} "
              f"{median('points', n, 'provider') * 1e6:>21,.0f} "
              f"{median('points', n, 'sdk') * 1e6:>21,.0f} "
              f"{median('points', n, 'sdk_json') * 1e6:>11,.0f} "
              f"{median('points', n, 'bytes') / 1024:>10,.1f}")
    first = median("points", points[0], "orchestration")
    for n in points[1:]:
        print(f"orchestration, turn {n} / turn {points[0]}: "
              f"{median('points', n, 'orchestration') / first:.2f}")
    print(f"RSS growth over the run: {(median('rss_after') - median('rss_before')) / 1024:.1f} MB "
          f"(peak {(median('rss_peak') - median('rss_before')) / 1024:.1f} MB above the start)")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=5000)
    parser.add_argument("--at", type=lambda s: [int(n) for n in s.split(",")],
                        default=[10, 1000, 5000], help="turns to report (comma-separated)")
    parser.add_argument("--words", type=int, default=60, help="words per reply")
    parser.add_argument("--span", type=int, default=20, help="turns around each point")
    parser.add_argument("--repeat", type=int, default=3, help="runs (fresh processes)")
    parser.add_argument("--sdk-repeat", type=int, default=5,
                        help="times each request is serialised by the SDK")
    parser.add_argument("--source", default=str(REPO),
                        help="the checkout to import intermodel from")
    parser.add_argument("--one", action="store_true", help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        sys.path.insert(0, arguments.source)
        print(json.dumps(one(arguments)))
    else:
        main(arguments)
