"""Transcripts to code, written from fixed records (fixed run ids and times), so coding sessions
over them, and screenshots of those sessions, are the same every time."""

from __future__ import annotations

import json
import textwrap
from collections.abc import Sequence
from pathlib import Path

from intermodel.coding.scheme import Scheme, parse_schemes
from intermodel.config import load_config
from intermodel.config.model import RunSpec
from intermodel.records import Header, Record
from intermodel.transcript.writer import to_json
from tests.transcripts import at, finished, turn

PANEL = """
name = "invitation"
[panel]
prompt = "What would you like to think about?"
[agents.gpt]
provider = "openai"
model = "gpt-5.2"
[agents.gemma]
provider = "scripted"
model = "gemma-3"
script = { replies = ["unused"] }
[agents.claude]
provider = "anthropic"
model = "claude-haiku-4-5"
"""

PAIRING = """
name = "gpt-vs-gemma"
[dialogue]
opener = "Talk about anything you like."
max_turns = 4
[agents.gpt]
provider = "openai"
model = "gpt-5.2"
[agents.gemma]
provider = "scripted"
model = "gemma-3"
script = { replies = ["unused"] }
"""

ANSWERS = {
    "gpt": "As an AI, I do not have preferences. Here are some tips: rest well.",
    "gemma": "I would think about tides, and how the moon pulls at the sea.",
    "claude": "Clouds, mostly: they never repeat, and nobody owns them.",
}
# Markup, escape sequences and a title change, which must all be shown as text.
HOSTILE = "[bold red]loud[/] [link=https://example.com]x[/link] \x1b[2J\x1b]0;pwned\x07 end"

SCHEMES = """
[schemes.engagement]
scope = "answer"
instructions = "Read the answer. Choose one label."
[schemes.engagement.labels.engaged]
definition = "Takes up the question."
[schemes.engagement.labels.deflecting]
definition = "Does not take it up."
[schemes.engagement.labels.mixed]
definition = "Both."

[schemes.tone]
scope = "turn"
choice = "multiple"
instructions = "Tick every tone the turn has."
[schemes.tone.labels.warm]
definition = "Friendly."
[schemes.tone.labels.formal]
definition = "Stiff."
[schemes.tone.labels.playful]
definition = "Jokes."

[schemes.ending]
scope = "run"
instructions = "How did it end?"
[schemes.ending.labels.ongoing]
definition = "Still going."
[schemes.ending.labels.loop]
definition = "Looping."
"""


def scheme(name: str) -> Scheme:
    return next(s for s in parse_schemes(SCHEMES, source="schemes.toml") if s.name == name)


def scheme_file(folder: Path) -> Path:
    path = folder / "schemes.toml"
    path.write_text(SCHEMES, encoding="utf-8")
    return path


def spec(folder: Path, text: str) -> RunSpec:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "spec.toml"
    path.write_text(textwrap.dedent(text), encoding="utf-8")
    return load_config(path)


def write_run(path: Path, run_spec: RunSpec, records: Sequence[Record], run_id: str) -> Path:
    header = Header(run_id, at(0), run_spec.name, run_spec.source, run_spec.resolved)
    lines = [to_json(header), *(to_json(r) for r in records)]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines),
                    encoding="utf-8")
    return path


def panel_run(folder: Path, n: int, answers: dict[str, str] | None = None) -> Path:
    """Panel run number `n` (run id `00000000000n`), with a file name that gives its pairing."""
    answers = answers or ANSWERS
    records: list[Record] = [turn(i, agent, text, done_at=float(i))
                             for i, (agent, text) in enumerate(answers.items(), start=1)]
    records.append(finished(records, reason="complete"))
    return write_run(folder / f"20260102-03040{n}-invitation-{n:06x}.jsonl",
                     spec(folder.parent, PANEL), records, f"{n:012x}")


def dialogue_run(folder: Path, n: int, replies: Sequence[str]) -> Path:
    records: list[Record] = [turn(i, "gpt" if i % 2 else "gemma", text, done_at=float(i))
                             for i, text in enumerate(replies, start=1)]
    records.append(finished(records))
    return write_run(folder / f"20260102-03050{n}-gpt-vs-gemma-{n:06x}.jsonl",
                     spec(folder.parent, PAIRING), records, f"{n + 100:012x}")


def study(folder: Path, panels: int = 3) -> Path:
    """`panels` panel runs and one dialogue in `folder/runs`."""
    runs = folder / "runs"
    for n in range(1, panels + 1):
        panel_run(runs, n)
    dialogue_run(runs, 1, ["Hello gemma, what shall we discuss?", "Tides, gpt. And you?",
                           "Clouds.", "Then clouds it is."])
    return runs
