"""`replay --follow` without the terminal UI: a growing transcript printed as a live run prints.

Like `tail -f`, with the headless console's colour and safety (model text through
`terminal_safe`). It ends with the run's `end` record and exits as the run's command would have
(`exit_code_for`); Ctrl-C or SIGTERM stops following at once, quietly, with 130.
"""

from __future__ import annotations

import sys

import anyio

from intermodel.console.render import run_console, use_color
from intermodel.engine.signals import stop_on_signals
from intermodel.errors import EXIT_SIGNAL, TranscriptInvalid
from intermodel.lineage.follow import Follow
from intermodel.records import EndReason, exit_code_for
from intermodel.security.text import safe_line
from intermodel.transcript.reader import GrowingTranscript

__all__ = ["follow_headless"]


async def follow_headless(growing: GrowingTranscript, color: str = "auto",
                          follow: Follow | None = None) -> int:
    """Print `growing` as it is written until its run ends (`follow`: a prepared one, for
    tests that set its pace)."""
    follow = follow or Follow(growing, until_end=True)
    stream = sys.stdout
    subscription = follow.subscribe()
    interrupted = broken = False
    failure: TranscriptInvalid | None = None

    def stop() -> None:
        nonlocal interrupted
        interrupted = True
        follow.close()

    async with anyio.create_task_group() as tg:
        await tg.start(stop_on_signals, stop, stop)
        console_done = anyio.Event()

        async def console() -> None:
            nonlocal broken
            try:
                await run_console(subscription, stream, color=use_color(stream, color))
            except BrokenPipeError:  # piped into something that stopped reading (`| head`)
                broken = True
                follow.close()
            finally:
                console_done.set()

        tg.start_soon(console)
        try:
            await follow.run()
        except TranscriptInvalid as exc:
            failure = exc  # reported once what came before it is on screen
        finally:
            with anyio.CancelScope(shield=True), anyio.move_on_after(5):
                await console_done.wait()
            tg.cancel_scope.cancel()
    if interrupted:
        return EXIT_SIGNAL
    if broken:
        raise BrokenPipeError  # the command line's own exit for a closed pipe
    if failure is not None:
        raise failure
    end = follow.end
    if end is not None and end.reason is EndReason.ERROR:
        print(f"intermodel: {safe_line(end.detail)}", file=sys.stderr)
    return exit_code_for(end)
