"""The terminal UI showing a panel: one column per agent, every answer streaming at once.

Live panels use scripted agents that stream a word at a time with a small delay, so every column
is still streaming when the first answer is complete; each test waits for a precise state, never
a fixed time. Replays play transcripts written from fixed records.
"""

from __future__ import annotations

import textwrap
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from pathlib import Path

import anyio
import pytest
from textual.pilot import Pilot
from textual.widgets import Static

from intermodel.config import Panel, load_config
from intermodel.config.model import AgentConfig
from intermodel.engine.prepare import Run, prepared_run
from intermodel.errors import RateLimited
from intermodel.providers.base import Provider
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Discard, Retry, Turn
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from intermodel.tui.app import IntermodelApp, replay_app
from intermodel.tui.columns import MIN_COLUMN, PanelColumns, grid_shape
from intermodel.tui.quit import ConfirmQuit
from intermodel.tui.sources import LiveSource
from tests.fakes import FailingProvider, Gate, gated_scripted
from tests.transcripts import at, finished, turn, write_transcript
from tests.tui_support import (
    frozen_clock,
    make_app,
    pane_text,
    read_when,
    status_text,
    still_app,
    turn_views,
    until,
)

PANEL = """
name = "three-voices"
[panel]
prompt = "What is worth noticing today?"
[agents.ann]
provider = "scripted"
[agents.ann.script]
replies = ["ann notices the light on the wall and how it moves across the room."]
thinking = ["light first."]
delay = 0.02
[agents.ben]
provider = "scripted"
[agents.ben.script]
replies = ["ben notices the quiet between two trains, then the next one."]
delay = 0.03
[agents.cy]
provider = "scripted"
[agents.cy.script]
replies = ["cy notices nothing much at all today, and says so at some length."]
delay = 0.04
"""
NAMES = ("ann", "ben", "cy")
KEYS = ("pause", "resume", "step", "interject", "extend", "stop", "stop_panel", "seek", "goto",
        "speed", "thinking", "follow", "quit")

pytestmark = pytest.mark.anyio


def make_panel(tmp_path: Path, text: str = PANEL) -> Panel:
    path = tmp_path / "panel.toml"
    path.write_text(textwrap.dedent(text))
    panel = load_config(path)
    assert isinstance(panel, Panel)
    return panel






def keys_offered(app: IntermodelApp) -> set[str]:
    return {key for key in KEYS if app.check_action(key, ())}


def all_streaming(app: IntermodelApp) -> bool:
    under_way = app.model.under_way
    return len(under_way) == 3 and all(e.state == "streaming" for e in under_way.values())


# -- live -------------------------------------------------------------------------------------


async def test_a_live_panel_streams_every_agent_into_its_own_column(tmp_path: Path) -> None:
    gate = Gate()  # every answer streams its first piece, then waits until all three are seen
    app = make_app(make_panel(tmp_path), provider_factory=gated_scripted(gate))
    async with app.run_test(size=(120, 32)) as pilot:
        await until(pilot, lambda: all_streaming(app))
        assert app.model.answered == 0  # all three stream at once
        assert [pane.agent for pane in app.panes] == list(NAMES)
        assert all(pane.frame.has_class("-speaking") for pane in app.panes)
        assert "0 of 3 answered · streaming ann, ben, cy" in status_text(app)
        assert "turn" not in status_text(app)
        assert keys_offered(app) == {"stop_panel", "thinking", "follow", "quit"}
        gate.open()
        await until(pilot, app.served.is_set)
        for index, name in enumerate(NAMES):
            text = pane_text(app, index)
            assert f"{name} notices" in text
            assert not any(f"{other} notices" in text for other in NAMES if other != name)
            assert "What is worth noticing" not in text  # the message is shown once, above
            [view] = turn_views(app, index)
            assert view.title.startswith(" answer · ")
            assert " tok" in view.title
        message = str(app.query_one("#message Static", Static).content)
        assert message == "✎ message → every agent: What is worth noticing today?"
        assert not app.query("#panes")  # the dialogue's two columns are gone
        assert "finished: every agent answered" in status_text(app)
        assert keys_offered(app) == {"thinking", "follow", "quit"}
        assert "light first." in pane_text(app, 0)
        await pilot.press("t")
        assert "light first." not in pane_text(app, 0)
        transcript = read_transcript(app.source.run.transcript)  # type: ignore[union-attr]
        assert transcript.is_panel and len(transcript.turns) == 3


