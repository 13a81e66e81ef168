"""Helpers shared by the terminal UI's tests."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
from textual.pilot import Pilot

from intermodel.config.model import Pairing, Panel
from intermodel.tui.app import IntermodelApp, live_app
from intermodel.tui.status import StatusBar

__all__ = ["frozen_clock", "make_app", "status_text", "until"]


def frozen_clock() -> float:
    """Elapsed time that never moves, so screenshots are the same every time."""
    return 0.0


def make_app(pairing: Pairing | Panel, **options: Any) -> IntermodelApp:
    return live_app(pairing, clock=frozen_clock, blink=False, **options)


async def until(pilot: Pilot[int], condition: Callable[[], object], timeout: float = 10) -> None:
    with anyio.fail_after(timeout):
        while not condition():  # noqa: ASYNC110 - screen state has no event to wait on
            await anyio.sleep(0.005)
    await pilot.pause()


def status_text(app: IntermodelApp) -> str:
    app.refresh_status()
    return str(app.query_one(StatusBar).content)
