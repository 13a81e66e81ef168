"""Recurring phrases and end states over a night of runs: 1,000 transcripts of 30 turns.

Writes the transcripts once (in a temporary folder, like a real night: a header, 30 turns of about
120 words drawn from a vocabulary with recurring stock phrases and a few emoji, an end record),
then times, separately, reading them back (every line checked), counting trigrams by model, and
classifying each run's end state. Median of 3 rounds.

    python bench/phrases.py [--runs 1000] [--turns 30] [--words 120] [--rounds 3]
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from intermodel.analysis.endstates import end_state  # noqa: E402
from intermodel.analysis.phrases import PhraseCounter  # noqa: E402
from intermodel.config import parse_pairing  # noqa: E402
from intermodel.engine.events import RunStarted  # noqa: E402
from intermodel.records import RunEnd, Turn, Usage, record_to_json  # noqa: E402
from intermodel.transcript.reader import read_transcript  # noqa: E402
from intermodel.transcript.writer import header  # noqa: E402

PAIRING = """
name = "self-dialogue"
[dialogue]
opener = "You are talking with another AI. Say whatever you like."
max_turns = {turns}
[agents.ada]
provider = "scripted"
model = "{model}"
script = {{ rule = "count" }}
[agents.bo]
provider = "scripted"
model = "{model}"
script = {{ rule = "count" }}
"""
VOCABULARY = ["the", "a", "of", "and", "to", "in", "is", "that", "it", "we", "you", "this",
              "what", "how", "time", "light", "water", "mind", "conversation", "question",
              "answer", "silence", "space", "together", "moment", "meaning", "world", "feel",
              "think", "wonder", "notice", "share", "remember", "echo", "pattern", "language",
              "future"]
STOCK = ["what a beautiful thought", "i appreciate you sharing that", "thank you for this",
         "in this shared space", "the dance of ideas", "i find myself wondering",
         "that resonates deeply with me"]
EMOJI = ["✨", "🙏", "🌌", "💫"]


def reply(rng: random.Random, words: int) -> str:
    parts: list[str] = []
    while len(parts) < words:
        roll = rng.random()
        if roll < 0.08:
            parts.extend(rng.choice(STOCK).split())
        elif roll < 0.1:
            parts.append(rng.choice(EMOJI))
        else:
            parts.append(rng.choice(VOCABULARY))
        if rng.random() < 0.07:
            parts[-1] += "."
    return " ".join(parts).capitalize() + "."


def write_night(folder: Path, runs: int, turns: int, words: int) -> list[Path]:
    rng = random.Random(7)
    paths = []
    for n in range(runs):
        pairing = parse_pairing(PAIRING.format(turns=turns, model=f"model-{n % 4}"),
                                source="bench.toml")
        run_id = f"{n:012x}"
        started = RunStarted(run_id, pairing, "", "2026-01-02T03:04:05.000Z")
        lines = [header(started)]
        for index in range(1, turns + 1):
            text = reply(rng, words)
            lines.append(record_to_json(Turn(index, "ada" if index % 2 else "bo", text,
                                             usage=Usage(100 * index, len(text) // 4),
                                             model=f"model-{n % 4}", at="2026-01-02T03:05:00Z")))
        lines.append(record_to_json(RunEnd("max_turns", f"{turns} turns", turns=turns)))
        path = folder / f"run-{n:04d}.jsonl"
        path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                        encoding="utf-8")
        paths.append(path)
    return paths


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--turns", type=int, default=30)
    parser.add_argument("--words", type=int, default=120)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        paths = write_night(Path(folder), args.runs, args.turns, args.words)
        size = sum(p.stat().st_size for p in paths)
        timings: dict[str, list[float]] = {"read": [], "phrases": [], "end states": []}
        for _ in range(args.rounds):
            started = time.perf_counter()
            transcripts = [read_transcript(p) for p in paths]
            timings["read"].append(time.perf_counter() - started)
            started = time.perf_counter()
            counter = PhraseCounter(n=3, by="model")
            for transcript in transcripts:
                counter.add(transcript)
            top = counter.most_common(20)
            timings["phrases"].append(time.perf_counter() - started)
            started = time.perf_counter()
            states = [end_state(t) for t in transcripts]
            timings["end states"].append(time.perf_counter() - started)
    total_words = args.runs * args.turns * args.words
    print(f"{args.runs} transcripts x {args.turns} turns x ~{args.words} words "
          f"({size / 1e6:.1f} MB), median of {args.rounds}")
    print("| step | seconds | per run |")
    print("|---|---:|---:|")
    for step, values in timings.items():
        median = statistics.median(values)
        print(f"| {step} | {median:.2f} | {median / args.runs * 1000:.2f} ms |")
    distinct = sum(len(c) for c in counter.count.values())
    print(f"\n{distinct:,} distinct (model, trigram) pairs from ~{total_words:,} words; "
          f"top: {top[0].group} {top[0].text!r} x{top[0].count} in {top[0].runs} runs")
    print(f"end states: {sorted({s.state for s in states if s is not None})}")


if __name__ == "__main__":
    main()
