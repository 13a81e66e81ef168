"""What the screen repaints and when it wakes, counted rather than timed: the status bar repaints
only when its text changes and is woken only when time alone would change it; a new line of a
streaming reply repaints the lines that changed; nothing hidden keeps an idle screen awake."""

from __future__ import annotations

import gc
from typing import Any

import pytest
from textual.strip import Strip

from intermodel.engine.events import RunStarted, TextChunk, TurnCompleted, TurnStarted
from intermodel.records import Turn, Usage, now_iso
from intermodel.tui.app import IntermodelApp, live_app
from intermodel.tui.pane import AgentPane
from intermodel.tui.status import StatusBar, next_change
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import Gate, gated_scripted
from tests.tui_support import HandClock, IdleSource, until

pytestmark = pytest.mark.anyio



def bar_of(app: IntermodelApp) -> StatusBar:
    return app.query_one(StatusBar)


async def test_a_live_status_line_repaints_once_a_second_at_most(
        make_pairing: PairingFactory) -> None:
    gate = Gate()  # the first turn stays under way, so nothing but the clock can change
    clock = HandClock()
    app = live_app(make_pairing(SCRIPTED), provider_factory=gated_scripted(gate), clock=clock,
                   blink=False, record=False)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        bar = bar_of(app)
        started = app.model.started
        assert started is not None
        clock.now = started + 0.25
        app.refresh_status()
        drawn = bar.redraws
        for _ in range(5):  # the same text, worked out again every frame: never repainted
            app.refresh_status()
        clock.now = started + 0.9
        app.refresh_status()
        assert bar.redraws == drawn
        assert next_change(app.model, clock.now) == pytest.approx(0.1)  # at the next second
        clock.now = started + 1.05
        app.refresh_status()
        assert bar.redraws == drawn + 1
        assert "00:00:01" in str(bar.content)
        gate.open()
        await until(pilot, app.served.is_set)


async def test_a_finished_run_is_never_repainted_nor_woken(make_pairing: PairingFactory) -> None:
    clock = HandClock()
    app = live_app(make_pairing(SCRIPTED), clock=clock, blink=False, record=False)
    async with app.run_test() as pilot:
        await until(pilot, app.served.is_set)
        bar = bar_of(app)
        drawn, shown = bar.redraws, str(bar.content)
        assert "finished" in shown
        assert next_change(app.model, clock.now) is None
        clock.now += 3600  # an hour later the line says the same
        for _ in range(5):
            app.refresh_status()
        assert (bar.redraws, str(bar.content)) == (drawn, shown)


async def test_what_lives_as_long_as_the_app_is_out_of_the_collectors_walk_until_it_ends(
        make_pairing: PairingFactory) -> None:
    # A full collection walks every tracked object; the app's own (modules, widgets, styles)
    # are frozen while it runs, and given back when it ends, so what it leaves can be collected.
    assert gc.get_freeze_count() == 0
    app = live_app(make_pairing(SCRIPTED), blink=False, record=False)
    async with app.run_test() as pilot:
        await until(pilot, app.served.is_set)
        frozen = gc.get_freeze_count()
        assert frozen > 10_000
        assert len(gc.get_objects()) < frozen  # the run's objects are few beside the app's
    assert gc.get_freeze_count() == 0


async def test_a_run_paused_between_turns_is_not_woken(make_pairing: PairingFactory) -> None:
    gate = Gate()
    clock = HandClock()
    app = live_app(make_pairing(SCRIPTED), provider_factory=gated_scripted(gate), clock=clock,
                   blink=False, record=False)
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        await pilot.press("space")  # pause after the turn under way
        await until(pilot, lambda: app.model.paused)
        assert next_change(app.model, clock.now) is not None  # still streaming: the clock runs
        gate.open()
        await until(pilot, lambda: app.model.paused and app.model.in_flight is None)
        assert "paused" in str(bar_of(app).content)
        assert next_change(app.model, clock.now) is None
        await pilot.press("space")
        await until(pilot, app.served.is_set)


async def test_nothing_hidden_has_the_focus(make_pairing: PairingFactory) -> None:
    """The interjection bar's input is hidden until `i`: focused, its cursor would blink unseen
    (waking the screen twice a second) and End would not follow the live end."""
    gate = Gate()
    app = live_app(make_pairing(SCRIPTED), provider_factory=gated_scripted(gate),
                   record=False)  # the cursor blinks, as for a person
    async with app.run_test() as pilot:
        await until(pilot, lambda: app.model.in_flight is not None)
        assert app.focused is None
        assert app.check_action("follow", ())
        await pilot.press("i")  # an open bar takes the focus
        assert app.focused is not None and app.focused.display
        await pilot.press("escape")
        gate.open()
        await until(pilot, app.served.is_set)



class _CountingPane(AgentPane):
    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.painted: list[int] = []

    def _paint(self, line: Strip, index: int) -> Strip:
        self.painted.append(index)
        return super()._paint(line, index)


