"""The input bars at the bottom of the screen: an interjection to the agents, or a turn to seek to.

Each bar opens on demand, takes the focus, and closes on Enter (posting its message) or Escape. The
run keeps streaming while a person types.
"""

from __future__ import annotations

from typing import ClassVar

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding, BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.message import Message
from textual.widgets import Input, Label, Static

from .text import plain

__all__ = ["GotoBar", "InterjectBar"]


class _Bar(Horizontal):
    BINDINGS: ClassVar[list[BindingType]] = [Binding("escape", "close", "cancel", id="bar.cancel")]

    def __init__(self, *, id: str, blink: bool, placeholder: str, digits: bool = False) -> None:
        super().__init__(id=id, classes="bar")
        self._input = Input(placeholder=placeholder, restrict=r"[0-9]*" if digits else None,
                            type="integer" if digits else "text")
        self._input.cursor_blink = blink

    def open(self) -> None:
        self.display = True
        self._input.value = ""
        self._input.focus()

    def action_close(self) -> None:
        self.display = False
        self.screen.focus_next()


class InterjectBar(_Bar):
    """A message for agent A, agent B or both; Tab switches who it is for."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("tab", "cycle_target", "switch addressee", id="interject.target")]

    class Sent(Message):
        def __init__(self, text: str, to: str) -> None:
            super().__init__()
            self.text = text
            self.to = to  # an agent name or "both"

    def __init__(self, *, blink: bool = True) -> None:
        super().__init__(id="interject", blink=blink,
                         placeholder="message · Enter sends · Tab switches addressee · Esc cancels")
        self.targets: tuple[str, ...] = ("both",)
        self.target = "both"
        self._switch = Static(markup=False, id="target")

    def compose(self) -> ComposeResult:
        yield Label("✎ to", id="interject-label")
        yield self._switch
        yield self._input

    def set_names(self, names: tuple[str, ...]) -> None:
        self.targets = (*names, "both")
        if self.target not in self.targets:
            self.target = "both"
        self._show_target()

    def action_cycle_target(self) -> None:
        index = self.targets.index(self.target)
        self.target = self.targets[(index + 1) % len(self.targets)]
        self._show_target()

    def _show_target(self) -> None:
        parts = [plain(f" {t} ", "reverse bold" if t == self.target else "dim")
                 for t in self.targets]
        self._switch.update(Content(" ").join(parts))

    @on(Input.Submitted)
    def _send(self, event: Input.Submitted) -> None:
        event.stop()
        text = event.value.strip()
        if text:
            self.post_message(self.Sent(text, self.target))
        self.action_close()


class GotoBar(_Bar):
    """The number of a turn to replay from."""

    class Chosen(Message):
        def __init__(self, turn: int) -> None:
            super().__init__()
            self.turn = turn

    def __init__(self, *, blink: bool = True) -> None:
        super().__init__(id="goto", blink=blink, digits=True,
                         placeholder="turn number · Enter jumps · Esc cancels")

    def compose(self) -> ComposeResult:
        yield Label("go to turn", id="goto-label")
        yield self._input

    @on(Input.Submitted)
    def _chosen(self, event: Input.Submitted) -> None:
        event.stop()
        if event.value.isdigit():
            self.post_message(self.Chosen(int(event.value)))
        self.action_close()
