"""The status bar: run state, turn of budget, tokens per agent, elapsed time, transcript path.

It is worked out from the model alone after every batch of events (never per token) and repainted
only when its text changes; between events, a timer wakes it only when its text would change with
time alone (`next_change`: the elapsed time's next second, a retry's countdown), so a finished or
paused screen is not woken at all. Parts that do not fit the width are dropped from the least
important (the path) up. A panel has no
turns: its state says how many agents have answered and which are still streaming.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from intermodel.records import EndReason, RunEnd

from .model import ConversationModel
from .text import clip_start, compact, duration, plain, safe

__all__ = ["PlaybackInfo", "StatusBar", "describe_end", "next_change", "state_text"]

SEPARATOR = " │ "
NAMES_SHOWN = 4  # a panel's streaming agents named in the state; the rest are counted


@dataclass(frozen=True)
class PlaybackInfo:
    """What a replay adds to the status bar."""

    speed: float
    total_turns: int
    recorded_seconds: float
    following: str | None = None  # a transcript followed as it is written: what following does


def describe_end(end: RunEnd, *, live: bool = True) -> str:
    """How the run ended, in the words of `EndReason.outcome`, with its detail where it adds
    something ("turn budget reached (6 turns)")."""
    detail, reason = safe(end.detail), end.reason
    match reason:
        case EndReason.STOPPED:
            return "stopped by you" if live else "stopped by the person watching"
        case EndReason.ERROR:
            return f"error: {detail}"
        case EndReason.INCOMPLETE:
            return detail or reason.outcome
        case (EndReason.TOKEN_BUDGET | EndReason.TIME_BUDGET | EndReason.INTERRUPTED
              | EndReason.COMPLETE):
            return reason.outcome
        case _:
            return f"{reason.outcome} ({detail})" if detail else reason.outcome


def _names(names: list[str]) -> str:
    if len(names) > NAMES_SHOWN:
        return ", ".join(map(safe, names[:NAMES_SHOWN - 1])) + f" +{len(names) - NAMES_SHOWN + 1}"
    return ", ".join(map(safe, names))


def _retry_text(model: ConversationModel, now: float) -> str:
    assert model.retry is not None
    retry, heard = model.retry
    left = max(0, round(retry.wait - (now - heard)))
    status = f" {retry.status}" if retry.status else ""
    return (f"retrying in {left} s ({retry.error.words}{status} from "
            f"{safe(retry.agent)})")


def panel_state(model: ConversationModel, now: float) -> tuple[str, str]:
    """(text, style class) of a panel under way: "● 1 of 3 answered · streaming ann, cy"."""
    done = f"{model.answered} of {len(model.names)} answered"
    if model.retry is not None and not model.stopping:
        done += f" · ↻ {_retry_text(model, now)}"
    under_way = model.under_way  # named in the file's order, like the columns
    streaming = [n for n in model.names if n in under_way and under_way[n].state == "streaming"]
    waiting = [n for n in model.names if n in under_way and under_way[n].state == "waiting"]
    if model.stopping:
        return f"■ stopping: the answers under way are discarded · {done}", "-paused"
    if model.paused:  # only a replay pauses a panel
        return f"‖ paused · {done}", "-paused"
    if streaming:
        later = f" · waiting for {_names(waiting)}" if waiting else ""
        return f"● {done} · streaming {_names(streaming)}{later}", "-streaming"
    if waiting:
        return f"◌ {done} · waiting for {_names(waiting)}", "-waiting"
    return f"◌ {done}", "-waiting"


def next_change(model: ConversationModel, now: float,
                playback: PlaybackInfo | None = None) -> float | None:
    """Seconds from `now` until the status line would say something else with no new event: the
    elapsed time's next second, or a retry's countdown's next step. None when nothing it shows
    moves with time alone: a run that has not started or has ended, a replay (its time is the
    recording's, which moves with its events), or a run that is paused with nothing under way
    (its elapsed time is not redrawn until something happens)."""
    if model.end is not None or model.spec is None:
        return None
    waits: list[float] = []
    if model.retry is not None:
        retry, heard = model.retry
        left = retry.wait - (now - heard)
        if left > 0.5:  # the countdown shows round(left): it steps at each half second
            waits.append(left - (math.ceil(left - 0.5) - 0.5))
    if (playback is None and model.started is not None and model.finished is None
            and not (model.paused and not model.under_way)):
        waits.append(1.0 - (now - model.started) % 1.0)
    if playback is not None and playback.following is not None:
        waits.append(1.0)  # a followed transcript says how long since its last record
    return min(waits, default=None)


def state_text(model: ConversationModel, now: float) -> tuple[str, str]:
    """(text, style class) of the run's state."""
    if model.end is not None:
        style = "-error" if model.end.reason is EndReason.ERROR else "-finished"
        text = f"■ finished: {describe_end(model.end, live=model.live)}"
        if model.panel and model.end.reason is not EndReason.COMPLETE:
            text += f" · {model.answered} of {len(model.names)} answered"
        return text, style
    if model.spec is None:
        return "◌ starting", "-waiting"
    if model.panel:
        return panel_state(model, now)
    if model.retry is not None:
        return f"↻ {_retry_text(model, now)}", "-retrying"
    entry = model.in_flight
    if model.stopping:
        return "■ stopping after this turn", "-paused"
    if entry is not None:
        who = safe(entry.agent)
        if model.stepping:
            return f"▸ step: {who} speaks, then pause", "-paused"
        if model.paused:
            return ("‖ paused", "-paused") if not model.live else \
                (f"‖ pausing after {who}'s turn", "-paused")
        if entry.state == "waiting":
            return f"◌ waiting for {who}", "-waiting"
        return f"● streaming {who}", "-streaming"
    if model.paused:
        return "‖ paused", "-paused"
    return "◌ waiting", "-waiting"


class StatusBar(Static):
    """The one line at the bottom. `show` works out what it says; only a change of that (or of
    the bar's width) repaints it, so calling it every frame costs a comparison."""

    def __init__(self) -> None:
        super().__init__(markup=False, id="status")
        self.redraws = 0  # times the line was repainted (tests count them)
        self._said: _Said | None = None
        self._drawn: tuple[str, str] | None = None

    def show(self, model: ConversationModel, now: float,
             playback: PlaybackInfo | None = None) -> None:
        state, style = state_text(model, now)
        following = playback.following if playback is not None else None
        waiting = following is not None and model.end is None and not model.paused \
            and not model.under_way  # between two records: say what following waits for
        if waiting:
            state, style = f"◌ {following}", "-waiting"
        if following is not None:
            lead = "" if waiting else "following"
        else:
            lead = f"replay {playback.speed:g}×" if playback is not None else ""
        turn = f"turn {model.current_turn}/{model.max_turns}" if model.max_turns else ""
        if playback is not None and following is None:
            turn = f"turn {model.current_turn} of {playback.total_turns}"
        if model.panel:
            turn = ""  # the state says how many have answered
        tokens = " · ".join(f"{safe(name)} {compact(n)}" for name, n in
                            model.output_tokens.items()) + " tok" if model.output_tokens else ""
        total = f"{compact(sum(model.output_tokens.values()))} tok in all" if model.panel else ""
        if playback is not None:
            elapsed = f"at {duration(playback.recorded_seconds)}"
        elif model.started is not None:
            elapsed = duration((model.finished or now) - model.started)
        else:
            elapsed = ""
        self._said = _Said(state, style, lead, turn, tokens, total, elapsed,
                           model.transcript or "")
        self._draw()

    def on_resize(self) -> None:
        self._draw()  # what fits has changed

    def _draw(self) -> None:
        said = self._said
        if said is None:
            return
        state = said.state
        width = self.content_size.width or 80
        tokens = said.tokens
        if said.total and len(tokens) > width // 2:  # a panel of many agents: their sum
            tokens = said.total
        parts = [p for p in (said.lead, said.turn, tokens, said.elapsed) if p]
        # Drop the least important parts until the line fits; the state always stays.
        wanted = len(parts)
        while parts and len(state) + sum(len(p) + len(SEPARATOR) for p in parts) > width:
            parts.pop()
        used = len(state) + sum(len(p) + len(SEPARATOR) for p in parts)
        room = width - used - len(SEPARATOR)
        if said.path and room >= 12 and len(parts) == wanted:
            parts.append(clip_start(safe(said.path), room))
        rest = "".join(SEPARATOR + p for p in parts)
        if (state + rest, said.style) == self._drawn:
            return
        self._drawn = (state + rest, said.style)
        for name in ("-streaming", "-waiting", "-paused", "-retrying", "-finished", "-error"):
            self.set_class(name == said.style, name)
        self.update(Content.assemble(plain(state, "bold"), rest), layout=False)  # one line high
        self.redraws += 1


@dataclass(frozen=True, slots=True)
class _Said:
    """What the status line says, before it is fitted to the bar's width."""

    state: str
    style: str
    lead: str  # a replay's speed
    turn: str
    tokens: str
    total: str  # a panel's tokens summed, for when each agent's do not fit
    elapsed: str
    path: str
