"""The batch dashboard: every entry of a batch, its progress and its providers, on one screen.

It watches a batch through a "link": `LocalLink` runs a `Batch` inside the app's worker (what
`intermodel batch` does on a terminal), `RemoteLink` polls the socket of a batch running in another
process about twice a second (`intermodel attach experiments/NAME`). Either gives the same
snapshot (`Batch.snapshot`, or the socket's `status`), and takes pause, resume and stop.

The screen is redrawn from a timer, and only what changed is touched: a row whose entry changed,
the progress line when its text differs. An idle dashboard does a comparison twice a second.
Every piece of text in a snapshot (entry names, last lines, reasons, paths) is untrusted and shown
as plain text, never markup.

Enter on a running entry attaches to it: the dashboard hands the terminal to `intermodel attach
--back RUN_ID` (Esc there comes back), while the batch goes on in this process's event loop.
"""

from __future__ import annotations

import contextlib
import math
import sys
from pathlib import Path
from typing import Any, ClassVar, Protocol

import anyio
from rich.text import Text
from textual import on, work
from textual.app import App, ComposeResult, SuspendNotSupported
from textual.binding import Binding, BindingType
from textual.containers import Vertical
from textual.css.query import NoMatches
from textual.screen import ModalScreen
from textual.widgets import DataTable, Footer, Label, Static

from intermodel.control.client import NotListening, find_batch, request
from intermodel.engine.signals import stop_on_signals
from intermodel.errors import IntermodelError, UsageError
from intermodel.experiment.batch import Batch, BatchReport

from .text import clip_start, duration, safe

__all__ = ["POLL_SECONDS", "BatchDashboard", "BatchLink", "LocalLink", "RemoteLink",
           "attach_command", "run_dashboard_local", "run_dashboard_remote"]

POLL_SECONDS = 0.5  # how often a remote batch is asked where it stands
REFRESH_SECONDS = 0.5  # how often the screen compares the snapshot with what it shows
QUIT_GRACE = 15.0  # seconds a stopping batch gets to close its transcripts before quitting anyway
COLUMNS = ("entry", "state", "turn", "last line", "transcript")
_STATE_STYLES = {"running": "green", "retrying": "yellow", "done": "dim", "failed": "red",
                 "interrupted": "magenta", "queued": ""}


def attach_command(run_id: str) -> list[str]:
    """The command that attaches to a running entry; with `--back`, Esc there detaches, back to
    the dashboard."""
    return [sys.executable, "-m", "intermodel", "attach", "--back", run_id]


class BatchLink(Protocol):
    """What the dashboard watches and steers; commands are safe to call on the event loop."""

    remote: bool

    def snapshot(self) -> dict[str, Any] | None:
        """Where the batch stands (None until known)."""
        ...

    @property
    def gone(self) -> bool:
        """The batch has ended, or (remote) its process no longer answers."""
        ...

    async def serve(self) -> None:
        """Run the batch, or follow it, until it is over."""
        ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self, *, now: bool) -> None: ...


class LocalLink:
    """A batch run in this process, inside the dashboard's worker."""

    remote = False

    def __init__(self, batch: Batch) -> None:
        self.batch = batch
        self.report: BatchReport | None = None
        self._served = False

    def snapshot(self) -> dict[str, Any]:
        return self.batch.snapshot()

    @property
    def gone(self) -> bool:
        return self._served

    async def serve(self) -> None:
        try:
            self.report = await self.batch.run()
        finally:
            self._served = True

    def pause(self) -> None:
        self.batch.pause()

    def resume(self) -> None:
        self.batch.resume()

    def stop(self, *, now: bool) -> None:
        self.batch.stop(now=now, reason="stopped")

    def interrupt(self) -> None:
        self.batch.stop(now=True, reason="interrupted")


