"""The terminal UI, driven through Textual's Pilot: every control, replay, safety and layouts.

Live runs use scripted agents whose replies stream a word at a time; where a key press must land
while a turn streams, the turn waits at a gate (tests/fakes.py) that the test opens once the key
has been heard. Each test waits for a precise state, never a fixed time.
Screenshots come from replays of transcripts written from fixed records, so they are repeatable.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from functools import partial
from pathlib import Path

import anyio
import pytest
from textual.pilot import Pilot
from textual.widgets import Input

from intermodel.config.model import AgentConfig, Pairing
from intermodel.errors import MissingKeyError, RateLimited
from intermodel.lineage.resume import prepared_resume
from intermodel.providers.base import Provider
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Discard, Turn
from intermodel.security.secrets import Credentials
from intermodel.transcript.reader import read_transcript
from intermodel.tui.app import IntermodelApp, replay_app
from intermodel.tui.lines import strip
from intermodel.tui.model import HumanEntry
from intermodel.tui.pane import KEEP_ENTRIES
from intermodel.tui.quit import ConfirmQuit
from intermodel.tui.sources import LiveSource
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import FailingProvider, Gate, gated_scripted
from tests.transcripts import finished, interjection, turn, write_transcript
from tests.tui_support import (
    click_toggle,
    frozen_clock,
    make_app,
    pane_text,
    read_when,
    status_text,
    still_app,
    toggle_label,
    turn_views,
    until,
)

# Ten one-word chunks a few ms apart, so a turn is seen streaming (gates decide the order).
SLOW = SCRIPTED.replace("max_turns = 4", "max_turns = 6").replace(
    'replies = ["ada one", "ada two", "ada three"]',
    'replies = ["ada speaks in ten small words, one at a time, slowly."]\n'
    'thinking = ["ada ponders what to say before saying it."]\ndelay = 0.005',
).replace(
    'replies = ["bo one", "bo two", "bo three"]',
    'replies = ["bo answers in ten small words too, word by word."]\ndelay = 0.005',
)
INJECTION = "[bold red]loud[/] [link=https://example.com]x[/link] \x1b[2J\x1b]0;pwned\x07 end"





async def type_text(pilot: Pilot[int], text: str) -> None:
    await pilot.press(*("space" if c == " " else c for c in text))



def providers(app: IntermodelApp) -> dict[str, ScriptedProvider]:
    """The run's scripted providers, unwrapped from any gate."""
    run = app.source.run  # type: ignore[union-attr]
    assert run is not None
    return {name: getattr(p, "inner", p) for name, p in run.providers.items()}


def human_lines(provider: ScriptedProvider) -> list[str]:
    return [m.content for r in provider.requests for m in r.messages if "[Human]" in m.content]


pytestmark = pytest.mark.anyio


# -- a live run -------------------------------------------------------------------------------


async def test_a_live_run_streams_both_agents_into_their_columns(
        make_pairing: PairingFactory) -> None:
    gate = Gate()  # ada's first turn streams until it has been seen streaming
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate))
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, lambda: app.model.in_flight is not None
                    and app.model.in_flight.state == "streaming")
        assert "streaming ada" in status_text(app)
        assert app.panes[0].frame.has_class("-speaking")
        gate.open()
        await until(pilot, app.served.is_set)
        ada, bo = pane_text(app, 0), pane_text(app, 1)
        assert ada.count("ada speaks in ten small words") == 3
        assert "bo answers" not in ada
        assert bo.count("bo answers in ten small words") == 3
        assert "opener → ada: Hello there." in ada
        assert "finished: turn budget reached (6 turns)" in status_text(app)
        assert "turn 6/6" in status_text(app)
        transcript = read_transcript(app.source.run.transcript)  # type: ignore[union-attr]
        assert transcript.end is not None and len(transcript.turns) == 6


async def test_pause_waits_after_the_streaming_turn_and_resume_goes_on(
        make_pairing: PairingFactory) -> None:
    gate = Gate()  # ada's first turn streams until the pause has been seen
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("space")
        await until(pilot, lambda: app.model.paused)
        assert "pausing after ada's turn" in status_text(app)
        gate.open()
        await until(pilot, lambda: app.model.in_flight is None)
        assert "paused" in status_text(app)
        await anyio.sleep(0.3)
        assert app.model.last_turn == 1 and app.model.in_flight is None
        await pilot.press("space")
        await until(pilot, app.served.is_set)
        assert app.model.last_turn == 6


