"""A batch's own control socket: where the batch stands, and pause, resume and stop for all its
entries at once. `intermodel status` lists batches through it, and `intermodel attach
experiments/NAME` opens the dashboard of a batch running in another process.

It lives in the runtime dir (`<runtime dir>/<batch id>.sock`, mode 600, in a folder private to
the user) and is registered there with `"kind": "batch"`, the experiment's name and file. It is
a `LineServer`, like a run's socket (`intermodel.control.server`): it answers only its own user
(peer credentials), serves at most `connection_cap` connections at once, and closes a connection
that sends no request within `IDLE_SECONDS`. One JSON line in, one out:

    {"command": "status"}               ->  {"ok": true, "status": {batch snapshot}}
    {"command": "pause"} / "resume"     ->  {"ok": true, "accepted": "..."}
    {"command": "stop"}                 ->  every running entry stops after its streaming turn
    {"command": "stop", "now": true}    ->  every running entry stops at once

The snapshot is `Batch.snapshot()`; replies are cleaned of secrets on their way out.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, ClassVar, Protocol

from intermodel.config.experiment import Experiment
from intermodel.control.lines import LineServer
from intermodel.control.paths import runtime_dir
from intermodel.control.registry import register

__all__ = ["BatchServer", "Steerable"]

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


class BatchServer(LineServer):
    """Serves one batch's socket until cancelled."""

    busy: ClassVar[dict[str, Any]] = {
        "ok": False, "error": "the batch is busy with other control connections; try again"}

    def __init__(self, batch: Steerable) -> None:
        super().__init__(runtime_dir() / f"{batch.id}.sock")
        self.batch = batch

    def register(self) -> Path:
        experiment = self.batch.experiment
        return register(self.batch.id, self.path, experiment.source, kind="batch",
                        name=experiment.name)

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
