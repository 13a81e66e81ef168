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

import anyio

from intermodel.console import run_console, use_color
from intermodel.records import RunEnd
from intermodel.runner import Run
from intermodel.safety import safe_line

__all__ = ["RunOpener", "exit_code_for", "run_headless", "stop_on_signals"]

# Prepares a run when entered: `functools.partial(prepared_run, pairing, ...)` or a resume.
RunOpener = Callable[[], AbstractAsyncContextManager[Run]]


def exit_code_for(end: RunEnd | None) -> int:
    if end is None or end.reason == "interrupted":
        return 130
    return 1 if end.reason == "error" else 0


async def run_headless(open_run: RunOpener, color: str = "auto") -> int:
    """Run what `open_run` prepares (a new run, or a resumed one) with console output."""
    stream = sys.stdout
    end: RunEnd | None = None
    async with open_run() as run:
        subscription = run.dialogue.subscribe()
        async with anyio.create_task_group() as tg:
            controls = run.dialogue.controls
            tg.start_soon(stop_on_signals, lambda: controls.stop(now=True, reason="interrupted"),
                          tg.cancel_scope)
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
    if end is not None and end.reason == "error":
        # Also on stderr, where scripts running many pairings look for failures.
        print(f"intermodel: {safe_line(end.detail)}", file=sys.stderr)
    return exit_code_for(end)


async def stop_on_signals(stop: Callable[[], object], scope: anyio.CancelScope) -> None:
    """SIGINT or SIGTERM: `stop` gracefully the first time, cancel `scope` the second."""
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        received = 0
        async for _ in signals:
            received += 1
            if received == 1:
                stop()
            else:
                scope.cancel()