async def test_step_runs_exactly_one_turn_then_pauses(make_pairing: PairingFactory) -> None:
    gate = Gate()  # the first turn streams until the step has been heard
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("n")  # while running: finish this turn, then pause
        await until(pilot, lambda: app.model.paused)
        gate.open()
        await until(pilot, lambda: app.model.paused and app.model.in_flight is None)
        assert app.model.last_turn == 1
        await pilot.press("n")
        await until(pilot, lambda: app.model.last_turn == 2)
        await anyio.sleep(0.3)
        assert app.model.last_turn == 2 and app.model.paused
        assert "paused" in status_text(app)
        await pilot.press("space")
        await until(pilot, app.served.is_set)


@pytest.mark.parametrize(("presses", "reaches"), [(1, {"ada"}), (2, {"bo"}), (0, {"ada", "bo"})])
async def test_an_interjection_reaches_the_chosen_agents_next_request(
        make_pairing: PairingFactory, presses: int, reaches: set[str]) -> None:
    gate = Gate()  # the first turn streams until the pause has been heard
    app = make_app(make_pairing(SLOW.replace("max_turns = 6", "max_turns = 3")),
                   provider_factory=gated_scripted(gate))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("space")  # pause after turn 1, so the message lands before turn 2
        await until(pilot, lambda: app.model.paused)
        gate.open()
        await until(pilot, lambda: app.model.paused and app.model.in_flight is None)
        await pilot.press("i")
        assert isinstance(app.focused, Input)
        for _ in range(presses):  # both → ada → bo
            await pilot.press("tab")
        await type_text(pilot, "name one doubt")  # spaces type into the input, not pause
        assert app.model.paused
        await pilot.press("enter")
        await until(pilot, lambda: any(isinstance(v.entry, HumanEntry) and not v.entry.opener
                                       for pane in app.panes for v in pane.views))
        await pilot.press("space")
        await until(pilot, app.served.is_set)
        agents = providers(app)
        next_request = {"ada": agents["ada"].requests[1], "bo": agents["bo"].requests[0]}
        for name, provider in agents.items():
            if name in reaches:  # the message is in the agent's very next request
                assert "[Human]: name one doubt" in next_request[name].messages[-1].content
            else:
                assert not human_lines(provider)
        shown = {name for i, name in enumerate(("ada", "bo")) if "doubt" in pane_text(app, i)}
        assert shown == reaches
        label = "both" if len(reaches) == 2 else next(iter(reaches))
        assert f"human → {label}: name one doubt" in pane_text(app, 0 if "ada" in reaches else 1)


async def test_escape_cancels_an_interjection(make_pairing: PairingFactory) -> None:
    gate = Gate()  # the run is live while the message is typed and given up
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("i")
        assert isinstance(app.focused, Input)
        await type_text(pilot, "never sent")
        await pilot.press("escape")
        assert not isinstance(app.focused, Input)
        gate.open()
        await until(pilot, app.served.is_set)
        assert all(not human_lines(p) for p in providers(app).values())


async def test_extend_raises_the_budget(make_pairing: PairingFactory) -> None:
    gate = Gate()  # the run cannot end before the extension is heard
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("plus")
        await until(pilot, lambda: app.model.max_turns == 8)
        gate.open()
        await until(pilot, app.served.is_set)
        assert app.model.last_turn == 8
        assert "turn 8/8" in status_text(app)


async def test_stop_ends_after_the_streaming_turn_and_closes_the_transcript(
        make_pairing: PairingFactory) -> None:
    gate = Gate()  # bo's turn streams until the stop has been seen on the status bar
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate, "bo"))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.last_turn == 1 and app.model.in_flight is not None)
        await pilot.press("s")
        await until(pilot, lambda: "stopping after this turn" in status_text(app))
        assert app.model.last_turn == 1
        gate.open()
        await until(pilot, app.served.is_set)
        assert app.model.last_turn == 2  # the streaming turn was finished, not cut
        assert "finished: stopped by you" in status_text(app)
        transcript = read_transcript(app.source.run.transcript)  # type: ignore[union-attr]
        assert transcript.end is not None and transcript.end.reason == "stopped"
        assert transcript.torn is None
        await pilot.press("s", "space", "n")  # the run is over: these do nothing
        assert app.model.last_turn == 2


