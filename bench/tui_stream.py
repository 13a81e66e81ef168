"""The terminal UI under a live token stream: fresh, and again after 500 turns of history.

Two scripted agents alternate turns (so the two panes take turns receiving a stream) inside the
real app under `App.run_test`, headless. Each scenario is measured from turn 10 and from turn 501
of one run: the agents first stream 9 (or 500) turns flat out, so the panes hold, have pruned
and have cached exactly what such a run leaves, and the core holds what it holds at that turn;
then, once the bench says go, the same run goes on with the scenario's pacing. (Resuming the
history instead would put the resumption's one-time work, rebuilding each agent's view of 500
turns, inside the measured turns.)

(a) flat out: no delay between one-word chunks; figure: tokens rendered per second (from the
    first request to the last batch on screen).
(b) paced: each agent streams about 100 tokens per second (a 10 ms delay per one-word chunk);
    figures: wall time against the ideal (tokens x 10 ms), CPU seconds, event-loop lag p95/max.

Each is also run without the UI (a consumer that only drains the bus), which shows what the
scripted provider and the core deliver on their own (the degeneration detectors included, as in
any run); the paced UI run is compared with it (× core).

Measured apart from those, in the runs of (b):
- start-up: from making the app to its first screen (`run_test` ready), so it is not folded
  into the streaming figures (which start once the history is on screen);
- idle: the process's CPU time over `--idle` seconds of a screen with nothing to do, once the
  run has finished, and once a further paced run (resumed) has been paused between two turns
  (`space`, then nothing under way).

Each figure is the median of `--repeat` runs, each in a fresh process; the runs go in rounds
(every measurement once per round), and turn 501 against turn 10 is the median of the rounds'
ratios.

    python bench/tui_stream.py [--turns 64] [--words 1000] [--paced-turns 4] [--paced-words 300]
"""

from __future__ import annotations

import argparse
import asyncio
import dataclasses
import gc
import json
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import anyio

from intermodel.config import Pairing, parse_pairing
from intermodel.config.request import Request
from intermodel.engine.dialogue import Dialogue, DialogueState
from intermodel.engine.prepare import Run
from intermodel.providers.base import StreamEvent
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Resumption, Turn, Usage, now_iso
from intermodel.tui.app import IntermodelApp
from intermodel.tui.sources import LiveSource, Pump

RUN_ID = "bench0000000"
SIZE = (160, 48)
LAG_TICK = 0.005
WAIT_LIMIT = 120.0  # seconds the bench waits for a state of the screen before giving up
SETTLE = 0.5  # seconds after the last event before an idle screen is watched


def reply(words: int, seed: int) -> str:
    """Prose-like text: paragraphs of 60 words, a blank line between them (as models write;
    a screen line is about 12 of these words, so a paragraph wraps to five lines)."""
    out: list[str] = []
    for i in range(words):
        out.append(f"w{(i * 7 + seed) % 997}")
        out.append("\n\n" if i % 60 == 59 else " ")
    return "".join(out).strip() + "."


def pairing(words: int, delay: float) -> Pairing:
    return parse_pairing(f"""
name = "bench"
[dialogue]
opener = "Go."
max_turns = 100000
[agents.ada]
provider = "scripted"
[agents.ada.script]
replies = [{json.dumps(reply(words, 1))}]
chunk_words = 1
delay = {delay}
[agents.bo]
provider = "scripted"
[agents.bo.script]
replies = [{json.dumps(reply(words, 2))}]
chunk_words = 1
delay = {delay}
""", source="bench.toml")  # a JSON string is a valid TOML basic string


class Gate:
    """Where the history ends: the turn after it waits until the bench says go."""

    def __init__(self, history_turns: int) -> None:
        self.left = history_turns
        self.history_done = anyio.Event()
        self.go = anyio.Event()

    async def measured(self) -> bool:
        """Called as each turn starts; whether it is one of the measured turns."""
        if self.left:
            self.left -= 1
            return False
        self.history_done.set()
        await self.go.wait()
        return True


class Continuing(ScriptedProvider):
    """One agent of the whole run: its history script flat out, then the measured script. Like a
    real provider it keeps no requests (a scripted one keeps its latest, for tests)."""

    def __init__(self, history: Pairing, measured: Pairing, name: str, gate: Gate) -> None:
        super().__init__(history.agent(name), history.partner_of(name))
        self.measured_script = measured.agent(name).script
        self.gate = gate

    async def stream(self, request: Request) -> AsyncIterator[StreamEvent]:
        if await self.gate.measured():
            self.script = self.measured_script or self.script
        self.requests.clear()
        async for event in super().stream(request):
            yield event


