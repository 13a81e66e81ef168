"""Orchestration cost per turn as the history grows: turn 10 against turns 1,000 and 5,000.

Two scripted agents (no delay, replies of about `--words` words in a few chunks) run `--turns`
turns headless: transcript written (fsync per record), a subscriber draining the event bus, no
console. Each turn's CPU time is the process time between two consecutive turn records. The
scripted provider's own CPU time is measured apart (each step of its stream is timed) and taken
out: what remains is what intermodel adds around a provider (the request, its hash, the context
estimate, the detectors, the events and the transcript). The scripted provider stands in for a
real SDK, and like one it reads the whole request it is given; that part has its own column.

Two figures for intermodel's own part at turn N:

- in the run: the median over the `--span` turns around turn N of the whole run. Turn 10 and turn
  5,000 are measured tens of seconds apart, so on a shared machine a change of load between them
  moves this ratio by ±30 %;
- alternated: runs continued from the history before turn N (as `resume` does) for `--burst`
  turns, the points taken in turn for `--rounds` rounds; the median over every burst's turns but
  its first two (each agent's view is built from the whole history once, as on a resume).

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
    from intermodel.engine.dialogue import Dialogue, DialogueState
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
    sent: dict[int, Request] = {}

    class Timed(ProviderWrapper):
        """The scripted provider, its own CPU time counted apart; the requests of the turns
        reported kept (when `recorder` is given, which counts the turns)."""

        def __init__(self, inner: ScriptedProvider, recorder: Clocked | None) -> None:
            super().__init__(inner)
            self.recorder = recorder

        async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
            if self.recorder is not None and len(self.recorder.cpu) + 1 in points:
                sent[len(self.recorder.cpu) + 1] = request
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
        """The transcript writer; at each turn record, the process time and the provider's."""

        def __init__(self, writer: TranscriptWriter) -> None:
            self.writer = writer
            self.cpu: list[float] = []
            self.provider: list[float] = []

        async def record(self, record: Header | Record) -> None:
            await self.writer.record(record)
            if isinstance(record, Turn):
                self.cpu.append(time.process_time())
                self.provider.append(clock.spent)

        def costs(self, first: int, last: int) -> tuple[list[float], list[float]]:
            """Per turn, from the `first`-th turn record to the `last`-th (from 1, both
            included, the first after another): CPU time, and the provider's part of it."""
            cpu, provider = self.cpu, self.provider
            return ([cpu[i - 1] - cpu[i - 2] for i in range(first, last + 1)],
                    [provider[i - 1] - provider[i - 2] for i in range(first, last + 1)])

    async def run(folder: str, run_id: str, state: DialogueState, capture: bool) -> Clocked:
        writer = TranscriptWriter.create(folder, pairing.name, run_id)
        recorder = Clocked(writer)
        providers = {a.name: Timed(ScriptedProvider(a, pairing.partner_of(a.name)),
                                   recorder if capture else None) for a in pairing.agents}
        dialogue = Dialogue(pairing, providers, recorder=recorder, state=state, run_id=run_id)
        subscription = dialogue.subscribe()

        async def drain() -> None:
            while await subscription.wait():
                subscription.drain()

        async with anyio.create_task_group() as tg:
            tg.start_soon(drain)
            await dialogue.run()
        writer.close()
        return recorder

    def own(totals: list[float], provider: list[float]) -> list[float]:
        return [t - p for t, p in zip(totals, provider, strict=True)]

    figures: dict[str, Any] = {"points": {str(n): {} for n in points}}
    with tempfile.TemporaryDirectory() as folder:
        # The whole run, as a headless run makes it.
        whole = DialogueState(max_turns=args.turns)
        before = rss_kib()
        recorder = anyio.run(run, folder, "000000history", whole, True)
        figures.update(rss_before=before, rss_after=rss_kib(), rss_peak=rss_kib("VmHWM"))
        if len(recorder.cpu) != args.turns:
            raise SystemExit(f"the run made {len(recorder.cpu)} turns of {args.turns}")
        for n in points:
            totals, provider = recorder.costs(max(2, n - args.span // 2),
                                              min(args.turns, n + args.span // 2))
            figures["points"][str(n)].update(
                in_run=statistics.median(own(totals, provider)),
                provider=statistics.median(provider), total=statistics.median(totals))
        # The same points again, alternated: a run continued from the history before turn n,
        # for a burst of turns; the first two turns (each agent's view built from the history)
        # are left out. Alternating makes the machine's changing load fall on every point.
        samples: dict[int, list[float]] = {n: [] for n in points}
        for round_ in range(args.rounds):
            for n in points if round_ % 2 == 0 else reversed(points):
                history = list(whole.history[:n - 1])
                state = DialogueState(history=history, max_turns=n - 1 + args.burst)
                burst = anyio.run(run, folder, f"{round_ + 1:02d}{n:04d}history", state, False)
                samples[n].extend(own(*burst.costs(3, args.burst)))
        for n in points:
            figures["points"][str(n)]["alternated"] = statistics.median(samples[n])

    client = openai.OpenAI(api_key="bench-not-a-key", base_url="http://127.0.0.1:9/v1")

    def sdk_body(request: Request) -> Any:
        return maybe_transform({"model": request.model, "messages": chat_messages(request),
                                "max_tokens": request.sampling.max_tokens, "stream": True},
                               completion_create_params.CompletionCreateParamsStreaming)

    def sdk_json(body: Any) -> int:
        options = FinalRequestOptions.construct(method="post", url="/chat/completions",
                                                json_data=body)
        return len(client._build_request(options).content)

    for n in points:
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
        figures["points"][str(n)].update(
            sdk=transform + encode, sdk_json=encode, bytes=size, messages=len(request.messages))
    return figures


def main(args: argparse.Namespace) -> None:
    command = [sys.executable, __file__, "--one", f"--turns={args.turns}",
               f"--at={','.join(map(str, args.at))}", f"--words={args.words}",
               f"--span={args.span}", f"--sdk-repeat={args.sdk_repeat}",
               f"--rounds={args.rounds}", f"--burst={args.burst}", f"--source={args.source}"]
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
    print("µs of CPU per turn: intermodel's own (alternated; in the whole run), the scripted "
          "provider's, the SDK's serialisation of the request (and its JSON body alone)")
    print(f"{'turn':>6} {'messages':>8} {'alternated':>10} {'in run':>8} {'provider':>9} "
          f"{'SDK':>10} {'(JSON)':>8} {'request KB':>10}")
    points = [str(n) for n in args.at if n <= args.turns]
    for n in points:
        print(f"{n:>6} {median('points', n, 'messages'):>8.0f} "
              f"{median('points', n, 'alternated') * 1e6:>10,.0f} "
              f"{median('points', n, 'in_run') * 1e6:>8,.0f} "
              f"{median('points', n, 'provider') * 1e6:>9,.0f} "
              f"{median('points', n, 'sdk') * 1e6:>10,.0f} "
              f"{median('points', n, 'sdk_json') * 1e6:>8,.0f} "
              f"{median('points', n, 'bytes') / 1024:>10,.1f}")
    for kind in ("alternated", "in_run"):
        first = median("points", points[0], kind)
        print(f"intermodel's own, {kind.replace('_', ' ')}: " + ", ".join(
            f"turn {n} / turn {points[0]} {median('points', n, kind) / first:.2f}"
            for n in points[1:]))
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
    parser.add_argument("--rounds", type=int, default=6,
                        help="alternated rounds of bursts, at each point")
    parser.add_argument("--burst", type=int, default=24, help="turns of each burst")
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
