"""What the screen repaints and when it wakes, counted rather than timed: the status bar repaints
only when its text changes and is woken only when time alone would change it; a new line of a
streaming reply costs one layout; nothing hidden keeps an idle screen awake."""

from __future__ import annotations

import pytest
from textual.app import App, ComposeResult
from textual.containers import VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Static

from intermodel.tui.app import IntermodelApp, live_app
from intermodel.tui.entries import Block, GrowsInPlace
from intermodel.tui.status import StatusBar, next_change
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import Gate, gated_scripted
from tests.tui_support import until

pytestmark = pytest.mark.anyio


class Clock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def bar_of(app: IntermodelApp) -> StatusBar:
    return app.query_one(StatusBar)


async def test_a_live_status_line_repaints_once_a_second_at_most(
        make_pairing: PairingFactory) -> None:
    gate = Gate()  # the first turn stays under way, so nothing but the clock can change
    clock = Clock()
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
    clock = Clock()
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


async def test_a_run_paused_between_turns_is_not_woken(make_pairing: PairingFactory) -> None:
    gate = Gate()
    clock = Clock()
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


class _Pane(VerticalScroll, GrowsInPlace):
    pass


class _Column(App[None]):
    """One scrolling column with one growing block of text, as a pane streams into a turn."""

    def __init__(self, grows_in_place: bool) -> None:
        super().__init__()
        self.grows_in_place = grows_in_place
        self.layouts = 0

    def compose(self) -> ComposeResult:
        if self.grows_in_place:
            with _Pane():
                yield Block(Content("line"), markup=False)
        else:
            with VerticalScroll():
                yield Static(Content("line"), markup=False)

    def count_layout(self, screen: Screen[object]) -> None:
        self.layouts += 1


async def layouts_for_new_lines(grows_in_place: bool) -> list[int]:
    app = _Column(grows_in_place)
    counts = []
    async with app.run_test(size=(40, 10)) as pilot:
        await pilot.pause()
        app.screen.screen_layout_refresh_signal.subscribe(app, app.count_layout, immediate=True)
        block = app.query_one(Static)
        for lines in range(2, 6):
            app.layouts = 0
            block.update(Content("\n".join(["line"] * lines)), layout=True)
            await pilot.pause()
            await pilot.pause()
            counts.append(app.layouts)
    return counts


async def test_a_new_line_of_a_growing_block_costs_one_layout() -> None:
    assert await layouts_for_new_lines(grows_in_place=True) == [1, 1, 1, 1]


async def test_textual_still_lays_a_plain_column_out_twice() -> None:
    """Why `GrowsInPlace` exists: when this fails, Textual no longer lays out again after
    storing a new virtual size, and the mixin can go."""
    assert await layouts_for_new_lines(grows_in_place=False) == [2, 2, 2, 2]
