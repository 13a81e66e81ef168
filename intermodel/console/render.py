"""Headless output: both agents' streams as plain terminal text, a status line per turn, a summary.

`ConsoleRenderer` is a pure events → text translation (easy to test); `run_console` feeds it from a
subscription and writes in batches, at most a few dozen times a second, from a worker thread, so a
slow or paused terminal never stalls the models. All model text passes through `terminal_safe`.
Markers (a human's message, a pause, a notice) always take whole lines: one arriving mid-reply
ends the reply's line, and the reply goes on under a "… " continuation mark.
"""

from __future__ import annotations

import os
import shutil
import statistics
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TextIO

import anyio

from intermodel.config.model import Pairing, Panel
from intermodel.engine.bus import Subscription
from intermodel.engine.events import (
    BudgetExtended,
    Event,
    Flagged,
    Interjected,
    Notice,
    Paused,
    Resumed,
    Retrying,
    RunFinished,
    RunStarted,
    TextChunk,
    ThinkingChunk,
    Trimmed,
    TurnCompleted,
    TurnDiscarded,
    TurnStarted,
)
from intermodel.records import EndReason, RunEnd, Turn
from intermodel.security.text import terminal_safe

__all__ = ["ConsoleRenderer", "Style", "run_console", "use_color"]

FRAME_SECONDS = 1 / 30  # how often the console writes at most


def use_color(stream: TextIO, choice: str = "auto") -> bool:
    """`always`, `never`, or `auto`: colour on a terminal unless NO_COLOR is set (no-color.org)."""
    if choice != "auto":
        return choice == "always"
    if os.environ.get("NO_COLOR"):
        return False
    return bool(getattr(stream, "isatty", lambda: False)())


@dataclass(frozen=True)
class Style:
    color: bool

    def __call__(self, text: str, code: str) -> str:
        return f"\x1b[{code}m{text}\x1b[0m" if self.color and text else text

    def agent(self, text: str, slot: int) -> str:
        return self(text, "1;36" if slot == 0 else "1;35")

    def dim(self, text: str) -> str:
        return self(text, "2")

    def thinking(self, text: str) -> str:
        return self(text, "2;3")

    def warn(self, text: str) -> str:
        return self(text, "33")

    def bad(self, text: str) -> str:
        return self(text, "1;31")


THINK_PREFIX = "  ┆ "
CONTINUED = "… "  # where a reply goes on after a marker line cut into it


