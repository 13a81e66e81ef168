"""A run of another process on the console: `intermodel attach --headless`.

Like `tail -f` on the run, with the headless console's colour and safety (model text never
reaches the terminal as escape sequences): the run's history first, each earlier turn whole, then
its turns as they stream, until it ends. SIGINT or SIGTERM detaches; the run goes on.
"""

from __future__ import annotations

import sys
from pathlib import Path

import anyio

from intermodel.console.render import run_console, use_color
from intermodel.control.watch import Watch
from intermodel.engine.bus import EventBus
from intermodel.engine.signals import stop_on_signals
from intermodel.errors import EXIT_OK, IntermodelError
from intermodel.records import exit_code_for

__all__ = ["attach_headless"]


async def attach_headless(socket: Path, transcript: str | None = None,
                          color: str = "auto") -> int:
    """Show the run at `socket` until it ends (its exit code) or this viewer detaches (0).
    Raises an `IntermodelError` when the run cannot be reached or the connection breaks."""
    stream = sys.stdout
    watch = Watch(socket, transcript, announce_turns=False)
    bus = EventBus()
    subscription = bus.subscribe()
    watching = anyio.CancelScope()
    console_done = anyio.Event()
    detached = False

    def detach() -> None:
        nonlocal detached
        detached = True
        watch.stop()
        if watch.reader.header is None:
            watching.cancel()  # still connecting: nothing is being read yet

    async def console() -> None:
        try:
            await run_console(subscription, stream, color=use_color(stream, color))
        finally:
            console_done.set()

    async with anyio.create_task_group() as tg:
        await tg.start(stop_on_signals, detach, tg.cancel_scope.cancel)
        tg.start_soon(console)
        with watching:
            try:
                await watch.serve(bus.publish)
            finally:
                bus.close()  # the console shows what is left, then ends
        with anyio.move_on_after(5):
            await console_done.wait()
        tg.cancel_scope.cancel()
    if detached:
        print("intermodel: detached; the run goes on", file=sys.stderr)
        return EXIT_OK
    if watch.end is None:
        reason = watch.dropped or "the connection to the run was lost (its process ended " \
            "without a final record?)"
        raise IntermodelError(reason)
    return exit_code_for(watch.end)