class RemoteLink:
    """A batch in another process, through its socket (polled; commands are sent in order)."""

    remote = True

    def __init__(self, socket: Path, *, poll: float = POLL_SECONDS) -> None:
        self.socket = socket
        self.poll = poll
        self.last: dict[str, Any] | None = None
        self.error = ""  # the last refusal or failure, for the screen
        self._gone = False
        self._send, self._commands = anyio.create_memory_object_stream[dict[str, Any]](math.inf)

    def snapshot(self) -> dict[str, Any] | None:
        return self.last

    @property
    def gone(self) -> bool:
        return self._gone

    async def serve(self) -> None:
        try:
            async with anyio.create_task_group() as tg:
                tg.start_soon(self._send_commands)
                while True:
                    reply = await self._ask({"command": "status"})
                    if reply is None:
                        break
                    if reply.get("ok") and isinstance(reply.get("status"), dict):
                        self.last = reply["status"]
                    await anyio.sleep(self.poll)
                tg.cancel_scope.cancel()
        finally:
            self._gone = True
            self._send.close()
            self._commands.close()

    async def _send_commands(self) -> None:
        async for command in self._commands:
            reply = await self._ask(command)
            if reply is not None and not reply.get("ok"):
                self.error = str(reply.get("error", "refused"))

    async def _ask(self, payload: dict[str, Any]) -> dict[str, Any] | None:
        """One request, in a thread (the client is a plain blocking one); None once nobody
        answers: the batch has ended."""
        try:
            return await anyio.to_thread.run_sync(request, self.socket, payload)
        except NotListening:
            return None
        except IntermodelError as exc:
            self.error = str(exc)
            return {"ok": False, "error": str(exc)}

    def _queue(self, payload: dict[str, Any]) -> None:
        with contextlib.suppress(anyio.ClosedResourceError, anyio.BrokenResourceError):
            self._send.send_nowait(payload)  # after the batch has gone: nobody to tell

    def pause(self) -> None:
        self._queue({"command": "pause"})

    def resume(self) -> None:
        self._queue({"command": "resume"})

    def stop(self, *, now: bool) -> None:
        self._queue({"command": "stop", "now": now})


class Confirm(ModalScreen[bool]):
    """A yes/no question over the dashboard."""

    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("y", "answer(True)", "yes"),
        Binding("n,escape", "answer(False)", "no"),
    ]

    def __init__(self, *lines: str) -> None:
        super().__init__()
        self.lines = lines

    def compose(self) -> ComposeResult:
        with Vertical(id="confirm"):
            for line in self.lines:
                yield Label(line, markup=False)
            yield Label("y  yes     n  no", markup=False, id="confirm-keys")

    def action_answer(self, yes: bool) -> None:
        self.dismiss(yes)


def _cell(text: object, style: str = "") -> Text:
    """Untrusted text as a table cell: inert, never markup (a plain str cell would be read as
    markup by the table)."""
    return Text(safe(str(text)), style=style, no_wrap=True, overflow="ellipsis")


def _row(entry: dict[str, Any]) -> tuple[Text, ...]:
    state = str(entry.get("state", ""))
    shown = state
    if state == "retrying" and entry.get("waiting"):
        shown = f"retrying: {entry['waiting']}"
    elif state == "running" and entry.get("activity") == "paused":
        shown = "paused"
    elif state == "failed" and entry.get("detail"):
        shown = f"failed: {entry['detail']}"
    unit = "answers" if entry.get("kind") == "panel" else "turn"
    turn = f"{unit} {entry.get('turns', 0)}/{entry.get('max_turns', '?')}"
    return (_cell(entry.get("key", "")), _cell(shown, _STATE_STYLES.get(state, "")),
            _cell(turn), _cell(entry.get("last", "")),
            _cell(clip_start(str(entry.get("transcript") or ""), 48), "dim"))


def progress_line(snapshot: dict[str, Any]) -> str:
    total = int(snapshot.get("total", 0)) or 1
    done, failed = int(snapshot.get("done", 0)), int(snapshot.get("failed", 0))
    width = 20
    filled = width * (done + failed) // total
    bar = "[" + "#" * filled + "-" * (width - filled) + "]"
    eta = snapshot.get("eta")
    left = f" · ETA {duration(eta)}" if isinstance(eta, int | float) else ""
    return (f"{bar} {done}/{snapshot.get('total', 0)} done · {snapshot.get('running', 0)} "
            f"running · {snapshot.get('retrying', 0)} retrying · {failed} failed · "
            f"{snapshot.get('queued', 0)} queued · {duration(snapshot.get('elapsed', 0))} "
            f"elapsed{left}")


def providers_line(snapshot: dict[str, Any]) -> str:
    providers = snapshot.get("providers") or {}
    if not isinstance(providers, dict) or not providers:
        return "providers: no requests yet"
    return "   ".join(f"{name}: {c.get('streams', 0)} streaming · {c.get('retries', 0)} retries "
                       f"· {c.get('rate_limited', 0)} × 429"
                       for name, c in providers.items() if isinstance(c, dict))