async def test_a_second_stop_cuts_the_streaming_turn(make_pairing: PairingFactory) -> None:
    gate = Gate()  # never opened: the first turn is still streaming when the stops land
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None
                    and app.model.in_flight.state == "streaming")
        await pilot.press("s", "s")
        await until(pilot, app.served.is_set)
        assert app.model.last_turn == 0
        records = read_transcript(app.source.run.transcript).records  # type: ignore[union-attr]
        assert any(isinstance(r, Discard) and r.reason == "stopped" for r in records)
        [view] = turn_views(app, 0)
        assert view.entry.state == "discarded"
        assert "discarded (stopped)" in view.title


async def test_quit_asks_while_the_run_is_live(make_pairing: PairingFactory) -> None:
    gate = Gate()  # never opened: the run is still live when the questions come
    app = make_app(make_pairing(SLOW), provider_factory=gated_scripted(gate))
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("q")
        assert isinstance(app.screen, ConfirmQuit)
        await pilot.press("n")
        assert not isinstance(app.screen, ConfirmQuit)
        assert not app.served.is_set()
        await pilot.press("q", "y")
        await until(pilot, app.served.is_set)
    assert app.return_value == 0
    transcript = read_transcript(app.source.run.transcript)  # type: ignore[union-attr]
    assert transcript.end is not None and transcript.end.reason == "stopped"


async def test_quit_after_the_run_exits_at_once(make_pairing: PairingFactory) -> None:
    app = make_app(make_pairing())
    async with app.run_test() as pilot:
        await until(pilot, app.served.is_set)
        await pilot.press("q")
        await pilot.pause()
        assert not isinstance(app.screen, ConfirmQuit)
    assert app.return_value == 0


async def test_one_key_hides_and_shows_all_thinking(make_pairing: PairingFactory) -> None:
    app = make_app(make_pairing(SLOW.replace("max_turns = 6", "max_turns = 3")))
    async with app.run_test() as pilot:
        await until(pilot, app.served.is_set)
        thinking = [v for i in (0, 1) for v in turn_views(app, i) if v.toggle_line is not None]
        assert len(thinking) == 2 and all(v.thinking_showing for v in thinking)
        await pilot.press("t")
        assert not any(v.thinking_showing for v in thinking)
        assert all("(hidden)" in toggle_label(v) for v in thinking)
        assert "ponders" not in pane_text(app, 0)
        await pilot.press("t")
        assert all(v.thinking_showing for v in thinking)
        first = next(v for v in turn_views(app, 0) if v.toggle_line is not None)
        await click_toggle(pilot, app, 0, first)  # one turn on its own
        assert "(hidden)" in toggle_label(first)


async def test_the_view_follows_until_scrolled_up_and_end_returns(
        make_pairing: PairingFactory) -> None:
    # ada's fifth reply (turn 9) streams its first piece, then waits: by then her column
    # scrolls, and it stands still while the keys are checked.
    gate = Gate()
    app = make_app(make_pairing(SLOW.replace("max_turns = 6", "max_turns = 20")),
                   provider_factory=gated_scripted(gate, "ada", after=4))
    async with app.run_test(size=(80, 24)) as pilot:
        pane = app.panes[0]
        await until(pilot, lambda: app.model.in_flight is not None
                    and app.model.in_flight.turn == 9 and app.model.in_flight.state == "streaming")
        assert pane.max_scroll_y > 3
        assert pane.following
        assert pane.scroll_y == pane.max_scroll_y
        width = pane.scrollable_content_region.width
        # Following, the column shows its scrollbar only under the mouse; the text never moves.
        assert pane.styles.scrollbar_size_vertical == 0
        await pilot.hover(pane)
        assert pane.styles.scrollbar_size_vertical == 1
        await pilot.hover(app.query_one("#header"))
        assert pane.styles.scrollbar_size_vertical == 0
        pane.focus()
        await pilot.press("pageup")
        assert not pane.following
        assert pane.scroll_y < pane.max_scroll_y
        await pilot.pause()
        assert pane.styles.scrollbar_size_vertical == 1  # scrolled up: the bar is back
        assert pane.scrollable_content_region.width == width
        await pilot.press("end")
        assert pane.following
        await pilot.pause()
        assert pane.scroll_y == pane.max_scroll_y
        await pilot.press("s", "s")
        await until(pilot, app.served.is_set)


