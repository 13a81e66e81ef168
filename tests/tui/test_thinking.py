"""Thinking shows or hides everywhere with one key, and in one turn with a click on its line."""

from __future__ import annotations

import pytest

from intermodel.tui.app import IntermodelApp
from intermodel.tui.lines import line_text
from tests.conftest import SCRIPTED, PairingFactory
from tests.tui_support import click_toggle, make_app, toggle_label, turn_views, until

pytestmark = pytest.mark.anyio

THINKING = SCRIPTED.replace(
    'replies = ["ada one", "ada two", "ada three"]',
    'replies = ["ada one", "ada two", "ada three"]\n'
    'thinking = ["ada ponders", "ada ponders again"]')


def shown(app: IntermodelApp) -> list[bool]:
    """Whether each of ada's turns shows its thinking, as the screen draws it."""
    return [view.thinking_showing and "ponders" in "\n".join(map(line_text, view.lines))
            for view in turn_views(app, 0)]


def labels(app: IntermodelApp) -> list[bool]:
    return ["(hidden)" not in toggle_label(view) for view in turn_views(app, 0)]


async def test_a_clicked_turn_differs_from_the_rest_until_the_key_decides_again(
        make_pairing: PairingFactory) -> None:
    app = make_app(make_pairing(THINKING))
    async with app.run_test(size=(120, 40)) as pilot:
        await until(pilot, app.served.is_set)
        assert shown(app) == labels(app) == [True, True]
        await pilot.press("t")
        assert shown(app) == labels(app) == [False, False]
        await click_toggle(pilot, app, 0, turn_views(app, 0)[-1])  # hidden elsewhere: shown
        assert shown(app) == labels(app) == [False, True]
        await click_toggle(pilot, app, 0, turn_views(app, 0)[-1])
        assert shown(app) == labels(app) == [False, False]
        await click_toggle(pilot, app, 0, turn_views(app, 0)[0])
        assert shown(app) == labels(app) == [True, False]
        await pilot.press("t")  # every turn again, the clicked one included
        assert shown(app) == labels(app) == [True, True]
        await click_toggle(pilot, app, 0, turn_views(app, 0)[0])  # shown elsewhere: hidden
        assert shown(app) == labels(app) == [False, True]
        await pilot.press("t")
        assert shown(app) == labels(app) == [False, False]
