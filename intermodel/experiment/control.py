"""A batch's own control socket: where the batch stands, and pause, resume and stop for all its
entries at once. `intermodel status` lists batches through it, and `intermodel attach
experiments/NAME` opens the dashboard of a batch running in another process.

It lives in the runtime dir (`<runtime dir>/<batch id>.sock`, mode 600, in a folder private to
the user) and is registered there with `"kind": "batch"`, the experiment's name and file. Like a
run's socket (`intermodel.control.server`) it answers only its own user (peer credentials), serves
at most `connection_cap` connections at once, and closes a connection that sends no request
within `IDLE_SECONDS`. One JSON line in, one out:

    {"command": "status"}               ->  {"ok": true, "status": {batch snapshot}}
    {"command": "pause"} / "resume"     ->  {"ok": true, "accepted": "..."}
    {"command": "stop"}                 ->  every running entry stops after its streaming turn
    {"command": "stop", "now": true}    ->  every running entry stops at once

The snapshot is `Batch.snapshot()`; replies are cleaned of secrets on their way out.
"""

from __future__ import annotations

import contextlib
import json
import os
import resource
from pathlib import Path
from typing import Any, Protocol

import anyio
from anyio.abc import SocketAttribute, SocketListener, SocketStream, TaskGroup, TaskStatus

from intermodel.config.experiment import Experiment
from intermodel.control.paths import peer_uid, runtime_dir
from intermodel.control.registry import register, unregister
from intermodel.control.server import (
    IDLE_SECONDS,
    _read_line,
    _redacted,
    _reply_and_close,
    connection_cap,
)

__all__ = ["BatchServer", "Steerable"]

_ACCEPT_PAUSE = (0.05, 2.0)  # first and longest pause after a failed accept (out of descriptors)
_BUSY = {"ok": False, "error": "the batch is busy with other control connections; try again"}
_ACCEPTED = {
    "pause": "pause (running turns are finished first; no new run starts)",
    "resume": "resume",
    "stop": "stop after the running turns; no new run starts",
    "stop now": "stop now (streaming turns are discarded)",
}


class Steerable(Protocol):
    """What the socket serves: a `Batch`."""

    id: str
    experiment: Experiment

    @property
    def state(self) -> str: ...

    def snapshot(self) -> dict[str, Any]: ...

    def pause(self) -> None: ...

    def resume(self) -> None: ...

    def stop(self, *, now: bool = True, reason: str = "interrupted") -> None: ...


class BatchServer:
    """Serves one batch's socket until cancelled."""

    def __init__(self, batch: Steerable) -> None:
        self.batch = batch
        self.path = runtime_dir() / f"{batch.id}.sock"
        self.connections = 0
        self.cap = connection_cap(resource.getrlimit(resource.RLIMIT_NOFILE)[0])

    async def serve(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        with contextlib.suppress(FileNotFoundError):
            self.path.unlink()
        listener = await anyio.create_unix_listener(self.path, mode=0o600)
        entry: Path | None = None
        try:
            experiment = self.batch.experiment
            entry = register(self.batch.id, self.path, experiment.source, kind="batch",
                             name=experiment.name)
            async with listener, anyio.create_task_group() as tg:
                task_status.started()
                await self._accept(listener, tg)
        finally:
            if entry is not None:
                unregister(entry)
            with contextlib.suppress(OSError):
                self.path.unlink()

    # The same accept loop as a run's socket (`ControlServer._accept`), which has no hook for
    # another kind of answer.
    async def _accept(self, listener: SocketListener, tg: TaskGroup) -> None:
        pause = _ACCEPT_PAUSE[0]
        while True:
            try:
                stream = await listener.accept()
            except anyio.BrokenResourceError as exc:
                if not isinstance(exc.__cause__, OSError):
                    raise
                await anyio.sleep(pause)  # out of file descriptors for now: the batch goes on
                pause = min(pause * 2, _ACCEPT_PAUSE[1])
                continue
            pause = _ACCEPT_PAUSE[0]
            if self.connections >= self.cap:
                await _reply_and_close(stream, _BUSY)
                continue
            self.connections += 1
            tg.start_soon(self._handle, stream)

    async def _handle(self, stream: SocketStream) -> None:
        try:
            with anyio.move_on_after(IDLE_SECONDS * 2):
                uid = peer_uid(stream.extra(SocketAttribute.raw_socket))
                if uid is not None and uid != os.getuid():
                    return  # another user: no answer at all
                try:
                    with anyio.fail_after(IDLE_SECONDS):
                        line = await _read_line(stream)
                    reply = self.answer(json.loads(line))
                except TimeoutError:
                    return
                except (ValueError, RecursionError) as exc:
                    reply = {"ok": False, "error": f"bad request: {type(exc).__name__}"}
                await stream.send(json.dumps(_redacted(reply)).encode() + b"\n")
        except (anyio.BrokenResourceError, anyio.EndOfStream, OSError):
            pass
        finally:
            self.connections -= 1
            with anyio.CancelScope(shield=True):
                await stream.aclose()

    def answer(self, request: Any) -> dict[str, Any]:
        if not isinstance(request, dict):
            return {"ok": False, "error": "a request is a JSON object"}
        batch = self.batch
        command = request.get("command")
        if command == "status":
            return {"ok": True, "status": batch.snapshot()}
        if command not in ("pause", "resume", "stop"):
            return {"ok": False, "error": f"unknown command {str(command)[:40]!r}"}
        if batch.state == "finished":
            return {"ok": False, "error": "the batch has ended"}
        now = request.get("now", False) is True
        if command == "stop":
            batch.stop(now=now, reason="stopped")
        elif command == "pause":
            batch.pause()
        else:
            batch.resume()
        said = _ACCEPTED["stop now" if command == "stop" and now else command]
        return {"ok": True, "accepted": f"batch {batch.experiment.name} ({batch.id}): {said}"}
