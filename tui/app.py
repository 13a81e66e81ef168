"""The Textual front end: one screen for a live run or a replay.

How events reach the screen: the source (a dialogue or a replay) runs in an async worker on the
app's loop and publishes into its bus. The app's pump waits for events, drains everything queued
(the bus has already merged adjacent chunks), applies the batch to the `ConversationModel` (the
whole history, as plain data), lets each pane catch up once (a pane keeps lines only for its
newest entries, and wraps again only what changed), then sleeps a frame (`FRAME_SECONDS`) so
tokens pile up into the next batch. The status line is worked out again with each batch and
repainted only if it changed; a one-shot timer wakes it only when time alone would change it (its
clock's next second), so a finished or paused screen sleeps. Nothing happens per token. Full
garbage collections wait for a turn's end and leave out what earlier ones found alive
(`collector.py`), so none pauses a stream; painted lines are freed as soon as they are replaced
(`strip_cycles.py`), so those collections find little.

A panel (one message, N agents answering at once) uses the same path: when its run starts, the two
dialogue columns are replaced by one column per agent (`columns.PanelView`), and every pane
catches up once per frame however many agents stream.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from functools import partial
from pathlib import Path
from typing import ClassVar

import anyio
from textual import on, work
from textual.app import App, ComposeResult
from textual.binding import BindingType
from textual.containers import Horizontal
from textual.content import Content
from textual.reactive import var
from textual.timer import Timer
from textual.widgets import Footer, Input, Static

from intermodel.config.model import Panel, RunSpec
from intermodel.engine.bus import Subscription
from intermodel.engine.events import Event, RunFinished, RunStarted, TurnCompleted, TurnDiscarded
from intermodel.engine.prepare import ProviderFactory, RunOpener, prepared_run
from intermodel.engine.signals import stop_on_signals
from intermodel.errors import IntermodelError
from intermodel.providers.registry import make_provider
from intermodel.records import exit_code_for
from intermodel.transcript.reader import GrowingTranscript, read_transcript

from . import keys, strip_cycles
from .collector import Collector
from .columns import PanelView
from .history import recorded_history
from .model import ConversationModel
from .pane import AgentPane
from .prompts import GotoBar, InterjectBar
from .quit import ConfirmQuit
from .sources import AttachedSource, FollowSource, LiveSource, ReplaySource, Source
from .status import StatusBar, next_change
from .text import plain

__all__ = ["STACK_BELOW", "IntermodelApp", "attach_app", "live_app", "replay_app", "run_attach",
           "run_replay", "run_tui"]

# How long tokens pile up between two screen updates: ten a second is as smooth as reading needs,
# and each frame of a stream repaints its growing paragraph (each new line, the whole column).
FRAME_SECONDS = 0.1
# A frame repaints every column that grew, so with more than STREAMS_PER_FRAME answers streaming
# at once frames are spaced out in proportion (12 columns: a frame every 0.15 s, which halved the
# CPU time of 12 columns at 100 tokens per second each, measured).
STREAMS_PER_FRAME = 8
TICK_SLACK = 0.01  # seconds past the moment the status line changes that its timer fires
STACK_BELOW = 100  # columns: narrower terminals show the agents one above the other
QUIT_GRACE = 10.0  # seconds a stopping run gets to finish its transcript before quitting anyway
# How long after a turn ends its full garbage collection waits: past the frame that shows the
# turn's last lines, so the two pauses do not add up.
COLLECT_AFTER = FRAME_SECONDS / 2


class IntermodelApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "intermodel"
    # Textual declares this as an instance variable; redeclaring it as a ClassVar upsets mypy.
    HORIZONTAL_BREAKPOINTS = [(0, "-narrow"), (STACK_BELOW, "-wide")]  # noqa: RUF012
    BINDINGS: ClassVar[list[BindingType]] = keys.BINDINGS
    # Textual would focus the first focusable widget: the interjection's input, hidden at once,
    # whose cursor then blinked unseen and woke an idle screen twice a second. The keys are the
    # app's, so nothing needs the focus until a bar opens or a pane is clicked.
    AUTO_FOCUS = None

    # What the footer's keys depend on, mirrored from the model after every batch of events: a
    # change refreshes the keys offered, and the status bar at once rather than at its next tick.
    paused: var[bool] = var(False, bindings=True)
    running: var[bool] = var(False, bindings=True)  # a live run that has not ended
    panel: var[bool] = var(False, bindings=True)
    stopping: var[bool] = var(False)
    # Thinking shows in every turn but those whose own toggle was clicked (see lines.py).
    show_thinking: var[bool] = var(True)

    def __init__(self, source: Source, *, clock: Callable[[], float] = time.monotonic,
                 blink: bool = True, back: bool = False) -> None:
        super().__init__()
        self.source = source
        self.back = back  # opened from the batch dashboard: Esc returns to it
        self.clock = clock
        self.blink = blink
        self.model = ConversationModel(clock, live=source.live, joined=source.remote)
        self.failure: Exception | None = None  # why a run could not start
        self.served = anyio.Event()  # the source has finished (the run ended, or the replay closed)
        self._quitting = False
        self._generation = 0
        self._status_bar = StatusBar()
        self._status_timer: Timer | None = None  # wakes the status bar when its text would change
        self._status_due = 0.0
        self._collector = Collector(clock)
        self._collect_timer: Timer | None = None
        self._panes: tuple[AgentPane, ...] = (AgentPane(self.model, 0, id="pane-a"),
                                              AgentPane(self.model, 1, id="pane-b"))
        self.set_reactive(IntermodelApp.running, source.live)

    # -- layout ---------------------------------------------------------------------------------

    def compose(self) -> ComposeResult:
        yield Static(self._header(), id="header", markup=False)
        with Horizontal(id="panes"):
            yield from (pane.frame for pane in self._panes)
        yield InterjectBar(blink=self.blink)
        yield GotoBar(blink=self.blink)
        yield self._status_bar
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        for bar in self.query(".bar"):
            bar.display = False
        if self.source.live:
            self._handle_signals()
        strip_cycles.install()  # replaced lines are freed at once, not left for a collection
        self._collector.start()  # full collections between turns only (see collector.py)
        self._serve()
        self.refresh_status()

    def on_unmount(self) -> None:
        self._collector.stop()  # what the app leaves behind can be collected again

    @property
    def panes(self) -> tuple[AgentPane, ...]:
        """One per agent: two for a dialogue, one to twelve for a panel."""
        return self._panes

    async def _show_panel(self, panel: Panel) -> None:
        """Replace the dialogue's two columns by the panel's own, before its first events."""
        panes = tuple(AgentPane(self.model, slot, id=f"pane-{slot + 1}")
                      for slot in range(len(panel.agents)))
        for pane in panes:
            pane.thinking_shown = self.show_thinking
        screen = self.default_screen  # not a question on top of it (quit was pressed early)
        focused = screen.focused in self._panes
        await self.query_one("#panes").remove()
        await screen.mount(PanelView(panel.prompt, panes), after=self.query_one("#header"))
        self._panes = panes
        if focused:  # a removed widget keeps the focus (and its key bindings) until moved
            panes[0].focus()

    def _header(self) -> Content:
        spec = self.model.spec
        mode = " attached" if self.source.remote else "" if self.source.live else " replay"
        parts: list[Content | str | tuple[str, str]] = [(f"intermodel{mode}", "bold")]
        if spec is not None:
            kind = "panel " if spec.kind == "panel" else ""
            parts += [" ─ ", plain(kind + spec.name)]
            agents = " · ".join(f"{a.name}: {a.model} ({a.provider})" for a in spec.agents)
            parts += [" ─ ", plain(agents)]
        return Content.assemble(*parts)

    # -- events ---------------------------------------------------------------------------------

    @work(name="signals", group="signals")
    async def _handle_signals(self) -> None:
        await stop_on_signals(self._interrupt, self._close, ignore_after=False)

    @work(name="source", group="source", exclusive=True)
    async def _serve(self) -> None:
        """Run the source until it is done (the app's exit cancels it, and a cancelled run
        still closes its transcript)."""
        try:
            await self.source.serve(self._pump)
        except Exception as exc:
            # A run that could not start (a missing key...) is reported after the screen closes,
            # as one line, like the headless path; anything else is a bug and crashes loudly.
            if not _expected(exc):
                raise
            self.failure = exc
            self.exit(1)
        finally:
            self.served.set()
            self._sync_state()
            self.refresh_status()
            if self._quitting:
                self.exit(exit_code_for(self.source.end))

    async def _pump(self, subscription: Subscription) -> None:
        while await subscription.wait():
            events = subscription.drain()
            if self.model.spec is None:  # the run has not started: it may be a panel's
                panel = next((e.spec for e in events if isinstance(e, RunStarted)
                              and isinstance(e.spec, Panel)), None)
                if panel is not None:
                    await self._show_panel(panel)
            self.apply(events)
            streams = sum(1 for e in self.model.under_way.values() if e.state == "streaming")
            await anyio.sleep(FRAME_SECONDS * max(1.0, streams / STREAMS_PER_FRAME))

    def apply(self, events: Iterable[Event]) -> None:
        """Show a batch of events: update the model, then let each pane catch up once."""
        model = self.model
        quiet = False  # a turn (or the run) ended: a moment to collect garbage
        for event in events:
            model.apply((event,))
            if isinstance(event, RunStarted) and event.resumed and event.transcript:
                model.apply(recorded_history(event.transcript, model.max_turns))
            quiet = quiet or isinstance(event, (TurnCompleted, TurnDiscarded, RunFinished))
        collector = self._collector
        if ((quiet and collector.due) or collector.overdue) and self._collect_timer is None:
            self._collect_timer = self.set_timer(COLLECT_AFTER, self._collect)
        changed = model.take_changed()
        with self.batch_update():
            for pane in self.panes:
                pane.sync(changed)
            if model.generation != self._generation:
                self._generation = model.generation
                self.query_one("#header", Static).update(self._header())
                self.query_one(InterjectBar).set_names(model.names)
        for notice in model.take_notices():
            self.notify(notice, markup=False, severity="warning", timeout=8)
        self._sync_state()
        self.refresh_status()  # repaints only if its text changed

    def _collect(self) -> None:
        self._collect_timer = None
        self._collector.collect()

    def _sync_state(self) -> None:
        """Mirror the model into the reactive state; only a change refreshes anything."""
        model = self.model
        self.paused = model.paused
        self.running = self.source.live and model.end is None and not self.served.is_set()
        self.panel = model.panel
        self.stopping = model.stopping

    # Each change of the state redraws the status bar at once (the keys are refreshed by Textual).
    def _watch_paused(self) -> None:
        self.refresh_status()

    def _watch_running(self) -> None:
        self.refresh_status()

    def _watch_panel(self) -> None:
        self.refresh_status()

    def _watch_stopping(self) -> None:
        self.refresh_status()

    def refresh_status(self) -> None:
        """Work out the status line again (repainted only if it changed), and wake it again when
        it would change with time alone."""
        now = self.clock()
        bar = self._status_bar  # kept, not queried: a query walks every widget on the screen
        shown = bar.is_attached  # not while the screen is being torn down
        if shown:
            bar.show(self.model, now, self.source.playback)
        wait = next_change(self.model, now, self.source.playback) if shown else None
        if wait is None:
            if self._status_timer is not None:
                self._status_timer.stop()
                self._status_timer = None
            return
        due = time.monotonic() + wait
        # A timer already due no later stays: one that fires early finds nothing changed.
        if self._status_timer is None or due < self._status_due - TICK_SLACK:
            if self._status_timer is not None:
                self._status_timer.stop()
            self._status_timer = self.set_timer(wait + TICK_SLACK, self._status_tick)
            self._status_due = due

    def _status_tick(self) -> None:
        self._status_timer = None
        self.refresh_status()

    # -- actions --------------------------------------------------------------------------------

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        needs = keys.NEEDS.get(action)
        if needs is not None and needs not in self.source.capabilities:
            return False
        if action in keys.RUNNING_ONLY and self.source.live and not self.running:
            return False
        if self.panel:
            if action in (keys.PANEL_LIVE_HIDES if self.source.live else keys.PANEL_HIDES):
                return False
        elif action == "stop_panel":
            return False
        if action == "follow":
            return not isinstance(self.focused, Input)
        if action in ("quit", "detach"):
            return self.source.remote == (action == "detach")
        if action == "go_back":
            return self.back and not isinstance(self.focused, Input)
        if action == "pause":
            return not self.paused
        if action == "resume":
            return self.paused
        return True

    def action_pause(self) -> None:
        self.source.pause()

    def action_resume(self) -> None:
        self.source.resume()

    def action_step(self) -> None:
        self.source.step()

    def action_interject(self) -> None:
        self.query_one(InterjectBar).open()

    @on(InterjectBar.Sent)
    def _interject(self, message: InterjectBar.Sent) -> None:
        if not self.source.interject(message.text, message.to):
            when = "has not started" if self.model.spec is None else "has ended"
            self.notify(f"the run {when}; the message was not sent", severity="warning")

    def action_extend(self) -> None:
        self.source.extend(keys.EXTEND_BY)

    def action_stop(self) -> None:
        self.source.stop(now=self.model.stopping or self.model.in_flight is None)
        self.model.stopping = True
        self._sync_state()

    def action_stop_panel(self) -> None:
        self.source.stop(now=True)
        self.model.stopping = True
        self._sync_state()

    def action_thinking(self) -> None:
        self.show_thinking = not self.show_thinking

    def _watch_show_thinking(self, show: bool) -> None:
        for pane in self.panes:
            pane.show_thinking(show)  # one key decides for all: clicked turns follow it too

    def action_follow(self) -> None:
        for pane in self.panes:
            pane.follow()

    def action_seek(self, delta: int) -> None:
        model = self.model
        position = model.in_flight.turn if model.in_flight else model.last_turn + 1
        self.source.seek(position + delta)

    def action_goto(self) -> None:
        self.query_one(GotoBar).open()

    @on(GotoBar.Chosen)
    def _goto(self, message: GotoBar.Chosen) -> None:
        self.source.seek(message.turn)

    def action_speed(self, factor: float) -> None:
        self.source.scale_speed(factor)
        self.refresh_status()

    async def action_quit(self) -> None:
        if not self.running:
            self._close()
            return

        def answered(stop: bool | None) -> None:
            if stop:
                self._quit_after_stop()

        self.push_screen(ConfirmQuit(), answered)

    async def action_detach(self) -> None:
        """Leave a run of another process going: ask while it runs, as quitting does."""
        if not self.running:
            self._close()
            return

        def answered(detach: bool | None) -> None:
            if detach:
                self._close()

        self.push_screen(ConfirmQuit(detach=True), answered)

    def action_go_back(self) -> None:
        self._close()  # to the dashboard, which is still watching the batch

    def _quit_after_stop(self) -> None:
        """Stop the run now and leave once its transcript is closed."""
        if self.served.is_set():  # it ended while the question was on screen
            self._close()
            return
        self._quitting = True
        self.source.stop(now=True)
        self.model.stopping = True
        self._sync_state()
        self.set_timer(QUIT_GRACE, self._close)

    def _interrupt(self) -> None:
        """SIGINT or SIGTERM, as in a headless run: stop the run now (reason `interrupted`) and
        leave once its transcript is closed; a second signal leaves at once."""
        if not self.source.live or self.served.is_set():
            self._close()
            return
        self._quitting = True
        self.source.interrupt()
        self.model.stopping = True
        self._sync_state()
        self.set_timer(QUIT_GRACE, self._close)

    def _close(self) -> None:
        self.source.close()
        self.exit(exit_code_for(self.source.end))


def _expected(exc: Exception) -> bool:
    if isinstance(exc, ExceptionGroup):
        return exc.subgroup(lambda e: isinstance(e, IntermodelError)) is not None
    return isinstance(exc, IntermodelError)


def live_app(pairing: RunSpec, *, out_dir: str | Path | None = None, record: bool = True,
             provider_factory: ProviderFactory = make_provider,
             clock: Callable[[], float] = time.monotonic, blink: bool = True) -> IntermodelApp:
    """The app for a new run of `pairing` or a panel (tests pass their own providers and
    clock)."""
    opener = partial(prepared_run, pairing, out_dir=out_dir, record=record,
                     provider_factory=provider_factory)
    return IntermodelApp(LiveSource(opener), clock=clock, blink=blink)


def replay_app(path: str | Path, *, speed: float = 1.0,
               clock: Callable[[], float] = time.monotonic, blink: bool = True,
               follow: GrowingTranscript | None = None) -> IntermodelApp:
    """The app replaying the transcript `path`; or, given `follow` (that transcript, growing),
    following it as it is written."""
    source: Source = FollowSource(follow) if follow is not None else \
        ReplaySource(read_transcript(path), speed=speed)
    return IntermodelApp(source, clock=clock, blink=blink)


def run_tui(run: RunOpener | RunSpec, *, out_dir: str | Path | None = None,
            record: bool = True) -> int:
    """Watch and steer a run in the terminal UI: a pairing or a panel to start, or an opener of a
    prepared run (a resume, a branch). 0 when it ended normally, 1 on an error, 130 when it was
    cut off without a final record."""
    if isinstance(run, RunSpec):
        run = partial(prepared_run, run, out_dir=out_dir, record=record)
    app = IntermodelApp(LiveSource(run))
    app.run()
    if app.failure is not None:
        raise app.failure
    return exit_code_for(app.source.end)


def run_replay(path: Path, *, speed: float = 1.0,
               follow: GrowingTranscript | None = None) -> int:
    """Watch a recorded run again in the terminal UI, or (`follow`) one still being written. A
    followed file that stopped being a transcript is reported once the screen closes."""
    app = replay_app(path, speed=speed, follow=follow)
    app.run()
    if isinstance(app.source, FollowSource) and app.source.failure is not None:
        raise app.source.failure
    return 0


def attach_app(socket: Path, transcript: str | None = None, *,
               clock: Callable[[], float] = time.monotonic, blink: bool = True,
               back: bool = False) -> IntermodelApp:
    """The app on a run going on in another process, reached through its control socket."""
    return IntermodelApp(AttachedSource(socket, transcript), clock=clock, blink=blink, back=back)


def run_attach(socket: Path, transcript: str | None = None, *, back: bool = False) -> int:
    """Watch and steer a run of another process until it ends or the person detaches: its exit
    code once it has ended (as the run's own), 0 when detached."""
    app = attach_app(socket, transcript, back=back)
    app.run()
    if app.failure is not None:
        raise app.failure
    end = app.source.end
    return 0 if end is None else exit_code_for(end)
