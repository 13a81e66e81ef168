"""A panel's screen: its message once at the top, then one column per agent, wrapped into rows.

The message is shown once rather than at the top of every column: it is the same for every agent
(that is the point of a panel), and repeating it would cost each column the same lines again, a
third of a column at 80x24. Above the columns it stays in view while the answers scroll; it is
capped at a few lines (and scrolls) so a long message cannot crowd them out.

How columns wrap (`grid_shape`): as many columns side by side as fit at least `MIN_COLUMN` cells
wide (always at least one), the agents spread evenly over the rows this needs (7 agents where 5
fit: 4 + 3, not 5 + 2), the last column of the last row spanning what is left. When the rows
would be lower than `MIN_ROW` lines, every row gets `MIN_ROW` lines and the columns scroll as a
whole (12 agents at 80x24: two columns, six rows, scrolled). At 80x24, 3 agents get two columns
of 40 cells over a full-width third.
"""

from __future__ import annotations

from math import ceil

from textual.app import ComposeResult
from textual.containers import Container, Vertical, VerticalScroll
from textual.content import Content
from textual.events import Resize
from textual.widgets import Static

from .pane import AgentPane
from .text import plain

__all__ = ["MIN_COLUMN", "MIN_ROW", "PanelColumns", "PanelView", "grid_shape"]

MIN_COLUMN = 36  # cells, border and scrollbar included: about 30 characters of answer a line
MIN_ROW = 8  # lines, border included: a title rule and five lines of answer


def grid_shape(agents: int, width: int, height: int) -> tuple[int, int, bool]:
    """(columns, rows, scrolls) for `agents` columns in a width x height area."""
    agents = max(agents, 1)
    fit = max(1, width // MIN_COLUMN)
    rows = ceil(agents / min(agents, fit))
    columns = ceil(agents / rows)
    return columns, rows, height < rows * MIN_ROW


class PanelColumns(Container):
    """The agents' panes in a grid, rearranged whenever its size changes."""

    def __init__(self, panes: tuple[AgentPane, ...]) -> None:
        super().__init__(id="columns")
        self.panes = panes
        self.shape = (0, 0, False)

    def compose(self) -> ComposeResult:
        yield from (pane.frame for pane in self.panes)

    def on_resize(self, event: Resize) -> None:
        # The region, not the content size: a scrollbar appearing must not change the shape.
        region = self.region
        self.reshape(region.width, region.height)

    def reshape(self, width: int, height: int) -> None:
        shape = grid_shape(len(self.panes), width, height)
        if shape == self.shape:
            return
        self.shape = columns, rows, scrolls = shape
        styles = self.styles
        styles.grid_size_columns = columns
        styles.grid_size_rows = rows
        styles.grid_rows = str(MIN_ROW) if scrolls else "1fr"
        for pane in self.panes:
            pane.frame.styles.column_span = 1
        self.panes[-1].frame.styles.column_span = columns * rows - len(self.panes) + 1


class PanelView(Vertical):
    """The message sent to every agent, above their columns."""

    def __init__(self, message: str, panes: tuple[AgentPane, ...]) -> None:
        super().__init__(id="panel")
        self.message = message
        self.columns = PanelColumns(panes)

    def compose(self) -> ComposeResult:
        with VerticalScroll(id="message"):
            yield Static(Content.assemble(("✎ message → every agent: ", "bold"),
                                          plain(self.message)), markup=False)
        yield self.columns
