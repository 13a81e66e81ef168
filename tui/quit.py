"""Asking before quitting while a run is live: quitting stops it (the transcript is closed) — or,
for a run in another process that the screen is attached to, leaves it going."""

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
        Binding("y", "answer(True)", "yes", id="quit.yes"),
        Binding("n,escape", "answer(False)", "keep watching", id="quit.no"),
    ]

    def __init__(self, *, detach: bool = False) -> None:
        super().__init__()
        self.detach = detach  # the run is another process's: quitting leaves it going

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            yield Label("The run is still going.", markup=False)
            if self.detach:
                yield Label("Detach? The run goes on in its own process; "
                            "`intermodel attach` comes back to it.", markup=False)
                yield Label("y  detach     n  keep watching", markup=False, id="confirm-keys")
            else:
                yield Label("Stop it and quit? The transcript is closed properly.",
                            markup=False)
                yield Label("y  stop and quit     n  keep watching", markup=False,
                            id="confirm-keys")

    def action_answer(self, stop: bool) -> None:
        self.dismiss(stop)
