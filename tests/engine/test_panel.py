"""Panels: one message to several agents at once, each answering on its own."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

import anyio
import pytest

from intermodel.analysis import collect
from intermodel.analysis.html import run_html
from intermodel.analysis.markdown import to_markdown
from intermodel.config import Panel, load_config
from intermodel.config.request import Message
from intermodel.engine.events import TurnCompleted, TurnDiscarded, TurnStarted
from intermodel.engine.prepare import prepared_run
from intermodel.errors import AuthenticationFailed, ConfigError
from intermodel.lineage.audit import verify_transcript
from intermodel.transcript.reader import read_transcript
from tests.fakes import FailingProvider

REPO = Path(__file__).resolve().parents[2]
PANEL = """
name = "three-voices"
[panel]
prompt = "What is worth noticing today?"
[retry]
backoff_initial = 0.01
[agents.ann]
provider = "scripted"
prompt = "You are {name}."
[agents.ann.script]
replies = ["ann notices the light on the wall"]
delay = 0.02
[agents.ben]
provider = "scripted"
[agents.ben.script]
replies = ["ben notices the quiet"]
delay = 0.02
[agents.cy]
provider = "scripted"
[agents.cy.script]
replies = ["cy notices nothing much at all today"]
delay = 0.02
"""


def panel_file(tmp_path: Path, text: str = PANEL) -> Path:
    path = tmp_path / "panel.toml"
    path.write_text(textwrap.dedent(text))
    return path


def test_a_panel_file_is_validated(tmp_path: Path) -> None:
    panel = load_config(panel_file(tmp_path))
    assert isinstance(panel, Panel)
    assert panel.agent_names == ("ann", "ben", "cy")
    assert panel.system_prompt("ann") == "You are ann."
    bad = PANEL.replace('prompt = "You are {name}."', 'prompt = "Talk to {partner}."').replace(
        'prompt = "What is worth noticing today?"', "")
    with pytest.raises(ConfigError) as caught:
        load_config(panel_file(tmp_path, bad))
    text = str(caught.value)
    assert "agents.ann.prompt: unknown placeholder {partner}; known: {name}" in text
    assert "panel.prompt: missing" in text


@pytest.mark.anyio
async def test_every_agent_answers_at_once_into_one_transcript(tmp_path: Path) -> None:
    panel = load_config(panel_file(tmp_path))
    async with prepared_run(panel, out_dir=tmp_path) as run:
        subscription = run.session.subscribe()
        end = await run.session.run()
        providers = run.providers
    assert (end.reason, end.turns) == ("complete", 3)
    events = subscription.drain()
    kinds = [type(e).__name__ for e in events]
    # All three were streaming before the first answer was complete.
    assert kinds.index("TurnCompleted") > max(i for i, e in enumerate(events)
                                              if isinstance(e, TurnStarted))
    answers = {e.turn.agent: e.turn for e in events if isinstance(e, TurnCompleted)}
    assert answers["ben"].text == "ben notices the quiet"
    assert {t.index for t in answers.values()} == {1, 2, 3}  # numbered by order in the file
    for name in ("ann", "ben", "cy"):
        [request] = providers[name].requests  # type: ignore[attr-defined]
        assert request.messages == (Message("user", "What is worth noticing today?"),)
    assert run.transcript is not None
    transcript = read_transcript(run.transcript)
    assert transcript.is_panel and len(transcript.turns) == 3
    assert all(r.matches for r in verify_transcript(transcript))
    markdown = to_markdown(transcript)
    assert "## Message (to every agent)" in markdown and "cy notices nothing" in markdown
    [stats], _ = collect(run.transcript)
    assert stats.turns == 3 and {a.agent for a in stats.agents} == {"ann", "ben", "cy"}
    assert "ben notices the quiet" in run_html(transcript)


@pytest.mark.anyio
async def test_one_failing_agent_does_not_stop_the_others(tmp_path: Path) -> None:
    panel = load_config(panel_file(tmp_path))

    def factory(agent, partner, credentials):  # type: ignore[no-untyped-def]
        from intermodel.providers.registry import make_provider

        inner = make_provider(agent, partner, credentials)
        if agent.name != "ben":
            return inner
        return FailingProvider(inner, [AuthenticationFailed("bad key", provider="x", status=401)])

    async with prepared_run(panel, out_dir=tmp_path, provider_factory=factory) as run:
        end = await run.session.run()
    assert end.reason == "error" and end.turns == 2
    assert end.detail == "ben: x 401 authentication failed: bad key"
    assert run.transcript is not None
    assert sorted(t.agent for t in read_transcript(run.transcript).turns) == ["ann", "cy"]


@pytest.mark.anyio
async def test_stopping_a_panel_discards_the_answers_under_way(tmp_path: Path) -> None:
    panel = load_config(panel_file(tmp_path, PANEL.replace("delay = 0.02", "delay = 0.2")))
    async with prepared_run(panel, out_dir=tmp_path) as run:
        subscription = run.session.subscribe()

        async def stop_soon() -> None:
            await anyio.sleep(0.3)
            run.session.controls.stop(now=True)

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_soon)
            end = await run.session.run()
    assert end.reason == "stopped"
    discards = [e.discard for e in subscription.drain() if isinstance(e, TurnDiscarded)]
    assert sorted(d.agent for d in discards) == ["ann", "ben", "cy"]


def test_a_panel_from_the_command_line(tmp_path: Path) -> None:
    env = {**os.environ, "INTERMODEL_TRANSCRIPTS": str(tmp_path / "runs"), "NO_COLOR": "1"}
    result = subprocess.run([sys.executable, "-m", "intermodel", "run",
                             str(panel_file(tmp_path)), "--headless"], cwd=REPO, env=env,
                            capture_output=True, text=True, timeout=60, check=False)
    assert result.returncode == 0, result.stderr
    assert "message → every agent: What is worth noticing today?" in result.stdout
    assert result.stdout.count(" · answer ") == 3
    assert "══ finished: complete" in result.stdout
    turns_flag = subprocess.run([sys.executable, "-m", "intermodel", "run",
                                 str(panel_file(tmp_path)), "--headless", "--turns", "3"],
                                cwd=REPO, env=env, capture_output=True, text=True, timeout=60,
                                check=False)
    assert turns_flag.returncode == 2 and "does not apply to a panel" in turns_flag.stderr


def test_the_example_panel_validates() -> None:
    panel = load_config(REPO / "configs" / "panel.toml")
    assert isinstance(panel, Panel) and len(panel.agents) == 3
