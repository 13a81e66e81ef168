"""What the hostile-input tests share: real transcripts to break, and the command line to run.

`record_bases` runs, in a fresh folder:
- a dialogue (an experiment's run) with a note, trims, retries, flags, an interjection, a budget
  change, a discarded turn and an `end`, then a resume to its end, and a link to a branch;
- that branch, whose header names its parent and keeps the parent's config;
- a panel: one message, three scripted answers.
"""

from __future__ import annotations

import contextlib
import io
import os
import resource
import subprocess
import sys
import textwrap
import tomllib
from dataclasses import dataclass
from pathlib import Path

import anyio

from intermodel.cli import main
from intermodel.config import Pairing, Panel, parse_pairing
from intermodel.config.loader import build_panel, normalise_panel
from intermodel.config.model import AgentConfig
from intermodel.engine.events import Event, TurnStarted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import RateLimited
from intermodel.lineage.branch import prepared_branch
from intermodel.lineage.resume import prepared_resume
from intermodel.providers.base import Provider
from intermodel.providers.scripted import ScriptedProvider
from intermodel.security.secrets import Credentials
from tests.fakes import FailingProvider

LONG = "word " * 60  # about 75 estimated tokens: a few of these overflow a 256-token window

DIALOGUE = f"""
name = "hostile-base"

[dialogue]
opener = "Hello there."
max_turns = 6

[retry]
backoff_initial = 0.001
backoff_max = 0.002

[agents.ada]
provider = "scripted"
prompt = "You are {{name}}."
max_tokens = 48
context_window = 256
[agents.ada.script]
replies = ["{LONG}one", "{LONG}two", "{LONG}three", "{LONG}four", "{LONG}five"]
thinking = ["hmm", "", "aha"]

[agents.bo]
provider = "scripted"
prompt = "You are {{name}}."
max_tokens = 48
context_window = 256
[agents.bo.script]
rule = "echo"
"""

PANEL = """
name = "hostile-panel"

[panel]
prompt = "What would you like to think about?"

[agents.poet]
provider = "scripted"
[agents.poet.script]
replies = ["Rivers, mostly."]

[agents.engineer]
provider = "scripted"
[agents.engineer.script]
replies = ["Bridges.", "Tolerances."]

[agents.child]
provider = "scripted"
[agents.child.script]
replies = ["Dinosaurs!"]
thinking = ["big ones"]
"""

ORIGIN = {"experiment": {"name": "night", "entry": "hostile-base/hello/r1",
                         "pairing": "hostile-base", "opener": "hello", "replicate": 1,
                         "seed": 7}}


@dataclass(frozen=True)
class Bases:
    dialogue: Path  # every kind of dialogue record, resumed, branched
    branch: Path  # a branch of `dialogue` after turn 2
    panel: Path


def _flaky_ada(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
    inner = ScriptedProvider(agent, partner)
    if agent.name != "ada":
        return inner
    # ada's first request is refused twice (recorded as retries), then it answers.
    return FailingProvider(inner, [RateLimited("slow down", provider="fake", status=429,
                                               retry_after=0.001)] * 2)


async def _first_run(pairing: Pairing, folder: Path) -> Path:
    async with prepared_run(pairing, out_dir=folder, origin=ORIGIN,
                            provider_factory=_flaky_ada) as run:
        events = run.session.subscribe()

        async def steer() -> None:
            event: Event
            async for event in events:
                if not isinstance(event, TurnStarted):
                    continue
                if event.turn == 2 and event.attempt == 1:
                    run.session.controls.interject("Please be brief.", to="both")
                if event.turn == 3 and event.attempt == 1:
                    run.session.controls.extend(2)
                if event.turn == 5:
                    run.session.controls.stop(now=True, reason="interrupted")

        with anyio.fail_after(20):
            async with anyio.create_task_group() as tg:
                tg.start_soon(steer)
                await run.session.run()
                tg.cancel_scope.cancel()
    assert run.transcript is not None
    return run.transcript


async def _record(folder: Path) -> Bases:
    pairing = parse_pairing(textwrap.dedent(DIALOGUE), source="hostile-base.toml",
                            base_dir=folder)
    dialogue = await _first_run(pairing, folder)
    async with prepared_resume(dialogue) as run:
        with anyio.fail_after(20):
            await run.session.run()
    async with prepared_branch(dialogue, 2, say="Change the subject.", turns=3) as run:
        with anyio.fail_after(20):
            await run.session.run()
    assert run.transcript is not None
    branch = run.transcript
    panel_config = panel()
    async with prepared_run(panel_config, out_dir=folder) as run:
        with anyio.fail_after(20):
            await run.session.run()
    assert run.transcript is not None
    return Bases(dialogue, branch, run.transcript)


def panel() -> Panel:
    raw = tomllib.loads(textwrap.dedent(PANEL))
    resolved = normalise_panel(raw, source="hostile-panel.toml", base_dir=Path("."),
                               default_name="hostile-panel")
    return build_panel(resolved, source="hostile-panel.toml")


def record_bases(folder: Path) -> Bases:
    folder.mkdir(parents=True, exist_ok=True)
    return anyio.run(_record, folder)


REPO = Path(__file__).resolve().parent.parent.parent


@dataclass(frozen=True)
class Result:
    code: int
    out: str
    err: str

    @property
    def lines(self) -> list[str]:
        # Lines end at "\n" only, as a terminal sees them (`splitlines` also splits at NEL…).
        return self.err.removesuffix("\n").split("\n") if self.err else []


def cli(*args: str | Path) -> Result:
    """`intermodel ARGS` in this process (the real entry point, without a process's start-up)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as exc:  # argparse refusing an argument
            code = exc.code if isinstance(exc.code, int) else 2
    return Result(code, out.getvalue(), err.getvalue())


def _limit_memory() -> None:
    # A reader that slurps /dev/zero must fail in the child, not take the machine with it.
    resource.setrlimit(resource.RLIMIT_AS, (4 * 2**30, 4 * 2**30))


def cli_process(*args: str | Path, timeout: float = 20) -> Result:
    """`intermodel ARGS` as a real process, with a time and a memory bound (for inputs that
    hang or exhaust a reader that does not guard against them)."""
    env = {**os.environ, "NO_COLOR": "1"}
    done = subprocess.run([sys.executable, "-m", "intermodel", *map(str, args)], cwd=REPO,
                          env=env, capture_output=True, text=True, timeout=timeout, check=False,
                          stdin=subprocess.DEVNULL, preexec_fn=_limit_memory)
    return Result(done.returncode, done.stdout, done.stderr)