def continuing(history: Pairing, measured: Pairing, new_turns: int, gate: Gate) -> Dialogue:
    """One run: `gate.left` turns of `history`, then `new_turns` of `measured`."""
    providers = {name: Continuing(history, measured, name, gate) for name in history.agent_names}
    usage = {name: Usage() for name in history.agent_names}
    state = DialogueState(history=[], max_turns=gate.left + new_turns, usage=usage)
    return Dialogue(history, providers, state=state, run_id=RUN_ID)


def resumed(p: Pairing, turns: list[Turn], new_turns: int) -> Dialogue:
    """A dialogue that continues `turns` (a resumed run, so a screen keeps the history)."""
    providers = {a.name: ScriptedProvider(a, p.partner_of(a.name)) for a in p.agents}
    usage = {name: Usage() for name in p.agent_names}
    budget = len(turns) + new_turns
    state = DialogueState(history=list(turns), max_turns=budget, usage=usage)
    return Dialogue(p, providers, state=state, run_id=RUN_ID,
                    resume=Resumption(RUN_ID, len(turns), budget, at=now_iso()))


class BenchSource(LiveSource):
    """Runs the history and then the measured turns, one run made once the app is up (as the
    app's own sources do: nothing of it is frozen with the app's start-up objects); then, when
    told to, the turns of `paused` (if given), which the bench pauses."""

    def __init__(self, whole: Callable[[Gate], Dialogue], gate: Gate,
                 paused: Callable[[list[Turn]], Dialogue] | None = None) -> None:
        super().__init__(self._open)
        self.make: Callable[[], Dialogue] = lambda: whole(gate)
        self.gate = gate
        self.paused = paused
        self.measured_done = anyio.Event()
        self.go_on = anyio.Event()

    @asynccontextmanager
    async def _open(self) -> AsyncIterator[Run]:
        self.dialogue = self.make()
        yield Run(self.dialogue, {}, None)

    async def serve(self, pump: Pump) -> None:
        await super().serve(pump)
        self.measured_done.set()
        if self.paused is not None:
            paused, turns = self.paused, self.dialogue.state.turns
            self.make = lambda: paused(turns)
            await self.go_on.wait()
            await super().serve(pump)


@dataclasses.dataclass
class Figures:
    tokens: int
    wall: float
    cpu: float
    lag_p95: float  # seconds the event loop was late, over the measured turns
    lag_max: float
    startup: float | None = None  # seconds from making the app to its first screen
    idle_finished: float | None = None  # CPU seconds of a finished screen over `--idle` s
    idle_paused: float | None = None  # CPU seconds of a paused screen over `--idle` s

    @property
    def rate(self) -> float:
        return self.tokens / self.wall


def quantile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))] if ordered else 0.0


async def _measure(run: Callable[[], Awaitable[None]], tokens: int) -> Figures:
    lags: list[float] = []
    done = asyncio.Event()

    async def monitor() -> None:
        loop = asyncio.get_running_loop()
        while not done.is_set():
            before = loop.time()
            await asyncio.sleep(LAG_TICK)
            lags.append(max(0.0, loop.time() - before - LAG_TICK))

    gc.collect()
    task = asyncio.create_task(monitor())
    wall, cpu = time.perf_counter(), time.process_time()
    await run()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    done.set()
    await task
    return Figures(tokens, wall, cpu, quantile(lags, 0.95), quantile(lags, 1.0))


async def until(condition: Callable[[], bool]) -> None:
    async with asyncio.timeout(WAIT_LIMIT):
        while not condition():  # noqa: ASYNC110 - screen state has no event to wait on
            await asyncio.sleep(0.005)


async def idle_cpu(seconds: float) -> float:
    """CPU seconds the process spends over `seconds` of doing nothing itself, once what the
    last turn's end set off (its last frame, the app's garbage collection) is over."""
    await asyncio.sleep(SETTLE)
    gc.collect()
    cpu = time.process_time()
    await asyncio.sleep(seconds)
    return time.process_time() - cpu


