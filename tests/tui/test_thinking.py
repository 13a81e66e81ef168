"""Thinking shows or hides everywhere with one key, and in one turn with a click on its line."""

from __future__ import annotations

import pytest

from intermodel.tui.app import IntermodelApp
from intermodel.tui.entries import ThinkingToggle, TurnView
from tests.conftest import SCRIPTED, PairingFactory
from tests.tui_support import make_app, until

pytestmark = pytest.mark.anyio

THINKING = SCRIPTED.replace(
    'replies = ["ada one", "ada two", "ada three"]',
    'replies = ["ada one", "ada two", "ada three"]\n'
    'thinking = ["ada ponders", "ada ponders again"]')


def shown(app: IntermodelApp) -> list[bool]:
    """Whether each of ada's turns shows its thinking, as the screen draws it."""
    return [all(block.display for block in view.query(".thinking"))
            for view in app.panes[0].query(TurnView)]


def labels(app: IntermodelApp) -> list[bool]:
    return ["(hidden)" not in str(toggle.content) for toggle in app.panes[0].query(ThinkingToggle)]


async def test_a_clicked_turn_differs_from_the_rest_until_the_key_decides_again(
        make_pairing: PairingFactory) -> None:
    app = make_app(make_pairing(THINKING))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, app.served.is_set)
        assert shown(app) == labels(app) == [True, True]
        await pilot.press("t")
        assert shown(app) == labels(app) == [False, False]
        await pilot.click(app.panes[0].query(ThinkingToggle).last())  # hidden elsewhere: shown
        assert shown(app) == labels(app) == [False, True]
        await pilot.click(app.panes[0].query(ThinkingToggle).last())
        assert shown(app) == labels(app) == [False, False]
        await pilot.click(app.panes[0].query(ThinkingToggle).first())
        assert shown(app) == labels(app) == [True, False]
        await pilot.press("t")  # every turn again, the clicked one included
        assert shown(app) == labels(app) == [True, True]
        await pilot.click(app.panes[0].query(ThinkingToggle).first())  # shown elsewhere: hidden
        assert shown(app) == labels(app) == [False, True]
        await pilot.press("t")
        assert shown(app) == labels(app) == [False, False]
