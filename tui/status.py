"""The status bar: run state, turn of budget, tokens per agent, elapsed time, transcript path.

It is redrawn from a timer a few times a second (never per token), from the model alone. Parts
that do not fit the width are dropped from the least important (the path) up. A panel has no
turns: its state says how many agents have answered and which are still streaming.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.content import Content
from textual.widgets import Static

from intermodel.records import EndReason, RunEnd

from .model import ConversationModel
from .text import clip_start, compact, duration, plain, safe

__all__ = ["PlaybackInfo", "StatusBar", "describe_end", "state_text"]

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
    def __init__(self) -> None:
        super().__init__(markup=False, id="status")

    def show(self, model: ConversationModel, now: float,
             playback: PlaybackInfo | None = None) -> None:
        state, style = state_text(model, now)
        following = playback.following if playback is not None else None
        waiting = following is not None and model.end is None and not model.paused \
            and not model.under_way  # between two records: say what following waits for
        if waiting:
            state, style = f"◌ {following}", "-waiting"
        for name in ("-streaming", "-waiting", "-paused", "-retrying", "-finished", "-error"):
            self.set_class(name == style, name)
        parts: list[str] = []
        if following is not None:
            if not waiting:
                parts.append("following")
        elif playback is not None:
            parts.append(f"replay {playback.speed:g}×")
        turn = f"turn {model.current_turn}/{model.max_turns}" if model.max_turns else ""
        if playback is not None and following is None:
            turn = f"turn {model.current_turn} of {playback.total_turns}"
        if model.panel:
            turn = ""  # the state says how many have answered
        tokens = " · ".join(f"{safe(name)} {compact(n)}" for name, n in
                            model.output_tokens.items()) + " tok" if model.output_tokens else ""
        width = self.content_size.width or 80
        if model.panel and len(tokens) > width // 2:  # many agents: their sum
            tokens = f"{compact(sum(model.output_tokens.values()))} tok in all"
        if playback is not None:
            elapsed = f"at {duration(playback.recorded_seconds)}"
        elif model.started is not None:
            elapsed = duration((model.finished or now) - model.started)
        else:
            elapsed = ""
        parts += [p for p in (turn, tokens, elapsed) if p]
        # Drop the least important parts until the line fits; the state always stays.
        wanted = len(parts)
        while parts and len(state) + sum(len(p) + len(SEPARATOR) for p in parts) > width:
            parts.pop()
        used = len(state) + sum(len(p) + len(SEPARATOR) for p in parts)
        path = model.transcript or ""
        room = width - used - len(SEPARATOR)
        if path and room >= 12 and len(parts) == wanted:
            parts.append(clip_start(safe(path), room))
        line = Content.assemble(plain(state, "bold"), *(SEPARATOR + p for p in parts))
        self.update(line, layout=False)  # always one line high
