"""The local provider's overhead: a bare llama-cpp-python loop against a full intermodel run.

Both generate the same reply from the bundled model (same prompt, seed, sampling and max_tokens,
so the same tokens; the script checks the texts match). Timed in alternation:

- bare: `Llama.create_chat_completion(stream=True)` in a plain loop, counting content chunks;
- intermodel: a whole one-turn dialogue — local provider (worker thread, event-loop bridge),
  orchestrator, event bus, transcript writer (fsync per record) and the headless console
  rendering into a null stream.

Throughput is generated tokens per second of the reply (request start to last token); the model
stays loaded between runs in both cases, so load time is not counted. Then, separately, the time
a newcomer waits: from starting `python -m intermodel run configs/demo.toml --headless --turns 1`
to the first byte of model text on its stdout (interpreter start, imports and model load included).

    python bench/local.py [--tokens 200] [--runs 5] [--launches 3]
"""

from __future__ import annotations

import argparse
import io
import os
import selectors
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from intermodel.config import parse_pairing  # noqa: E402
from intermodel.console.render import run_console  # noqa: E402
from intermodel.engine.prepare import prepared_run  # noqa: E402
from intermodel.providers.local import LocalProvider, bundled_model_path  # noqa: E402
from intermodel.providers.local.runtime import import_llama  # noqa: E402
from intermodel.transcript.reader import read_transcript  # noqa: E402

SYSTEM = "You are a storyteller. You tell long, detailed stories."
OPENER = "Tell me a long story about a lighthouse keeper and a storm."
SEED = 42
TEMPERATURE = 0.7

Sample = tuple[float, float, str]  # (seconds to first token, seconds to last token, text)


def pairing_text(tokens: int) -> str:
    return f"""
name = "bench-local"
[dialogue]
opener = "{OPENER}"
max_turns = 1
[agents.ada]
provider = "local"
prompt = "{SYSTEM}"
max_tokens = {tokens}
seed = {SEED}
temperature = {TEMPERATURE}
[agents.bo]
provider = "local"
"""


def load_bare() -> Any:
    """A second instance of the model, loaded the way a plain script would."""
    llama_cpp = import_llama()
    return llama_cpp.Llama(model_path=str(bundled_model_path()), n_ctx=4096, verbose=False)


def bare(llm: Any, tokens: int) -> Sample:
    messages = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": OPENER}]
    started = time.perf_counter()
    first = None
    text = ""
    for chunk in llm.create_chat_completion(messages, stream=True, max_tokens=tokens, seed=SEED,
                                            temperature=TEMPERATURE):
        content = chunk["choices"][0]["delta"].get("content")
        if content:
            first = first or time.perf_counter() - started
            text += content
    return first or 0.0, time.perf_counter() - started, text


async def through_intermodel(tokens: int, folder: str) -> tuple[Sample, int]:
    pairing = parse_pairing(pairing_text(tokens), source="bench-local.toml")
    async with prepared_run(pairing, out_dir=folder) as run:
        console = run.session.subscribe()
        async with anyio.create_task_group() as tg:
            tg.start_soon(lambda: run_console(console, io.StringIO(), color=True, width=100,
                                              write=lambda text: None))
            await run.session.run()
    assert run.transcript is not None
    [turn] = read_transcript(run.transcript).turns
    assert turn.ttft is not None and turn.usage.output_tokens
    return (turn.ttft, turn.latency, turn.text), turn.usage.output_tokens


async def measure(tokens: int, runs: int) -> tuple[list[Sample], list[Sample], int]:
    bare_llm = load_bare()
    # Keeps intermodel's copy of the model loaded between runs, as in a real dialogue.
    holder = LocalProvider(parse_pairing(pairing_text(tokens), source="bench").agent("bo"))
    ours: list[Sample] = []
    theirs: list[Sample] = []
    generated = 0
    try:
        with tempfile.TemporaryDirectory() as folder:
            bare(bare_llm, tokens)  # warm up both paths
            await through_intermodel(tokens, folder)
            for _ in range(runs):  # alternate, so drift in machine load hits both alike
                theirs.append(bare(bare_llm, tokens))
                sample, generated = await through_intermodel(tokens, folder)
                ours.append(sample)
    finally:
        await holder.aclose()
        bare_llm.close()
    return theirs, ours, generated


def first_text_on_screen(launches: int) -> list[float]:
    """Seconds from starting `intermodel run` to the first byte after the turn header."""
    command = [sys.executable, "-m", "intermodel", "run", "configs/demo.toml", "--headless",
               "--turns", "1", "--no-transcript", "--color", "never"]
    results = []
    for _ in range(launches):
        started = time.perf_counter()
        proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE,
                                stderr=subprocess.DEVNULL, env={**os.environ, "NO_COLOR": "1"})
        assert proc.stdout is not None
        results.append(_after_header(proc.stdout, b"turn 1/1", started))
        proc.wait()
    return results


def _after_header(stdout: Any, header: bytes, started: float) -> float:
    seen = b""
    with selectors.DefaultSelector() as selector:
        selector.register(stdout, selectors.EVENT_READ)
        while True:
            selector.select()
            data = os.read(stdout.fileno(), 65536)
            if not data:
                raise SystemExit(f"no model text after the header; output was:\n{seen.decode()}")
            seen += data
            at = seen.find(header)
            line_end = seen.find(b"\n", at) if at >= 0 else -1
            if line_end >= 0 and len(seen) > line_end + 1:
                return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--tokens", type=int, default=200, help="max_tokens of the reply")
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--launches", type=int, default=3)
    args = parser.parse_args()
    theirs, ours, generated = anyio.run(measure, args.tokens, args.runs)
    if {s[2] for s in theirs} != {s[2] for s in ours}:
        print("warning: the two paths generated different text", file=sys.stderr)
    bare_rate = statistics.median(generated / s[1] for s in theirs)
    our_rate = statistics.median(generated / s[1] for s in ours)
    launches = first_text_on_screen(args.launches)
    print(f"local: {bundled_model_path().name}, {generated} tokens per reply, median of "
          f"{args.runs} runs, {os.cpu_count()} CPUs, Python {sys.version.split()[0]}")
    print()
    print("| path | tokens/s | first token ms |")
    print("|---|---:|---:|")
    print(f"| bare llama-cpp-python | {bare_rate:.1f} | "
          f"{statistics.median(s[0] for s in theirs) * 1000:.0f} |")
    print(f"| intermodel run | {our_rate:.1f} | "
          f"{statistics.median(s[0] for s in ours) * 1000:.0f} |")
    print()
    print(f"ratio intermodel / bare: {our_rate / bare_rate:.3f} (target >= 0.95)")
    print(f"`intermodel run` to first model text on screen: {statistics.median(launches):.2f} s "
          f"(median of {args.launches}: " + ", ".join(f"{s:.2f}" for s in launches) + ")")


if __name__ == "__main__":
    main()
