"""Helpers shared by the terminal UI's tests."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import anyio
from textual.pilot import Pilot

from intermodel.config.model import Pairing, Panel
from intermodel.engine.events import Event, TurnCompleted
from intermodel.engine.prepare import prepared_run
from intermodel.tui import app as app_module
from intermodel.tui.app import IntermodelApp, live_app
from intermodel.tui.lines import EntryLines, line_text
from intermodel.tui.model import TurnEntry
from intermodel.tui.sources import LiveSource
from intermodel.tui.status import StatusBar

__all__ = ["HandClock", "IdleSource", "click_toggle", "frozen_clock", "make_app", "pane_text",
           "read_when", "status_text", "still_app", "toggle_label", "turn_views", "until"]


class HandClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class IdleSource(LiveSource):
    """A source that never runs anything: the test hands the screen its events itself."""

    def __init__(self) -> None:
        super().__init__(self._nothing)
        self.done = anyio.Event()

    @staticmethod
    def _nothing() -> Any:
        raise AssertionError("not served")

    async def serve(self, pump: Any) -> None:
        await self.done.wait()


def frozen_clock() -> float:
    """Elapsed time that never moves, so screenshots are the same every time."""
    return 0.0


def pane_text(app: IntermodelApp, index: int) -> str:
    """What a pane shows, every kept line of it, as plain text."""
    return "\n".join(app.panes[index].text_lines())


def turn_views(app: IntermodelApp, index: int) -> list[EntryLines]:
    """The turns a pane keeps, oldest first."""
    return [v for v in app.panes[index].views if isinstance(v.entry, TurnEntry)]


def toggle_label(view: EntryLines) -> str:
    assert view.toggle_line is not None
    return line_text(view.lines[view.toggle_line])


async def click_toggle(pilot: Pilot[Any], app: IntermodelApp, index: int,
                       view: EntryLines) -> None:
    """Click a turn's thinking line, as a person would (scrolled into view first)."""
    pane = app.panes[index]
    assert view.toggle_line is not None
    line = pane.line_of(view) + view.toggle_line
    if not 0 <= pane.row_of(line) < pane.scrollable_content_region.height:
        pane.scroll_to(y=line, animate=False, immediate=True)
    await pilot.click(pane, offset=(2, pane.row_of(line)))


def make_app(pairing: Pairing | Panel, **options: Any) -> IntermodelApp:
    return live_app(pairing, clock=frozen_clock, blink=False, **options)


class StillApp(IntermodelApp):
    """A live app for screenshots: every completed turn took no time. A turn's title shows how
    long it took, as measured, and on a busy machine even a scripted turn may take long enough
    to be shown; the frozen clock does the same for the elapsed time."""

    CSS_PATH = str(Path(app_module.__file__).with_name(IntermodelApp.CSS_PATH))  # not beside us

    def apply(self, events: Iterable[Event]) -> None:
        super().apply(TurnCompleted(replace(e.turn, latency=0.0))
                      if isinstance(e, TurnCompleted) else e for e in events)


def still_app(pairing: Pairing | Panel, **options: Any) -> IntermodelApp:
    """The app for a new run, its screen the same at any machine speed (see StillApp)."""
    return StillApp(LiveSource(partial(prepared_run, pairing, **options)), clock=frozen_clock,
                    blink=False)


async def until(pilot: Pilot[int], condition: Callable[[], object], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - screen state has no event to wait on
            await anyio.sleep(0.005)
    await pilot.pause()


T = TypeVar("T")


async def read_when(pilot: Pilot[int], condition: Callable[[], object], read: Callable[[], T],
                    timeout: float = 10) -> T:
    """`read()` at the first moment `condition()` holds, before anything else runs: for a state
    that lasts only a while (a retry's wait), which may be over once the screen has settled."""
    seen: list[T] = []

    def holds() -> bool:
        if condition():
            seen.append(read())
            return True
        return False

    await until(pilot, holds, timeout)
    return seen[0]


def status_text(app: IntermodelApp) -> str:
    app.refresh_status()
    return str(app.query_one(StatusBar).content)
