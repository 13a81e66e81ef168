"""A run without the terminal UI: the console renders events, signals stop the run.

The first SIGINT or SIGTERM stops the run at once: the streaming turn is discarded and recorded as
such, and the transcript gets its final record. A second one cancels everything immediately; the
final record is still written (shielded), so the transcript stays valid.
"""

from __future__ import annotations

import signal
import sys
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import TextIO

import anyio
from anyio.abc import TaskStatus

from intermodel.console.render import run_console, use_color
from intermodel.engine.prepare import Run
from intermodel.records import RunEnd
from intermodel.security.text import safe_line

__all__ = ["RunOpener", "exit_code_for", "run_headless", "stop_on_signals"]

# Prepares a run when entered: `functools.partial(prepared_run, pairing, ...)` or a resume.
RunOpener = Callable[[], AbstractAsyncContextManager[Run]]


def exit_code_for(end: RunEnd | None) -> int:
    if end is None or end.reason == "interrupted":
        return 130
    return 1 if end.reason == "error" else 0


async def run_headless(open_run: RunOpener, color: str = "auto") -> int:
    """Run what `open_run` prepares (a new run, or a resumed one) with console output.

    Signals are heard from before the run is prepared until it is torn down: a stop that comes
    before the run exists is applied as soon as it does (the run then ends at once, recorded)."""
    stream = sys.stdout
    end: RunEnd | None = None
    run: Run | None = None
    stopping = False

    def stop() -> None:
        nonlocal stopping
        stopping = True
        if run is not None:
            run.dialogue.controls.stop(now=True, reason="interrupted")

    async with anyio.create_task_group() as signals:
        await signals.start(stop_on_signals, stop, signals.cancel_scope.cancel)
        async with open_run() as run:
            if stopping:
                stop()
            end = await _drive(run, stream, color)
        signals.cancel_scope.cancel()
    if end is not None and end.reason == "error":
        # Also on stderr, where scripts running many pairings look for failures.
        print(f"intermodel: {safe_line(end.detail)}", file=sys.stderr)
    return exit_code_for(end)


async def _drive(run: Run, stream: TextIO, color: str) -> RunEnd | None:
    end: RunEnd | None = None
    subscription = run.dialogue.subscribe()
    async with anyio.create_task_group() as tg:
        control = run.control_server()
        if control is not None:
            await tg.start(control.serve)
        console_done = anyio.Event()

        async def console() -> None:
            try:
                await run_console(subscription, stream, color=use_color(stream, color))
            finally:
                console_done.set()

        tg.start_soon(console)
        try:
            end = await run.dialogue.run()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await console_done.wait()  # let the console show how it ended
            tg.cancel_scope.cancel()
    return end


async def stop_on_signals(stop: Callable[[], object], again: Callable[[], object], *,
                          ignore_after: bool = True,
                          task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
    """SIGINT or SIGTERM: `stop` gracefully the first time, `again` (cut everything short) on
    the next. Started with `TaskGroup.start`, it returns once the signals are listened for.

    Headless runs, batches and the terminal UI all stop this way. A command that ends when this
    does (a headless run, a batch) ignores both signals afterwards (`ignore_after`), so a late
    one cannot interrupt the last writes or kill the process by the default action asyncio puts
    back: the run has already stopped, and the process is exiting.
    """
    try:
        with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
            task_status.started()
            received = 0
            async for _ in signals:
                received += 1
                if received == 1:
                    stop()
                else:
                    again()
    finally:
        if ignore_after:
            for number in (signal.SIGINT, signal.SIGTERM):
                signal.signal(number, signal.SIG_IGN)