@dataclass
class ConsoleRenderer:
    style: Style
    width: int = 80
    _slots: dict[str, int] = field(default_factory=dict)
    _section: tuple[int, str] | None = None  # (turn, "text"|"thinking") being streamed
    _at_line_start: bool = True
    _interrupted: bool = False  # a marker line came in the middle of _section
    _held_space: str = ""  # a reply's trailing spaces, written only if more text follows them
    _turns: list[Turn] = field(default_factory=list)
    _started: set[int] = field(default_factory=set)  # turns streamed in front of us
    _panel: bool = False
    _transcript: str | None = None

    def render(self, events: Iterable[Event]) -> str:
        return "".join(self._render(event) for event in events)

    def _render(self, event: Event) -> str:
        s = self.style
        match event:
            case RunStarted():
                return self._run_started(event)
            case TurnStarted() | TextChunk() | ThinkingChunk() if self._panel:
                return ""  # panel answers stream at once: each is shown whole when complete
            case TurnStarted(turn=turn, agent=agent, attempt=attempt, max_turns=max_turns):
                self._started.add(turn)
                return self._header(agent, f"turn {turn}/{max_turns}"
                                    + (f" · attempt {attempt}" if attempt > 1 else ""))
            case ThinkingChunk(turn=turn, text=text):
                return self._stream(turn, "thinking", text)
            case TextChunk(turn=turn, text=text):
                return self._stream(turn, "text", text)
            case TurnCompleted(turn=done):
                self._turns.append(done)
                # A turn that was not streamed here (one a branch inherited) is shown whole.
                whole = "" if done.index in self._started else self._whole(done)
                self._section = None
                return whole + self._newline() + s.dim(self._status(done, self._panel)) + "\n"
            case Retrying(retry=r):
                dropped = f"; {r.partial_chars} characters discarded" if r.partial_chars else ""
                line = f"  ↻ {r.agent} turn {r.turn}: {r.error.words}" \
                       f"{f' {r.status}' if r.status else ''} — retrying in {r.wait:.1f} s{dropped}"
                return self._marker(s.warn(terminal_safe(line)))
            case TurnDiscarded(discard=d):
                self._section = None
                return self._marker(s.warn(f"  ✗ turn {d.turn} of {d.agent} discarded "
                                           f"({d.reason})"))
            case Interjected(interjection=i):
                to = " and ".join(i.to)
                # A message of several lines stays indented under its marker.
                text = terminal_safe(i.text).rstrip("\n").replace("\n", "\n    ")
                return self._marker(s.warn(f"  ✎ human → {to} (from turn {i.before_turn}): ")
                                    + text)
            case Paused():
                return self._marker(s.warn("  ‖ paused"))
            case Resumed(step=step):
                return self._marker(s.warn("  ▸ one step" if step else "  ▸ resumed"))
            case BudgetExtended(change=change):
                return self._marker(s.warn(f"  + budget now {change.max_turns} turns"))
            case Trimmed(trim=t):
                span = f"{t.dropped[0]}-{t.dropped[-1]}" if len(t.dropped) > 1 else \
                    "".join(map(str, t.dropped))
                why = "the server refused it" if t.cause == "server" else \
                    f"it needed about {t.estimated_tokens}"
                return self._marker(s.warn(
                    f"  ✂ {t.agent}: turns {span} dropped from its view to fit {t.window} tokens "
                    f"({why})"))
            case Flagged(flag=f):
                line = f"  ⚑ {f.detector}: {terminal_safe(f.detail)}"
                return self._marker(s.dim(line) if f.action == "mark" else s.warn(line))
            case Notice(message=message):
                return self._marker(s.warn(f"  ! {terminal_safe(message)}"))
            case RunFinished(end=end):
                return self._newline() + self._summary(end)
        return ""

    def _marker(self, line: str) -> str:
        """A marker line (a human's message, a pause, a notice…) arriving at any moment: it ends
        a reply's line first, and the reply, when it goes on, does so under CONTINUED."""
        if self._section is not None:
            self._interrupted = True
        return self._newline() + line + "\n"

    def _header(self, agent: str, what: str) -> str:
        self._section = None
        label = f"── {agent} · {what} "
        rule = self.style.dim("─" * max(3, self.width - len(label)))
        who = self.style.agent(agent, self._slots.get(agent, 0))
        return self._newline() + f"── {who} · {what} " + rule + "\n"

    def _whole(self, turn: Turn) -> str:
        what = "answer" if self._panel else f"turn {turn.index} (earlier)"
        out = self._header(turn.agent, what)
        if turn.thinking:
            out += self._stream(turn.index, "thinking", turn.thinking)
        return out + self._stream(turn.index, "text", turn.text)

    def _run_started(self, event: RunStarted) -> str:
        s = self.style
        pairing = event.spec
        self._slots = {name: i for i, name in enumerate(pairing.agent_names)}
        # A followed run's resumption names no transcript (the history is shown already): the
        # run's own file goes on all the same.
        self._transcript = event.transcript or (self._transcript if event.resumed else None)
        resumed = " (resumed)" if event.resumed else ""
        lines = [s(f"intermodel · {pairing.name}", "1") + s.dim(f" · run {event.run_id}{resumed}")]
        width = max(len(agent.name) for agent in pairing.agents)
        for i, agent in enumerate(pairing.agents):
            where = f" @ {agent.base_url}" if agent.base_url else ""
            name = s.agent(agent.name.ljust(width), i)
            lines.append(f"  {name}  {agent.provider} {agent.model}{where}")
        if event.transcript:
            lines.append(s.dim(f"  transcript: {event.transcript}"))
        match pairing:
            case Panel():
                self._panel = True
                lines.append(s.dim("  message → every agent: ") + terminal_safe(pairing.prompt))
                lines.append(s.dim(f"  {len(pairing.agents)} answers streaming; each is shown "
                                   "when it is complete"))
            case Pairing(dialogue=d) if not event.resumed:
                to = "both" if d.opener_shared else d.opener_to
                lines.append(s.dim(f"  opener → {to}: ") + terminal_safe(d.opener))
        return "\n".join(lines) + "\n"

    def _stream(self, turn: int, kind: str, text: str) -> str:
        out = ""
        if self._section != (turn, kind):
            if self._section is not None:
                out += self._newline()
            if kind == "thinking":
                out += self.style.thinking(THINK_PREFIX)
            self._section = (turn, kind)
            self._interrupted = False
        elif self._interrupted:  # the marker ended the line: say this is the same reply
            prefix = THINK_PREFIX if kind == "thinking" else ""
            out += self.style.dim(prefix + CONTINUED)
            self._interrupted = False
        # Trailing spaces wait for the text after them: a line a marker ends has none.
        text = self._held_space + terminal_safe(text)
        kept = text.rstrip(" \t")
        self._held_space = text[len(kept):]
        text = kept
        if kind == "thinking":
            text = text.replace("\n", "\n" + THINK_PREFIX)
            out += self.style.thinking(text)
        else:
            out += text
        if text:
            self._at_line_start = text.endswith("\n")
        return out

    def _newline(self) -> str:
        self._held_space = ""
        if self._at_line_start:
            return ""
        self._at_line_start = True
        return "\n"

    @staticmethod
    def _status(turn: Turn, panel: bool = False) -> str:
        parts = [f"  ✓ {turn.agent} " + ("answered" if panel else f"turn {turn.index}")]
        if turn.usage.output_tokens is not None:
            parts.append(f"{turn.usage.output_tokens} tok")
        parts.append(f"{turn.latency:.2f} s")
        if turn.ttft is not None:
            parts.append(f"first token {turn.ttft:.2f} s")
        if turn.stop_reason:
            parts.append(turn.stop_reason)
        if turn.attempts > 1:
            parts.append(f"{turn.attempts} attempts")
        if turn.model:
            parts.append(terminal_safe(turn.model))
        return " · ".join(parts)

    def _summary(self, end: RunEnd) -> str:
        s = self.style
        why = end.reason.words
        by = f" by {end.ended_by}" if end.ended_by else ""
        detail = f" ({terminal_safe(end.detail)})" if end.detail else ""
        head = f"══ finished: {why}{by}{detail} · {end.turns} turns · {end.duration:.1f} s"
        lines = [s.bad(head) if end.reason is EndReason.ERROR else s(head, "1")]
        rows = [("agent", "turns", "tokens in", "tokens out", "mean s", "first tok s", "thinking")]
        for name in self._slots:
            turns = [t for t in self._turns if t.agent == name]
            usage = end.usage.get(name)
            rows.append((
                name,
                str(len(turns)),
                _count(usage.input_tokens if usage else None),
                _count(usage.output_tokens if usage else None),
                _mean([t.latency for t in turns]),
                _mean([t.ttft for t in turns if t.ttft is not None]),
                f"{sum(len(t.thinking) for t in turns)} ch",
            ))
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        for n, row in enumerate(rows):
            cells = [row[0].ljust(widths[0])] + [c.rjust(w) for c, w in zip(row[1:], widths[1:],
                                                                           strict=True)]
            line = "  " + "  ".join(cells)
            lines.append(s.dim(line) if n == 0 else line)
        if self._transcript:
            lines.append(s.dim(f"  transcript: {self._transcript}"))
        return "\n".join(lines) + "\n"


def _count(value: int | None) -> str:
    return "—" if value is None else f"{value:,}"


def _mean(values: list[float]) -> str:
    return f"{statistics.fmean(values):.2f}" if values else "—"


async def run_console(
    subscription: Subscription,
    stream: TextIO,
    *,
    color: bool,
    width: int | None = None,
    write: Callable[[str], None] | None = None,
) -> None:
    """Render events until the run finishes. Writes happen in a worker thread, batched."""
    renderer = ConsoleRenderer(Style(color), width or shutil.get_terminal_size().columns)

    def put(text: str) -> None:
        stream.write(text)
        stream.flush()

    writer = write or put
    while await subscription.wait():
        text = renderer.render(subscription.drain())
        if text:
            await anyio.to_thread.run_sync(writer, text)
        await anyio.sleep(FRAME_SECONDS)
