"""Stopping a run from the outside: SIGINT and SIGTERM.

The first signal stops the run at once: the streaming turn is discarded and recorded as such, and
the transcript gets its final record. A second one cuts everything short; the final record is
still written (shielded), so the transcript stays valid. Every front end that drives runs (the
headless console, the terminal UI, a batch) listens with `stop_on_signals`.
"""

from __future__ import annotations

import signal
from collections.abc import Callable

import anyio
from anyio.abc import TaskStatus

__all__ = ["stop_on_signals"]


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