async def with_ui(fast: Pairing, paced: Pairing, history_turns: int, new_turns: int,
                  words: int, idle: float = 0.0) -> Figures:
    """The measured turns on screen; with `idle`, also the start-up and the idle screens."""
    pause_after = pairing(30, 0.01)  # short turns, so the pause is reached soon
    gate = Gate(history_turns)
    source = BenchSource(lambda gate: continuing(fast, paced, new_turns, gate), gate,
                         (lambda turns: resumed(pause_after, turns, 4)) if idle else None)
    started = time.perf_counter()
    app = IntermodelApp(source)
    async with app.run_test(size=SIZE) as pilot:
        startup = time.perf_counter() - started
        await gate.history_done.wait()
        await pilot.pause()

        async def run() -> None:
            gate.go.set()
            await source.measured_done.wait()  # (its pump has shown the last batch)
            await pilot.pause()  # the last batch on screen

        figures = await _measure(run, new_turns * words)
        kept = sum(pane.kept for pane in app.panes)
        assert kept < 60, f"{kept} entries kept: the panes did not prune"
        assert app.model.last_turn == history_turns + new_turns
        if idle:
            figures.idle_finished = await idle_cpu(idle)
            source.go_on.set()
            await until(lambda: app.model.in_flight is not None)
            await pilot.press("space")  # pause after the turn under way
            await until(lambda: app.model.paused and app.model.in_flight is None)
            await pilot.pause()
            figures.idle_paused = await idle_cpu(idle)
            figures.startup = startup
            app.exit(0)
        else:
            await pilot.press("q")
    return figures


async def without_ui(fast: Pairing, paced: Pairing, history_turns: int, new_turns: int,
                     words: int) -> Figures:
    gate = Gate(history_turns)
    d = continuing(fast, paced, new_turns, gate)
    subscription = d.subscribe()
    finished = anyio.Event()

    async def drain() -> None:
        while await subscription.wait():
            subscription.drain()
            await anyio.sleep(0.04)

    async def whole() -> None:
        await d.run()
        finished.set()

    async def run() -> None:
        gate.go.set()
        await finished.wait()

    async with anyio.create_task_group() as tg:
        tg.start_soon(drain)
        tg.start_soon(whole)
        await gate.history_done.wait()
        figures = await _measure(run, new_turns * words)
    return figures  # noqa: RET504 - once the run's tasks have ended


async def one(args: argparse.Namespace) -> Figures:
    """One measurement: `args.one` is (scenario, history turns, "ui" or "core")."""
    scenario, history_turns, where = args.one
    paced = scenario == "b"
    words = args.paced_words if paced else args.words
    turns = args.paced_turns if paced else args.turns
    fast = pairing(args.history_words, 0.0)
    measured = pairing(words, 0.01 if paced else 0.0)
    if where == "ui":
        return await with_ui(fast, measured, int(history_turns), turns, words,
                             args.idle if paced else 0.0)
    return await without_ui(fast, measured, int(history_turns), turns, words)


def measure_once(args: argparse.Namespace, scenario: str, history_turns: int,
                 where: str) -> Figures:
    """One run in a fresh process, so that none inherits another's garbage or warm caches."""
    command = [sys.executable, __file__, "--one", scenario, str(history_turns), where,
               *(f"--{k.replace('_', '-')}={v}" for k, v in vars(args).items()
                 if k not in ("one", "repeat", "histories"))]
    done = subprocess.run(command, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"{' '.join(command[1:])} failed:\n{done.stderr[-3000:]}")
    return Figures(**json.loads(done.stdout.strip().splitlines()[-1]))