async def test_a_retry_shows_in_the_status_bar(make_pairing: PairingFactory) -> None:
    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        inner = ScriptedProvider(agent, partner)
        if agent.name != "ada":
            return inner
        return FailingProvider(inner, [RateLimited("slow down", status=429, retry_after=0.5)])

    app = make_app(make_pairing(), provider_factory=factory)
    async with app.run_test(size=(120, 24)) as pilot:
        state = await read_when(pilot, lambda: app.model.retry is not None,
                                lambda: status_text(app))
        assert re.search(r"↻ retrying in \d+ s \(rate limited 429 from ada\) │ turn 1/4", state)
        await until(pilot, app.served.is_set)
        assert "attempt 2" in turn_views(app, 0)[0].title


async def test_a_run_that_cannot_start_reports_why(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED.replace(
        '[agents.ada]\nprovider = "scripted"', '[agents.ada]\nprovider = "anthropic"\n'
        'model = "claude-haiku-4-5"').replace(
        '[agents.ada.script]\nreplies = ["ada one", "ada two", "ada three"]', ""))
    app = make_app(pairing)
    async with app.run_test() as pilot:
        await until(pilot, app.served.is_set)
    assert isinstance(app.failure, MissingKeyError)
    assert app.return_value == 1


async def test_model_text_is_never_markup_or_terminal_control(
        make_pairing: PairingFactory) -> None:
    evil = INJECTION.replace("\x1b", "\\u001b").replace("\x07", "\\u0007")
    pairing = make_pairing(SCRIPTED.replace('"ada one"', f'"{evil}"').replace(
        "[agents.ada]", '[agents.ada]\nmodel = "[red]m[/red]"'))
    app = make_app(pairing)
    async with app.run_test(size=(200, 30)) as pilot:
        await until(pilot, app.served.is_set)
        view = turn_views(app, 0)[0]
        [line] = view.lines[1:]  # under the title, as one line of text in one style
        reply = strip(line, app.panes[0].palette)
        assert reply.text == "[bold red]loud[/] [link=https://example.com]x[/link] " \
                             "␛[2J␛]0;pwned␇ end"
        assert {segment.style for segment in reply} == {app.panes[0].palette.reply}
        assert "[red]m[/red] (scripted)" in str(app.panes[0].frame.border_title) \
            .replace("\\[", "[")
        screen = app.export_screenshot()
        assert "\x1b" not in screen and "pwned" in screen