class BatchDashboard(App[int]):
    CSS_PATH = "dashboard.tcss"
    TITLE = "intermodel batch"
    BINDINGS: ClassVar[list[BindingType]] = [
        Binding("enter", "attach", "attach", show=True, priority=False),
        Binding("p", "pause", "pause", id="pause"),
        Binding("p", "resume", "resume", id="resume"),
        Binding("s", "stop", "stop after turns", id="stop"),
        Binding("x", "stop_now", "stop now", id="stop_now"),
        Binding("q", "quit", "quit", id="quit"),
    ]

    def __init__(self, link: BatchLink, *, refresh: float = REFRESH_SECONDS) -> None:
        super().__init__()
        self.link = link
        self.refresh_seconds = refresh
        self.failure: Exception | None = None
        self.served = False
        self.redraws = 0  # how many times something on screen was changed (tests read it)
        self._shown: dict[str, dict[str, Any]] = {}  # entry key -> as last shown
        self._cells: dict[str, tuple[Text, ...]] = {}
        self._lines: dict[str, str] = {}
        self._state = ""
        self._attached = False
        self._quitting = False

    def compose(self) -> ComposeResult:
        yield Static("", id="title", markup=False)
        yield Static("", id="progress", markup=False)
        yield Static("", id="providers", markup=False)
        table: DataTable[Text] = DataTable(id="entries", cursor_type="row", zebra_stripes=True)
        for column in COLUMNS:
            table.add_column(column, key=column)
        yield table
        yield Static("", id="message", markup=False)
        yield Footer(compact=True, show_command_palette=False)

    def on_mount(self) -> None:
        if not self.link.remote:
            self._handle_signals()
        self._serve()
        self.set_interval(self.refresh_seconds, self.refresh_view)
        self.refresh_view()
        self.query_one(DataTable).focus()

    # -- the batch ------------------------------------------------------------------------------

    @work(name="batch", group="batch", exclusive=True)
    async def _serve(self) -> None:
        try:
            await self.link.serve()
        except Exception as exc:
            if not _expected(exc):
                raise
            self.failure = exc
            self.exit(1)
        finally:
            self.served = True
            self.refresh_view()
            if self._quitting:
                self.exit(0)

    @work(name="signals", group="signals")
    async def _handle_signals(self) -> None:
        await stop_on_signals(self._interrupt, lambda: self.exit(130), ignore_after=False)

    def _interrupt(self) -> None:
        """SIGINT or SIGTERM: stop every entry now and leave once the batch has ended."""
        if isinstance(self.link, LocalLink):
            self.link.interrupt()
        self._leave_when_served()

    def _leave_when_served(self) -> None:
        if self.served:
            self.exit(0)
            return
        self._quitting = True
        self.set_timer(QUIT_GRACE, lambda: self.exit(0))

    # -- the screen -----------------------------------------------------------------------------

    def refresh_view(self) -> None:
        """Bring the screen up to the snapshot, touching only what changed."""
        if self._attached:
            return  # the terminal belongs to the attached run
        with contextlib.suppress(NoMatches):  # the screen is being torn down
            self._show(self.link.snapshot())

    def _show(self, snapshot: dict[str, Any] | None) -> None:
        if snapshot is None:
            self._set_line("#title", "waiting for the batch…" if not self.link.gone
                           else "the batch is not answering")
            return
        gone = self.link.gone
        state = "ended" if gone and snapshot.get("state") != "finished" else \
            str(snapshot.get("state", ""))
        where = " (in another process)" if self.link.remote else ""
        self._set_line("#title", f"batch {snapshot.get('experiment', '')}{where} · {state}")
        self._set_line("#progress", progress_line(snapshot))
        self._set_line("#providers", providers_line(snapshot))
        error = getattr(self.link, "error", "")
        self._set_line("#message", f"refused: {error}" if error else "")
        self._update_rows(snapshot.get("entries") or [])
        if state != self._state:
            self._state = state
            self.refresh_bindings()

    def _set_line(self, selector: str, text: str) -> None:
        if self._lines.get(selector) != text:
            self._lines[selector] = text
            self.query_one(selector, Static).update(safe(text))
            self.redraws += 1

    def _update_rows(self, entries: list[Any]) -> None:
        table: DataTable[Text] = self.query_one(DataTable)
        for entry in entries:
            if not isinstance(entry, dict):
                continue
            key = str(entry.get("key", ""))
            if self._shown.get(key) == entry:
                continue
            cells = _row(entry)
            before = self._cells.get(key)
            if before is None:
                table.add_row(*cells, key=key)
            else:
                # Only the cells that changed: usually one (the last line, or the state).
                for column, cell, old in zip(COLUMNS, cells, before, strict=True):
                    if cell != old:
                        table.update_cell(key, column, cell)
            self._shown[key] = entry
            self._cells[key] = cells
            self.redraws += 1

    def entry_state(self, key: str) -> str:
        """The state shown for an entry (tests read it)."""
        return str(self._shown.get(key, {}).get("state", ""))

    # -- keys -----------------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return not self.link.gone and self._state not in ("finished", "ended", "")

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        if action in ("pause", "resume", "stop", "stop_now"):
            if not self.running or self._state.startswith("stopping"):
                return False
            if action == "pause":
                return self._state != "paused"
            if action == "resume":
                return self._state == "paused"
        return True

    def action_pause(self) -> None:
        self.link.pause()
        self.notify("pausing: running turns finish, then every run waits; no new run starts",
                    markup=False)

    def action_resume(self) -> None:
        self.link.resume()

    def action_stop(self) -> None:
        self.link.stop(now=False)
        self.notify("stopping after the running turns; no new run starts", markup=False)

    def action_stop_now(self) -> None:
        def answered(yes: bool | None) -> None:
            if yes:
                self.link.stop(now=True)

        self.push_screen(Confirm("Stop every running entry now?",
                                 "Streaming turns are discarded; transcripts are closed.",
                                 "Running the batch again carries on where it stopped."),
                         answered)

    async def action_quit(self) -> None:
        if self.link.remote or not self.running:
            self.exit(0)  # a remote batch goes on without us
            return

        def answered(yes: bool | None) -> None:
            if yes:
                self.link.stop(now=True)
                self._leave_when_served()

        self.push_screen(Confirm("The batch is still going, in this process.",
                                 "Quitting stops it: every running entry stops now, its "
                                 "transcript closed.",
                                 "Run the same command again to carry on. Quit?"), answered)

    async def action_attach(self) -> None:
        table = self.query_one(DataTable)
        if not table.row_count:
            return
        key = table.coordinate_to_cell_key(table.cursor_coordinate).row_key.value or ""
        await self.attach(key)

    @on(DataTable.RowSelected)
    async def _selected(self, message: DataTable.RowSelected) -> None:
        await self.attach(message.row_key.value or "")

    async def attach(self, key: str) -> None:
        """Hand the terminal to `intermodel attach` on this entry until it detaches; the batch
        goes on meanwhile (the subprocess is awaited, not waited for)."""
        entry = self._shown.get(key, {})
        run_id = entry.get("run_id")
        if entry.get("state") not in ("running", "retrying") or not isinstance(run_id, str):
            self.notify(f"{safe(key)} is not running: nothing to attach to", markup=False,
                        severity="warning")
            return
        try:
            with self.suspend():
                self._attached = True
                try:
                    await anyio.run_process(attach_command(run_id), stdin=None, stdout=None,
                                            stderr=None, check=False)
                finally:
                    self._attached = False
        except SuspendNotSupported:
            self.notify("this terminal cannot be handed over: run `intermodel attach "
                        f"{run_id}` in another one", markup=False, severity="warning")
        self.refresh_view()


def _expected(exc: Exception) -> bool:
    if isinstance(exc, ExceptionGroup):
        return exc.subgroup(lambda e: isinstance(e, IntermodelError)) is not None
    return isinstance(exc, IntermodelError)


def run_dashboard_local(batch: Batch) -> BatchReport:
    """Run `batch` under the dashboard (the terminal is the app's until it is left)."""
    link = LocalLink(batch)
    app = BatchDashboard(link)
    app.run()
    if app.failure is not None:
        raise app.failure
    return link.report or batch.report()


def run_dashboard_remote(target: str) -> int:
    """Open the dashboard of a batch running in another process: `target` is its experiment
    file (`experiments/NAME.toml`), the experiment's name, or the batch's id. Leaving detaches;
    the batch goes on."""
    found = find_batch(target)
    if found is None:
        raise UsageError(f"no batch of {safe(target)!r} is running (see `intermodel status`)")
    app = BatchDashboard(RemoteLink(found.socket))
    app.run()
    return 0
