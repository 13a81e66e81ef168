"""The screen's key bindings, and which of them apply to what is on screen.

The footer shows only the keys that do something now: `IntermodelApp.check_action` hides the
others using the tables below (a replay has no interjections, a finished run no stop, a panel no
turns to pause between or step through).
"""

from __future__ import annotations

from textual.binding import Binding, BindingType

from .sources import Capability

__all__ = ["BINDINGS", "EXTEND_BY", "NEEDS", "PANEL_HIDES", "PANEL_LIVE_HIDES", "RUNNING_ONLY"]

EXTEND_BY = 2  # turns added by one press of the budget key: one more exchange

# The capability of the source an action needs; actions not listed need none.
NEEDS = {
    "step": Capability.STEP,
    "interject": Capability.INTERJECT,
    "extend": Capability.EXTEND,
    "stop": Capability.STOP,
    "stop_panel": Capability.STOP,
    "seek": Capability.SEEK,
    "goto": Capability.SEEK,
    "speed": Capability.SPEED,
}
# A live run takes these only until it ends; a replay stays open to be paused and sought.
RUNNING_ONLY = {"pause", "resume", "step", "interject", "extend", "stop", "stop_panel"}
# A panel's answers stream at once and end together: nothing to pause between, step through,
# extend, interject into or seek to; its stop ends every answer now.
PANEL_HIDES = {"step", "interject", "extend", "stop", "seek", "goto"}
PANEL_LIVE_HIDES = PANEL_HIDES | {"pause", "resume"}

BINDINGS: list[BindingType] = [
    Binding("space", "pause", "pause", id="pause", tooltip="Pause before the next turn"),
    Binding("space", "resume", "resume", id="resume", tooltip="Go on from where it paused"),
    Binding("n", "step", "step", id="step", tooltip="Run one more turn, then pause"),
    Binding("i", "interject", "interject", id="interject",
            tooltip="Write to agent A, agent B or both; they see it from their next turn"),
    Binding("t", "thinking", "thinking", id="thinking", tooltip="Show or hide all thinking"),
    Binding("plus", "extend", "more turns", key_display="+", id="extend",
            tooltip=f"Raise the turn budget by {EXTEND_BY}"),
    Binding("left_square_bracket", "seek(-1)", "prev", key_display="[",
            id="seek-back", tooltip="Replay from the turn before"),
    Binding("right_square_bracket", "seek(1)", "next", key_display="]",
            id="seek-forward", tooltip="Skip to the next turn"),
    Binding("g", "goto", "go to", id="goto", tooltip="Replay from a turn number"),
    Binding("less_than_sign", "speed(0.5)", "slower", key_display="<", id="slower",
            tooltip="Halve the replay speed"),
    Binding("greater_than_sign", "speed(2)", "faster", key_display=">", id="faster",
            tooltip="Double the replay speed"),
    # A priority binding, so that End means "back to the live end" even in a focused pane;
    # check_action lets it through to a focused input, where End moves the cursor.
    Binding("end", "follow", "live", id="follow", priority=True,
            tooltip="Jump to the newest text and follow it again"),
    Binding("s", "stop", "stop", id="stop",
            tooltip="End the run after this turn; press again to end it now"),
    Binding("s", "stop_panel", "stop", id="stop-panel",
            tooltip="End the panel now; the answers under way are discarded"),
    Binding("q", "quit", "quit", id="quit", tooltip="Quit (asks first while a run is live)"),
    Binding("q", "detach", "detach", id="detach",
            tooltip="Close this screen; the run goes on in its own process"),
    Binding("escape", "go_back", "back", id="back",
            tooltip="Back to the batch; the run goes on"),
]
