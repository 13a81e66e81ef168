"""A run without the terminal UI: the console renders events, signals stop the run.

The first SIGINT or SIGTERM stops the run at once: the streaming turn is discarded and recorded as
such, and the transcript gets its final record. A second one cancels everything immediately; the
final record is still written (shielded), so the transcript stays valid.
"""

from __future__ import annotations

import sys
from typing import TextIO

import anyio

from intermodel.console.render import run_console, use_color
from intermodel.control.server import ControlServer
from intermodel.engine.prepare import Run, RunOpener
from intermodel.engine.signals import stop_on_signals
from intermodel.records import EndReason, RunEnd, exit_code_for
from intermodel.security.text import safe_line

__all__ = ["run_headless"]


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
            run.session.controls.stop(now=True, reason=EndReason.INTERRUPTED)

    async with anyio.create_task_group() as signals:
        await signals.start(stop_on_signals, stop, signals.cancel_scope.cancel)
        async with open_run() as run:
            if stopping:
                stop()
            end = await _drive(run, stream, color)
        signals.cancel_scope.cancel()
    if end is not None and end.reason is EndReason.ERROR:
        # Also on stderr, where scripts running many pairings look for failures.
        print(f"intermodel: {safe_line(end.detail)}", file=sys.stderr)
    return exit_code_for(end)


async def _drive(run: Run, stream: TextIO, color: str) -> RunEnd | None:
    end: RunEnd | None = None
    subscription = run.session.subscribe()
    server = ControlServer(run.session, run.transcript) if run.transcript is not None else None
    async with anyio.create_task_group() as tg:
        if server is not None:  # found by its transcript, for `intermodel say` and `attach`
            await tg.start(server.serve)
        console_done = anyio.Event()

        async def console() -> None:
            try:
                await run_console(subscription, stream, color=use_color(stream, color))
            finally:
                console_done.set()

        tg.start_soon(console)
        try:
            end = await run.session.run()
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await console_done.wait()  # let the console show how it ended
                if server is not None:
                    await server.let_viewers_finish()
            tg.cancel_scope.cancel()
    return end