async def test_a_resumed_run_shows_the_turns_it_continues(make_pairing: PairingFactory,
                                                         tmp_path: Path) -> None:
    crashed = recorded(tmp_path, make_pairing(), turns=2, end=False)
    app = IntermodelApp(LiveSource(partial(prepared_resume, crashed)), clock=frozen_clock,
                        blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        await until(pilot, app.served.is_set)
        assert "ada says line 1 of the recorded run." in pane_text(app, 0)
        assert "bo, be brief." not in pane_text(app, 0)
        assert app.model.last_turn == 4
        assert "finished: turn budget reached" in status_text(app)


# -- replay -----------------------------------------------------------------------------------


def recorded(tmp_path: Path, pairing: Pairing, turns: int = 6, *, end: bool = True,
             torn: str = "") -> Path:
    records: list[Turn | object] = []
    for i in range(1, turns + 1):
        agent = "ada" if i % 2 else "bo"
        thinking = f"{agent} thinks about turn {i}." if agent == "ada" else ""
        records.append(turn(i, agent, f"{agent} says line {i} of the recorded run.",
                            done_at=2.0 * i, latency=1.5, ttft=0.2, thinking=thinking))
        if i == 2:
            records.append(interjection(4, ("bo",), "bo, be brief.", sent_at=2.0 * i + 0.5))
    if end:
        records.append(finished(records))  # type: ignore[arg-type]
    return write_transcript(tmp_path / "run.jsonl", pairing, records, torn=torn)  # type: ignore[arg-type]


async def test_replay_shows_a_recorded_run_with_pause_seek_and_speed(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    app = replay_app(recorded(tmp_path, make_pairing()), speed=4, clock=frozen_clock, blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        replay = app.source.replay  # type: ignore[union-attr]
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("space")
        await until(pilot, lambda: app.model.paused)
        assert "paused" in status_text(app) and "replay 4×" in status_text(app)
        shown = app.model.current_turn
        await anyio.sleep(0.3)
        assert app.model.current_turn == shown
        await pilot.press("greater_than_sign", "greater_than_sign", "less_than_sign")
        assert replay.speed == 8
        await pilot.press("g")
        await type_text(pilot, "5")
        await pilot.press("enter")
        await until(pilot, lambda: app.model.last_turn == 4)
        assert app.model.paused  # seeking keeps the pause
        assert "ada says line 3" in pane_text(app, 0)
        assert "bo, be brief." in pane_text(app, 1)
        await pilot.press("left_square_bracket")
        await until(pilot, lambda: app.model.last_turn == 3)
        await pilot.press("right_square_bracket", "right_square_bracket", "space")
        await until(pilot, lambda: app.model.end is not None)
        assert app.model.last_turn == 6
        assert "finished: turn budget reached" in status_text(app)
        await pilot.press("q")
    assert replay.bus is not None


async def test_replay_of_a_crashed_run_says_so(make_pairing: PairingFactory,
                                               tmp_path: Path) -> None:
    path = recorded(tmp_path, make_pairing(), turns=3, end=False, torn='{"kind": "tu')
    app = replay_app(path, speed=1000, clock=frozen_clock, blink=False)
    async with app.run_test(size=(120, 24)) as pilot:
        await until(pilot, lambda: app.model.end is not None)
        assert "finished: transcript ends without a final record" in status_text(app)
        assert app.model.last_turn == 3


async def test_long_histories_keep_only_a_tail_mounted(make_pairing: PairingFactory,
                                                       tmp_path: Path) -> None:
    path = recorded(tmp_path, make_pairing(), turns=300)
    app = replay_app(path, speed=1000, clock=frozen_clock, blink=False)
    async with app.run_test(size=(100, 30)) as pilot:
        app.source.replay.seek(300)  # type: ignore[union-attr]
        await until(pilot, lambda: app.model.end is not None)
        pane = app.panes[0]
        assert len(app.model.entries["ada"]) == 151
        assert pane.kept <= KEEP_ENTRIES
        assert len(turn_views(app, 0)) <= KEEP_ENTRIES
        hidden = pane.hidden
        assert "earlier entries" in pane_text(app, 0)
        pane.focus()
        await pilot.press("home")
        await until(pilot, lambda: pane.hidden < hidden)
        assert not pane.following
        await pilot.press("end")
        await until(pilot, lambda: pane.hidden == hidden)


# -- screenshots ------------------------------------------------------------------------------


def finished_replay(tmp_path: Path, pairing: Pairing) -> IntermodelApp:
    return replay_app(recorded(tmp_path, pairing), speed=1000, clock=frozen_clock, blink=False)


async def _until_finished(pilot: Pilot[int]) -> None:
    app = pilot.app
    assert isinstance(app, IntermodelApp)
    await until(pilot, lambda: app.model.end is not None)
    app.refresh_status()
    await pilot.pause()


@pytest.mark.parametrize("size", [(120, 32), (80, 24)], ids=["wide", "narrow"])
def test_snapshot_layouts(snap_compare: Callable[..., bool], make_pairing: PairingFactory,
                          tmp_path: Path, size: tuple[int, int]) -> None:
    app = finished_replay(tmp_path, make_pairing())
    assert snap_compare(app, terminal_size=size, run_before=_until_finished)


def test_snapshot_thinking_hidden_and_interjecting(
        snap_compare: Callable[..., bool], make_pairing: PairingFactory) -> None:
    # bo never answers within the test (his first token waits at a gate never opened), so the
    # screen stands still at "waiting for bo".
    app = still_app(make_pairing(SLOW.replace("delay = 0.005", "")), record=False,
                    provider_factory=gated_scripted(Gate(), "bo", opening=0))

    async def run_before(pilot: Pilot[int]) -> None:
        await until(pilot, lambda: app.model.in_flight is not None
                    and app.model.in_flight.agent == "bo")
        await pilot.press("t", "i", "tab", "tab", "h", "i")
        app.refresh_status()
        await pilot.pause()

    assert snap_compare(app, terminal_size=(100, 24), run_before=run_before)


def test_snapshot_injection_is_plain_text(snap_compare: Callable[..., bool],
                                          make_pairing: PairingFactory, tmp_path: Path) -> None:
    records = [turn(1, "ada", INJECTION, done_at=1.0, thinking="[i]not italic[/i] \x1b[31m")]
    path = write_transcript(tmp_path / "evil.jsonl", make_pairing(), [*records,
                                                                       finished(records)])
    app = replay_app(path, speed=1000, clock=frozen_clock, blink=False)
    assert snap_compare(app, terminal_size=(100, 20), run_before=_until_finished)
