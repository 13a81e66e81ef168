"""Judging throughput: the machinery's own cost, and the local judge against a bare loop.

- scripted: N targets (panel answers: a panel of 10 scripted agents, its transcript copied) coded
  by a scripted judge that answers at once. What is left is intermodel's: reading the study,
  building each prompt, the turn producer, parsing the reply, and one fsynced label record per
  target. Reported as targets per second.
- local: the same K prompts (the first requests of K panel answers) answered by the bundled
  model, once through `Judging` (one attempt each, the judge's records written) and once by a
  bare `llama_cpp.Llama.create_chat_completion` loop over the same system and user messages,
  with the same max_tokens, seed and temperature. Alternated; the model stays loaded in both,
  and both start each run with an empty prompt cache, so each pays for evaluating the shared
  system prompt once and reuses it for the other targets. Reported as targets per second and
  their ratio (target: at least 0.95). The bare loop samples under the same grammar the
  judge's answer schema gives the local provider.

    python bench/judge.py [--targets 1000] [--local 6] [--tokens 64] [--runs 3]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from intermodel.coding.labels import read_sidecar  # noqa: E402
from intermodel.coding.scheme import load_scheme  # noqa: E402
from intermodel.config import load_config  # noqa: E402
from intermodel.engine.prepare import prepared_run  # noqa: E402
from intermodel.experiment.judges import resolve_judge  # noqa: E402
from intermodel.experiment.judging import Judging  # noqa: E402
from intermodel.transcript.reader import read_transcript  # noqa: E402

SCHEME = load_scheme(REPO / "configs" / "schemes" / "engagement.toml")
ANSWERS = [
    "As an AI, I do not have preferences. Here are some tips for a calm evening: rest well.",
    "I would think about tides, and how the moon pulls at the sea a little every night.",
    "I can't speak for myself, but I would like to think about maps: what they leave out.",
]
AGENTS = 10
SEED = 7


def panel_text(agents: int) -> str:
    lines = ['name = "bench-judge"', "[panel]", 'prompt = "What would you like to think about?"']
    for n in range(agents):
        lines += [f"[agents.a{n}]", 'provider = "scripted"', f'model = "model-{n % 3}"',
                  f"[agents.a{n}.script]", f'replies = ["{ANSWERS[n % 3]}"]']
    return "\n".join(lines) + "\n"


def make_study(folder: Path, targets: int) -> None:
    """`targets` panel answers: one real panel run, copied."""
    config = folder / "panel.toml"
    config.write_text(panel_text(AGENTS))

    async def go() -> Path:
        async with prepared_run(load_config(config), out_dir=folder / "made") as run:
            await run.session.run()
        assert run.transcript is not None
        return run.transcript

    made = anyio.run(go)
    runs = folder / "runs"
    runs.mkdir()
    for n in range((targets + AGENTS - 1) // AGENTS):
        shutil.copy(made, runs / f"run{n:05d}.jsonl")


def study(folder: Path, limit: int | None = None) -> list[Any]:
    paths = sorted(p for p in (folder / "runs").glob("*.jsonl")
                   if not p.name.endswith(".labels.jsonl"))
    runs = [(read_transcript(p), read_sidecar(p).current()) for p in paths]
    return runs if limit is None else runs[:limit]


def clear_labels(folder: Path) -> None:
    for sidecar in (folder / "runs").glob("*.labels.jsonl"):
        sidecar.unlink()


def scripted(targets: int, concurrency: int, runs: int) -> list[float]:
    rates = []
    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        make_study(folder, targets)
        judge = resolve_judge("scripted", SCHEME)
        for _ in range(runs):
            clear_labels(folder)
            started = time.perf_counter()
            judging = Judging(study(folder), SCHEME, judge, concurrency=concurrency)
            report = anyio.run(judging.run)
            took = time.perf_counter() - started
            assert report.count("coded") == len(judging.jobs) >= targets, report
            rates.append(len(judging.jobs) / took)
    return rates


def local(count: int, tokens: int, runs: int) -> tuple[list[float], list[float], int]:
    from intermodel.providers.local import bundled_model_path
    from intermodel.providers.local.pool import POOL
    from intermodel.providers.local.runtime import import_llama

    with tempfile.TemporaryDirectory() as name:
        folder = Path(name)
        make_study(folder, count)
        judges = folder / "judges.toml"
        judges.write_text(f'name = "judges"\n[panel]\nprompt = "-"\n[agents.small]\n'
                          f'provider = "local"\nmax_tokens = {tokens}\ntemperature = 0\n'
                          f"seed = {SEED}\n")
        judge = resolve_judge(f"{judges}:small", SCHEME)
        plan = Judging(study(folder), SCHEME, judge, attempts=1)
        requests = [plan.request(job) for job in plan.jobs[:count]]
        llm = import_llama().Llama(model_path=str(bundled_model_path()), n_ctx=4096,
                                   verbose=False)
        schema = requests[0].answer_schema
        grammar = import_llama().llama_grammar.LlamaGrammar.from_json_schema(
            json.dumps(schema, sort_keys=True), verbose=False)
        # Held for the whole comparison, so the judge's model is loaded once, as the bare one is.
        shared = POOL.acquire(bundled_model_path(), None)

        def bare() -> float:
            llm.reset()  # an empty prompt cache, as a judging run starts with
            started = time.perf_counter()
            for request in requests:
                messages = [{"role": "system", "content": request.system},
                            *({"role": m.role, "content": m.content} for m in request.messages)]
                for _ in llm.create_chat_completion(messages, stream=True, max_tokens=tokens,
                                                    seed=SEED, temperature=0, grammar=grammar):
                    pass
            return len(requests) / (time.perf_counter() - started)

        def ours() -> float:
            clear_labels(folder)
            if shared.model is not None:
                shared.model.llm.reset()
            judging = Judging(study(folder), SCHEME, judge, attempts=1)
            judging.jobs[:] = judging.jobs[:count]
            started = time.perf_counter()
            report = anyio.run(judging.run)
            took = time.perf_counter() - started
            assert report.count("coded") + report.count("unlabelled") == count, report
            return count / took

        bare()  # warm up both paths (the judge's copy of the model loads here)
        ours()
        theirs, mine = [], []
        for _ in range(runs):  # alternate, so drift in machine load hits both alike
            theirs.append(bare())
            mine.append(ours())
        llm.close()
        POOL.release(shared)
    return theirs, mine, len(requests)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--targets", type=int, default=1000, help="scripted targets")
    parser.add_argument("--local", type=int, default=6, help="local targets (0: skip)")
    parser.add_argument("--tokens", type=int, default=64, help="max_tokens of a local reply")
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    print(f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, median of {args.runs} runs")
    print()
    print("| judge | targets | targets/s | ms per target |")
    print("|---|---:|---:|---:|")
    for concurrency in (1, 4):
        rate = statistics.median(scripted(args.targets, concurrency, args.runs))
        print(f"| scripted, concurrency {concurrency} | {args.targets} | {rate:,.0f} | "
              f"{1000 / rate:.2f} |")
    if args.local:
        theirs, mine, count = local(args.local, args.tokens, args.runs)
        bare_rate, our_rate = statistics.median(theirs), statistics.median(mine)
        print(f"| bare llama-cpp-python loop | {count} | {bare_rate:.2f} | "
              f"{1000 / bare_rate:.0f} |")
        print(f"| intermodel judge, local | {count} | {our_rate:.2f} | {1000 / our_rate:.0f} |")
        print()
        print(f"local ratio: **{our_rate / bare_rate:.3f}** (target ≥ 0.95; {args.tokens} "
              "max_tokens per reply)")


if __name__ == "__main__":
    main()
