"""Asking before quitting while a run is live: quitting stops it (the transcript is closed)."""

from __future__ import annotations

from typing import ClassVar

from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.screen import ModalScreen
from textual.widgets import Label

__all__ = ["ConfirmQuit"]


class ConfirmQuit(ModalScreen[bool]):
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "stop and quit", id="quit.yes"),
        Binding("n,escape", "answer(False)", "keep watching", id="quit.no"),
    ]

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label("The run is still going.", markup=False)
            yield Label("Stop it and quit? The transcript is closed properly.", markup=False)
            yield Label("y  stop and quit     n  keep watching", markup=False, id="confirm-keys")

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)