def counting_app() -> tuple[IdleSource, IntermodelApp, _CountingPane]:
    """An app whose first pane counts the lines it paints, fed by hand."""
    source = IdleSource()
    app = IntermodelApp(source, clock=lambda: 0.0, blink=False)
    pane = _CountingPane(app.model, 0, id="counted")
    app._panes = (pane, app.panes[1])
    return source, app, pane


async def test_a_frame_repaints_the_lines_that_changed_not_the_column(
        make_pairing: PairingFactory) -> None:
    """A stream that only lengthens its last line repaints that line; one that adds lines scrolls
    without laying the screen out, and paints only the new lines."""
    source, app, pane = counting_app()
    async with app.run_test(size=(100, 20)) as pilot:
        app.apply([RunStarted("r", make_pairing(SCRIPTED), None, now_iso()),
                   TurnStarted(1, "ada", 1, 10)])
        words = [f"w{i} " for i in range(40)]
        app.apply([TextChunk(1, "ada", "\n\n".join(" ".join(words) for _ in range(12)))])
        await pilot.pause()
        assert pane.following and pane.max_scroll_y > 0
        pane.painted.clear()
        app.apply([TextChunk(1, "ada", " more")])  # the last line grows
        await pilot.pause()
        last = pane.virtual_size.height - 1
        assert pane.painted == [last]
        pane.painted.clear()
        layouts: list[object] = []
        app.screen.screen_layout_refresh_signal.subscribe(app, layouts.append, immediate=True)
        app.apply([TextChunk(1, "ada", " and" * 60)])  # lines more: the column scrolls
        await pilot.pause()
        assert pane.scroll_y == pane.max_scroll_y
        assert not layouts  # a longer scroll range is not a new layout of the screen
        # The grown line and the new ones; the rest of the column moved up, painted as before.
        assert pane.painted == list(range(last, pane.virtual_size.height))
        source.done.set()
        await until(pilot, app.served.is_set)


async def test_a_turns_end_repaints_what_it_changed_and_a_theme_every_line(
        make_pairing: PairingFactory) -> None:
    """At each turn's start and end the frame's border changes colour (a CSS class), and Textual
    applies the CSS to the pane again: its lines are painted again only if their styles changed,
    as a new theme changes them."""
    source, app, pane = counting_app()
    async with app.run_test(size=(100, 20)) as pilot:
        app.apply([RunStarted("r", make_pairing(SCRIPTED), None, now_iso()),
                   TurnStarted(1, "ada", 1, 10)])
        words = " ".join(f"w{i}" for i in range(40))
        text = "\n\n".join(words for _ in range(12))
        app.apply([TextChunk(1, "ada", text)])
        await pilot.pause()
        assert pane.frame.has_class("-speaking")
        rows = pane.scrollable_content_region.height
        pane.painted.clear()
        done = Turn(1, "ada", text, usage=Usage(10, 2), latency=1.0, ttft=0.1,
                    stop_reason="end_turn", model="scripted", at=now_iso())
        app.apply([TurnCompleted(done), TurnStarted(2, "bo", 1, 10)])
        await pilot.pause()
        assert not pane.frame.has_class("-speaking")
        assert len(pane.painted) < rows // 2  # the lines that changed, not the column

        before = pane.palette
        painted = pane.render_line(rows - 1)
        pane.painted.clear()
        app.theme = "textual-light"
        await pilot.pause()
        await pilot.pause()
        assert pane.palette != before
        assert len(pane.painted) >= rows  # every line in view, in the new colours
        assert pane.render_line(rows - 1) != painted
        source.done.set()
        await until(pilot, app.served.is_set)


async def test_a_short_column_that_grows_shows_every_line_where_it_now_is(
        make_pairing: PairingFactory) -> None:
    """A short history sits at the bottom of its column, so each new line moves every line up;
    none may be left where it was (what the screen shows is what the pane holds)."""
    source = IdleSource()
    app = IntermodelApp(source, clock=lambda: 0.0, blink=False)
    async with app.run_test(size=(100, 24)) as pilot:
        pane = app.panes[0]

        def shown() -> list[str]:
            size = pane.size
            return [strip.text.rstrip() for strip in pane.render_lines(size.region)]

        def held() -> list[str]:
            lines = [line.rstrip() for line in pane.text_lines()]
            height = pane.size.height
            top = max(0, height - len(lines))
            return ([""] * top + lines)[round(pane.scroll_y):][:height]

        app.apply([RunStarted("r", make_pairing(SCRIPTED), None, now_iso()),
                   TurnStarted(1, "ada", 1, 10), TextChunk(1, "ada", "one\ntwo")])
        await pilot.pause()
        assert shown() == held()
        for n in range(3, 30):  # a line at a time: short, then just full, then scrolling
            app.apply([TextChunk(1, "ada", f"\nline {n}")])
            await pilot.pause()
            assert shown() == held(), n
        source.done.set()
        await until(pilot, app.served.is_set)
