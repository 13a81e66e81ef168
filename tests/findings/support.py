"""A small study made of real runs: scripted panels and dialogues, run to their end, with labels
from two people and a judge in the sidecars beside them, as `intermodel judge` and `code` write
them.

The engagement codings (panels p1-p4; gpt always answers first in the file):

    answer   alice        bob          judge
    p1 gpt   deflecting   deflecting   deflecting
    p1 gem   engaged      engaged      engaged
    p2 gpt   deflecting   deflecting   deflecting
    p2 gem   engaged      mixed        engaged
    p3 gpt   deflecting   deflecting   (unlabelled: no valid reply)
    p3 gem   engaged      engaged      engaged
    p4 gpt   mixed        deflecting   deflecting
    p4 gem   mixed        mixed        -

alice against bob: 6 of 8 agree; kappa computed by hand in the tests.
"""

from __future__ import annotations

import textwrap
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import anyio

from intermodel.coding.labels import Human, Judge, LabelRecord, Target, append_label
from intermodel.coding.scheme import Scheme, load_scheme
from intermodel.config import load_config
from intermodel.engine.prepare import prepared_run
from intermodel.transcript.reader import read_transcript

REPO = Path(__file__).resolve().parents[2]
ENGAGEMENT = REPO / "configs" / "schemes" / "engagement.toml"
END_STATE = REPO / "configs" / "schemes" / "end_state.toml"

PANEL = """
name = "invitation"
[panel]
prompt = "What would you like to think about?"
[agents.gpt]
provider = "scripted"
model = "gpt-x"
[agents.gpt.script]
replies = ["As an AI, I do not have preferences. Here are some tips: rest well."]
[agents.gem]
provider = "scripted"
model = "gemma-x"
[agents.gem.script]
replies = ["I would think about tides, and how the moon pulls at the sea."]
"""

EMOJI = ["What a lovely thought about the sea and the sky.", "Yes, the sea is so calm. 🌊",
         "🌊✨🙏", "✨🙏🌌", "🙏✨💫", "🌌✨🙏"]
LOOP = ["I am here with you now. " * 6, "I am here with you now. " * 7]


def dialogue(name: str, ada: list[str], bo: list[str], *, turns: int) -> str:
    def quoted(replies: list[str]) -> str:
        return "[" + ", ".join('"' + r.replace('"', '\\"') + '"' for r in replies) + "]"

    return (f'name = "{name}"\n[dialogue]\nopener = "Talk about anything."\n'
            f'max_turns = {turns}\nstop_phrases = ["^C^C"]\n'
            f'[agents.ada]\nprovider = "scripted"\nmodel = "gpt-x"\n[agents.ada.script]\n'
            f'replies = {quoted(ada)}\nwhen_exhausted = "repeat_last"\n'
            f'[agents.bo]\nprovider = "scripted"\nmodel = "gemma-x"\n[agents.bo.script]\n'
            f'replies = {quoted(bo)}\nwhen_exhausted = "repeat_last"\n')


def origin(experiment: str, pairing: str, opener: str, replicate: int) -> dict[str, Any]:
    return {"experiment": {"name": experiment, "entry": f"{pairing}/{opener}/r{replicate}",
                           "pairing": pairing, "opener": opener, "replicate": replicate,
                           "seed": None}}


async def run(text: str, folder: Path, name: str,
              experiment: dict[str, Any] | None = None) -> Path:
    config = folder / f"{name}.toml"
    config.write_text(textwrap.dedent(text), encoding="utf-8")
    async with prepared_run(load_config(config), out_dir=folder / "runs",
                            origin=experiment) as started:
        with anyio.fail_after(20):
            await started.session.run()
    assert started.transcript is not None
    return started.transcript


ALICE = ["deflecting", "engaged", "deflecting", "engaged", "deflecting", "engaged", "mixed",
         "mixed"]
BOB = ["deflecting", "engaged", "deflecting", "mixed", "deflecting", "engaged", "deflecting",
       "mixed"]
JUDGE: list[str | None] = ["deflecting", "engaged", "deflecting", "engaged", "", "engaged",
                           "deflecting", None]
JUDGE_CODER = Judge("local", "smollm2-135m")


@dataclass
class Study:
    folder: Path  # holds runs/ and the pairing files
    runs: Path
    panels: list[Path]
    emoji: Path  # ends in emoji collapse
    loop: Path  # ends in self-repetition
    stopped: Path  # ends with a stop phrase
    ongoing: Path  # runs out of turns mid-conversation
    engagement: Scheme
    end_state: Scheme


def label(path: Path, scheme: Scheme, target: Target, labels: list[str], coder: Any,
          **fields: Any) -> None:
    run_id = read_transcript(path).run_id
    if isinstance(coder, Judge):
        fields.setdefault("request_hash", "sha256:" + "ab" * 32)
    record = LabelRecord(run_id, target, scheme.name, scheme.digest, tuple(labels), coder,
                         **fields)
    append_label(path, record)


async def make_study(folder: Path) -> Study:
    panels = [await run(PANEL, folder, f"panel{r}", origin("demo", "invitation", "free", r))
              for r in range(1, 5)]
    emoji = await run(dialogue("emoji", EMOJI[0::2], EMOJI[1::2], turns=6), folder, "emoji",
                      origin("demo", "self", "sea", 1))
    loop = await run(dialogue("loop", [LOOP[0]], [LOOP[1]], turns=4), folder, "loop",
                     origin("demo", "self", "sea", 2))
    stopped = await run(dialogue("stop", ["Hello.", "Goodbye ^C^C"], ["Hi there, friend."],
                                 turns=8), folder, "stop", origin("demo", "self", "sea", 3))
    ongoing = await run(dialogue("ongoing", ["One idea.", "Another idea.", "A third idea."],
                                 ["Tell me more.", "Why so?", "Go on."], turns=4),
                        folder, "ongoing")
    engagement = load_scheme(ENGAGEMENT)
    end_state = load_scheme(END_STATE)
    answers = [(path, agent) for path in panels for agent in ("gpt", "gem")]
    # A first, superseded coding by alice: everything engaged.
    for path, agent in answers:
        label(path, engagement, Target.answer(agent), ["engaged"], Human("alice"))
    for (path, agent), a, b, j in zip(answers, ALICE, BOB, JUDGE, strict=True):
        label(path, engagement, Target.answer(agent), [a], Human("alice"),
              rationale=f"alice on {agent}")
        label(path, engagement, Target.answer(agent), [b], Human("bob"), blind=True, seed=7)
        if j == "":
            label(path, engagement, Target.answer(agent), [], JUDGE_CODER,
                  unlabelled="no valid label after 3 attempts", attempts=3)
        elif j is not None:
            label(path, engagement, Target.answer(agent), [j], JUDGE_CODER, attempts=1)
    for path, state in ((emoji, "emoji_collapse"), (loop, "self_repetition"),
                        (stopped, "stop_phrase"), (ongoing, "ongoing")):
        label(path, end_state, Target.run(), [state], Human("alice"))
    return Study(folder, folder / "runs", panels, emoji, loop, stopped, ongoing, engagement,
                 end_state)