async def test_stop_discards_the_answers_under_way(tmp_path: Path) -> None:
    gate = Gate()  # never opened: every answer is still streaming when the key lands
    app = make_app(make_panel(tmp_path), provider_factory=gated_scripted(gate))
    async with app.run_test(size=(120, 32)) as pilot:
        await until(pilot, lambda: all_streaming(app))
        await pilot.press("s")
        await until(pilot, app.served.is_set)
        for index, pane in enumerate(app.panes):
            [view] = turn_views(app, index)
            assert view.entry.state == "discarded"
            assert "discarded (stopped)" in view.title
            assert not pane.frame.has_class("-speaking")
        assert "finished: stopped by you · 0 of 3 answered" in status_text(app)
        records = read_transcript(app.source.run.transcript).records  # type: ignore[union-attr]
        assert sorted(r.agent for r in records if isinstance(r, Discard)) == list(NAMES)
        assert not any(isinstance(r, Turn) for r in records)


async def test_quit_asks_then_stops_a_live_panel(tmp_path: Path) -> None:
    gate = Gate()  # never opened: every answer is still streaming when the key lands
    app = make_app(make_panel(tmp_path), provider_factory=gated_scripted(gate))
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, lambda: all_streaming(app))
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("y")
        await until(pilot, app.served.is_set)
    assert app.return_value == 0
    transcript = read_transcript(app.source.run.transcript)  # type: ignore[union-attr]
    assert transcript.end is not None and transcript.end.reason == "stopped"


async def test_one_agent_retrying_does_not_hold_up_the_others(tmp_path: Path) -> None:
    gate = Gate()  # ann and cy stream their first piece, then wait while ben's retry is seen
    scripted = gated_scripted(gate, "ann", "cy")

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        if agent.name != "ben":
            return scripted(agent, partner, credentials)
        return FailingProvider(ScriptedProvider(agent, partner),
                               [RateLimited("slow down", status=429, retry_after=0.5)])

    retry_soon = PANEL.replace("[agents.ann]", "[retry]\nbackoff_initial = 0.01\n[agents.ann]")
    app = make_app(make_panel(tmp_path, retry_soon), provider_factory=factory)
    async with app.run_test(size=(120, 32)) as pilot:
        def retrying_while_the_others_stream() -> bool:
            under_way = app.model.under_way
            return app.model.retry is not None and sorted(under_way) == ["ann", "cy"] and \
                all(entry.state == "streaming" for entry in under_way.values())

        state, ben_speaking = await read_when(  # ben's retry lasts only its wait
            pilot, retrying_while_the_others_stream,
            lambda: (status_text(app), app.panes[1].frame.has_class("-speaking")))
        assert "0 of 3 answered · ↻ retrying in" in state
        assert "(rate limited 429 from ben) · streaming ann, cy" in state
        assert not ben_speaking
        gate.open()
        await until(pilot, app.served.is_set)
        assert "finished: every agent answered" in status_text(app)
        [view] = turn_views(app, 1)
        assert "attempt 2" in view.title
        assert "ben notices the quiet" in pane_text(app, 1)
        assert "half a rep" not in pane_text(app, 1)


