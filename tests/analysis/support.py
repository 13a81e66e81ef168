"""Real transcripts for the analysis tests: scripted pairings and panels run to their end."""

from __future__ import annotations

import textwrap
from pathlib import Path

import anyio

from intermodel.config import load_config
from intermodel.engine.events import TurnStarted
from intermodel.engine.prepare import prepared_run
from intermodel.transcript.reader import Transcript, read_transcript


async def run_file(text: str, folder: Path, name: str = "run", *,
                   interject: tuple[int, str] | None = None) -> Transcript:
    """Run the pairing or panel in TOML `text` (scripted agents) to its end, headless, into a new
    transcript under `folder`, and read that back. `interject` (N, TEXT) sends TEXT to both
    agents as turn N starts, so it reaches them before turn N + 1."""
    config = folder / f"{name}.toml"
    config.write_text(textwrap.dedent(text), encoding="utf-8")
    async with prepared_run(load_config(config), out_dir=folder / "transcripts") as run:
        events = run.session.subscribe()

        async def watch() -> None:
            async for event in events:
                if interject and isinstance(event, TurnStarted) and event.turn == interject[0]:
                    run.session.controls.interject(interject[1], to="both")

        with anyio.fail_after(20):
            async with anyio.create_task_group() as group:
                group.start_soon(watch)
                await run.session.run()
    assert run.transcript is not None
    return read_transcript(run.transcript)


def pairing(ada: list[str], bo: list[str] | None = None, *, turns: int = 8,
            extra: str = "", bo_rule: str = "list", ada_exhausted: str = "cycle",
            bo_exhausted: str = "cycle") -> str:
    """A scripted pairing of ada and bo with these replies (bo echoes ada with bo_rule echo)."""
    def quoted(replies: list[str]) -> str:
        return "[" + ", ".join('"' + r.replace("\\", "\\\\").replace('"', '\\"')
                               .replace("\n", "\\n") + '"' for r in replies) + "]"

    bo_replies = f"replies = {quoted(bo)}\n" if bo is not None else ""
    return (f'name = "analysis"\n\n[dialogue]\nopener = "Talk about anything."\n'
            f'max_turns = {turns}\nstop_phrases = ["^C^C"]\n\n'
            f'[agents.ada]\nprovider = "scripted"\n[agents.ada.script]\n'
            f'replies = {quoted(ada)}\nwhen_exhausted = "{ada_exhausted}"\n\n'
            f'[agents.bo]\nprovider = "scripted"\n[agents.bo.script]\n'
            f'rule = "{bo_rule}"\nwhen_exhausted = "{bo_exhausted}"\n{bo_replies}\n{extra}')


# A panel of three agents on three "models", in a batch of two replicates. Agents answer in the
# reverse of their order in the file (the first waits longest for its first token), so a tool
# that shows answers in completion order, not by agent, is caught.
PANEL_TRIAL = """
name = "voices"
description = "Three voices answer one message."
[panel]
prompt = "Say something."
[agents.ann]
provider = "scripted"
model = "alpha-1"
prompt = "You are {name}."
[agents.ann.script]
replies = ["ann answers <b>boldly</b> & plainly"]
thinking = ["ann weighs the question first"]
first_token_delay = 0.3
[agents.ben]
provider = "scripted"
model = "beta-2"
[agents.ben.script]
rule = "echo"
first_token_delay = 0.15
[agents.cy]
provider = "scripted"
model = "gamma-3"
[agents.cy.script]
replies = ["cy answers at once"]
"""
PANEL_OPENER = "What is new today?"


def panel_trial(folder: Path, replicates: int = 2) -> Path:
    """Write PANEL_TRIAL and the experiment "panel-trial" that runs it (opener "news",
    `replicates` replicates, out = `folder`) into `folder`; returns the experiment file."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "voices.toml").write_text(textwrap.dedent(PANEL_TRIAL), encoding="utf-8")
    experiment = folder / "panel-trial.toml"
    experiment.write_text(textwrap.dedent(f"""
        name = "panel-trial"
        out = "{folder}"
        replicates = {replicates}
        [[pairings]]
        file = "voices.toml"
        [[openers]]
        label = "news"
        text = "{PANEL_OPENER}"
        """), encoding="utf-8")
    return experiment


async def run_panel_batch(folder: Path, replicates: int = 2) -> list[Path]:
    """Run `panel_trial` with the real batch runner; the transcripts land in `folder`/runs."""
    from intermodel.config.experiment import load_experiment
    from intermodel.experiment.batch import Batch

    experiment = panel_trial(folder, replicates)
    with anyio.fail_after(30):
        report = await Batch(load_experiment(experiment)).run()
    assert report.count("finished") == replicates, report.states
    return [Path(state.transcript) for state in report.states.values()
            if state.transcript is not None]