def median(values: list[float]) -> float:
    return sorted(values)[len(values) // 2]


def medians(runs: list[Figures]) -> Figures:
    """Each figure's median over the runs (a run's worst lag, say, does not follow its wall
    time, so no one run stands for the others)."""
    chosen: dict[str, Any] = {}
    for field in dataclasses.fields(Figures):
        values = [v for f in runs if (v := getattr(f, field.name)) is not None]
        chosen[field.name] = median(values) if values else None
    return Figures(**chosen)


Config = tuple[str, int, str]  # scenario, history turns, "core" or "ui"


def collect(args: argparse.Namespace) -> dict[Config, list[Figures]]:
    """`args.repeat` rounds, each running every measurement once: a machine that is slower for
    a few minutes slows a round, not all the runs of one measurement."""
    configs = [(scenario, history_turns, where) for scenario in ("a", "b")
               for history_turns in args.histories for where in ("core", "ui")]
    runs: dict[Config, list[Figures]] = {config: [] for config in configs}
    for _ in range(args.repeat):
        for config in configs:
            runs[config].append(measure_once(args, *config))
    return runs


def report(runs: dict[Config, list[Figures]], args: argparse.Namespace) -> None:
    """The tables: the streaming figures, then start-up and idle screens."""
    ideal = args.paced_turns * args.paced_words * 0.01
    figures = {config: medians(each) for config, each in runs.items()}
    print(f"{'':<3} {'run':<5} {'from turn':>9} {'tokens':>7} {'wall s':>7} {'tok/s':>7} "
          f"{'x ideal':>8} {'x core':>7} {'cpu s':>6} {'cpu %':>6} {'UI %':>5} {'lag p95':>8} "
          f"{'lag max':>8}")
    for (scenario, history_turns, where), f in figures.items():
        base = figures.get((scenario, history_turns, "core"))
        paced = scenario == "b"
        ratio = f"{f.wall / ideal:.3f}" if paced else "—"
        vs_core = f"{f.wall / base.wall:.3f}" if paced and base and where == "ui" else "—"
        # The UI's share of a core: the CPU time it adds to the core's, over its wall time.
        ui_share = f"{100 * (f.cpu - base.cpu) / f.wall:.1f}" if base and where == "ui" else "—"
        print(f"{scenario:<3} {where:<5} {history_turns + 1:>9} {f.tokens:>7} {f.wall:>7.2f} "
              f"{f.rate:>7.0f} {ratio:>8} {vs_core:>7} {f.cpu:>6.2f} {100 * f.cpu / f.wall:>6.1f} "
              f"{ui_share:>5} {f.lag_p95 * 1000:>6.1f}ms {f.lag_max * 1000:>6.1f}ms")
    early, late = min(args.histories), max(args.histories)
    for scenario in ("a", "b"):
        firsts, lasts = runs.get((scenario, early, "ui")), runs.get((scenario, late, "ui"))
        if not firsts or not lasts or early == late:
            continue
        # Each round's pair was measured minutes apart at most: the median of their ratios.
        pairs = list(zip(firsts, lasts, strict=True))

        def ratio(name: str, pairs: list[tuple[Figures, Figures]] = pairs) -> float:
            return median([getattr(b, name) / max(getattr(a, name), 1e-9) for a, b in pairs])

        print(f"({scenario}) UI, turn {late + 1} / turn {early + 1}, median of the rounds' "
              f"ratios: wall {ratio('wall'):.2f}, cpu {ratio('cpu'):.2f}, "
              f"lag p95 {ratio('lag_p95'):.2f}, lag max {ratio('lag_max'):.2f}")
    print(f"\n{'from turn':>9} {'start-up s':>10} {'idle finished':>14} {'idle paused':>12}"
          f"   (CPU % of a core over {args.idle:g} s)")
    for history_turns in sorted(args.histories):
        f = figures.get(("b", history_turns, "ui"))
        if f is None or f.idle_finished is None or f.idle_paused is None:
            continue
        finished, paused = 100 * f.idle_finished / args.idle, 100 * f.idle_paused / args.idle
        print(f"{history_turns + 1:>9} {f.startup or 0:>10.3f} {finished:>13.2f}% "
              f"{paused:>11.2f}%")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--turns", type=int, default=64, help="turns streamed flat out")
    parser.add_argument("--words", type=int, default=1000, help="words per flat-out turn")
    parser.add_argument("--paced-turns", type=int, default=4, help="turns streamed at 100 tok/s")
    parser.add_argument("--paced-words", type=int, default=300, help="words per paced turn")
    parser.add_argument("--histories", type=lambda s: [int(n) for n in s.split(",")],
                        default=[9, 500], metavar="EARLY,LATE",
                        help="turns of history before the two measurements (default 9,500)")
    parser.add_argument("--history-words", type=int, default=1000,
                        help="words per turn of the history before the measured turns")
    parser.add_argument("--idle", type=float, default=10.0,
                        help="seconds each idle screen is watched (0: not measured)")
    parser.add_argument("--repeat", type=int, default=3,
                        help="runs of each measurement (the median is shown)")
    parser.add_argument("--one", nargs=3, metavar=("SCENARIO", "HISTORY", "WHERE"),
                        help=argparse.SUPPRESS)
    arguments = parser.parse_args()
    if arguments.one:
        figures = asyncio.run(one(arguments))
        print(json.dumps(dataclasses.asdict(figures)))
    else:
        report(collect(arguments), arguments)
