"""Fixtures shared by the hostile tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.fakeserver import FakeServer


@pytest.fixture
def server() -> Iterator[FakeServer]:
    """A fake server of the test's own (a module may define its own `server` instead)."""
    with FakeServer() as srv:
        yield srv