async def test_the_columns_appear_behind_a_quit_question(tmp_path: Path) -> None:
    panel = make_panel(tmp_path)
    preparing = anyio.Event()

    @asynccontextmanager
    async def slow_to_prepare() -> AsyncIterator[Run]:  # like a local model loading
        await preparing.wait()
        async with prepared_run(panel, record=False) as run:
            yield run

    app = IntermodelApp(LiveSource(slow_to_prepare), clock=frozen_clock, blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        preparing.set()
        await until(pilot, lambda: app.model.answered == 3)
        await pilot.press("n")
        assert [pane.agent for pane in app.panes] == list(NAMES)
        assert "ann notices" in pane_text(app, 0)


# -- replay -----------------------------------------------------------------------------------


def recorded_panel(tmp_path: Path, panel: Panel) -> Path:
    """Three answers that streamed together: each began at 0.5 s and took about a minute (so
    at the test's speed all three are seen streaming for many seconds, on any machine)."""
    records = [turn(index, name, f"{name} noticed something worth {index} lines.",
                    done_at=0.5 + latency, latency=latency, ttft=0.3,
                    thinking="hm." if name == "ann" else "")
               for index, name, latency in ((2, "ben", 60.5), (1, "ann", 61.5), (3, "cy", 62.5))]
    return write_transcript(tmp_path / "panel.jsonl", panel,  # type: ignore[arg-type]
                            [*records, finished(records, reason="complete")])


async def test_a_panel_replays_with_every_answer_streaming_together(tmp_path: Path) -> None:
    app = replay_app(recorded_panel(tmp_path, make_panel(tmp_path)), speed=2,
                     clock=frozen_clock, blink=False)
    async with app.run_test(size=(120, 32)) as pilot:
        await until(pilot, lambda: all_streaming(app))
        assert app.model.answered == 0
        assert keys_offered(app) == {"pause", "speed", "thinking", "follow", "quit"}
        await pilot.press("space")
        await until(pilot, lambda: app.model.paused)
        assert "‖ paused · 0 of 3 answered" in status_text(app)
        assert keys_offered(app) == {"resume", "speed", "thinking", "follow", "quit"}
        await pilot.press("space", *["greater_than_sign"] * 9)  # resumed at 1000×: a blink
        assert app.source.replay.speed == 1000  # type: ignore[union-attr]
        await until(pilot, lambda: app.model.end is not None)
        assert "finished: every agent answered" in status_text(app)
        for index, name in enumerate(NAMES):
            assert f"{name} noticed something worth {index + 1} lines." in pane_text(app, index)
        await pilot.press("q")
    assert app.return_value == 0


async def test_a_stopped_panel_replays_its_retry_and_discarded_answers(tmp_path: Path) -> None:
    records = [
        Retry(2, "ben", 1, "rate_limited", "slow down", 429, 0.5, 3, at(0.4)),
        Discard(1, "ann", "stopped", "ann had begun", "", at(2.0)),
        Discard(2, "ben", "stopped", "ben had begun again", "", at(2.0)),
        Discard(3, "cy", "stopped", "", "", at(2.0)),
    ]
    path = write_transcript(tmp_path / "stopped.jsonl", make_panel(tmp_path),  # type: ignore[arg-type]
                            [*records, finished(records, reason="stopped")])
    app = replay_app(path, speed=4, clock=frozen_clock, blink=False)
    async with app.run_test(size=(120, 32)) as pilot:
        await until(pilot, lambda: app.model.end is not None)
        titles = [turn_views(app, index)[0].title for index in range(len(app.panes))]
        assert titles == [" answer · discarded (stopped) ",
                          " answer · attempt 2 · discarded (stopped) ",
                          " answer · discarded (stopped) "]
        assert "ben had begun again" in pane_text(app, 1)
        assert "finished: stopped by the person watching · 0 of 3 answered" in status_text(app)


# -- layout -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("agents", "width", "height", "shape"), [
    (3, 120, 30, (3, 1, False)),   # side by side
    (3, 80, 20, (2, 2, False)),    # two, then one across the width
    (2, 80, 20, (2, 1, False)),
    (5, 120, 30, (3, 2, False)),   # 3 + 2
    (7, 200, 40, (4, 2, False)),   # 4 + 3, not 5 + 2
    (12, 80, 20, (2, 6, True)),    # rows would be too low: they keep their height and scroll
    (4, 30, 40, (1, 4, False)),    # narrower than one column: stacked
    (1, 80, 20, (1, 1, False)),
])
def test_columns_wrap_into_rows(agents: int, width: int, height: int,
                                shape: tuple[int, int, bool]) -> None:
    assert grid_shape(agents, width, height) == shape


async def test_twelve_agents_stay_usable_in_a_small_terminal(tmp_path: Path) -> None:
    agents = "".join(f'[agents.a{i}]\nprovider = "scripted"\n[agents.a{i}.script]\n'
                     f'replies = ["a{i} answers."]\n' for i in range(12))
    panel = make_panel(tmp_path, '[panel]\nprompt = "Say something."\n' + agents)
    app = make_app(panel, record=False)
    async with app.run_test(size=(80, 24)) as pilot:
        await until(pilot, app.served.is_set)
        assert len(app.panes) == 12
        assert app.query_one(PanelColumns).shape == (2, 6, True)
        assert all(pane.size.width >= MIN_COLUMN - 4 for pane in app.panes)
        assert "a11 answers." in pane_text(app, 11)
        await pilot.resize_terminal(200, 50)
        await pilot.pause()
        assert app.query_one(PanelColumns).shape == (4, 3, False)


# -- screenshots ------------------------------------------------------------------------------


@pytest.mark.parametrize("size", [(120, 32), (80, 24)], ids=["wide", "narrow"])
def test_snapshot_panel(snap_compare: Callable[..., bool], tmp_path: Path,
                        size: tuple[int, int]) -> None:
    # ann and ben answer at once; cy's first token waits at a gate never opened, so the screen
    # stands still.
    text = PANEL.replace("delay = 0.02", "").replace("delay = 0.03", "").replace(
        "delay = 0.04", "")
    app = still_app(make_panel(tmp_path, text), record=False,
                    provider_factory=gated_scripted(Gate(), "cy", opening=0))

    async def run_before(pilot: Pilot[int]) -> None:
        await until(pilot, lambda: app.model.answered == 2)
        app.refresh_status()
        await pilot.pause()

    assert snap_compare(app, terminal_size=size, run_before=run_before)
