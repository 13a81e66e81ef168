"""A session: one run of a spec (a pairing's dialogue, or a panel), from its start to its end.

What every run shares lives here: its id, the recorder and the event bus (whatever the run emits
is cleaned of secrets, handed to the recorder and awaited, then published: what a person saw on
screen is already on disk), the controls and the task that reads them, the status snapshot, and
the lifecycle itself: `RunStarted`, the body of the run, then `RunFinished`, written even when the
run was cancelled from outside (shielded). A `Dialogue` and a `PanelRun` fill in the body and say
what the commands do; front ends drive either as "a session".
"""

from __future__ import annotations

import math
import uuid
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, Generic, Protocol, TypeVar

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from intermodel.config.model import RunSpec
from intermodel.engine.bus import EventBus, Subscription
from intermodel.engine.controls import Command, Controls, Stop
from intermodel.engine.events import Event, RunFinished, RunStarted, record_of
from intermodel.errors import TranscriptError
from intermodel.providers.base import Provider
from intermodel.records import EndReason, Header, Record, Resumption, RunEnd, Usage, now_iso
from intermodel.security.secrets import Redactor

__all__ = ["Recorder", "Session", "new_run_id"]

S = TypeVar("S", bound=RunSpec, covariant=True)


class Recorder(Protocol):
    """A durable consumer (the transcript writer): awaited for what the transcript keeps of every
    event, before the event is published."""

    async def record(self, record: Header | Record) -> None: ...


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


class Session(ABC, Generic[S]):
    """One run of `spec`. `run` it once; `subscribe` to its events, steer it with `controls`."""

    def __init__(
        self,
        spec: S,
        providers: Mapping[str, Provider],
        *,
        recorder: Recorder | None = None,
        transcript_path: str | None = None,
        redactor: Redactor | None = None,
        run_id: str | None = None,
        resume: Resumption | None = None,
        origin: Mapping[str, Any] | None = None,
    ) -> None:
        self.spec = spec
        self.run_id = run_id or new_run_id()
        self._providers = providers
        self._recorder = recorder
        self._transcript_path = transcript_path
        self._resume = resume
        self._origin = dict(origin or {})
        self._redact = redactor or Redactor()
        self.bus = EventBus(self._redact)
        self._command_send, self._commands = anyio.create_memory_object_stream[Command](math.inf)
        self.controls = Controls(self._command_send)
        self._stop: Stop | None = None  # set by a stop command: the run is ending
        self._recorder_broken = False  # a transcript write failed: the run stops, unrecorded
        self._started = 0.0

    def subscribe(self) -> Subscription:
        return self.bus.subscribe()

    def snapshot(self) -> dict[str, object]:
        """Where the run stands, for status displays outside the process."""
        turns, max_turns = self._progress()
        return {
            "run_id": self.run_id,
            "pairing": self.spec.name,
            "transcript": self._transcript_path,
            "turns": turns,
            "max_turns": max_turns,
            "state": self._state(),
            "elapsed": round(self._elapsed(), 1),
        }

    async def run(self) -> RunEnd:
        """Run until the body ends (a budget, a stop, every answer...) or fails; the final record
        is written however it ended."""
        self._started = anyio.current_time()
        end: RunEnd | None = None
        try:
            await self._emit(RunStarted(self.run_id, self.spec, self._transcript_path, now_iso(),
                                        resume=self._resume, origin=self._origin))
            await self._prologue()
            failure: Exception | None = None
            async with anyio.create_task_group() as tg:
                # Commands are heard from the start: a stop ends the preparations too.
                tg.start_soon(self._read_commands, self._commands)
                try:
                    end = await self._body()
                except Exception as exc:  # re-raised below, unwrapped from the task group's group
                    failure = exc
                tg.cancel_scope.cancel()
            if failure is not None:
                raise failure
        except TranscriptError as exc:
            self._recorder_broken = True  # nothing more can be recorded; say so on screen
            end = self._end(EndReason.ERROR, str(exc))
            raise
        except BaseException as exc:
            if end is None:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    end = self._end(self._stop.reason if self._stop else EndReason.STOPPED)
                else:
                    end = self._end(EndReason.ERROR, f"internal error: {exc!r}")
            raise
        finally:
            self._command_send.close()  # later commands are refused: Controls.send -> False
            self._commands.close()
            if end is not None:
                # Shielded: even a run cancelled from outside leaves a final record.
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    await self._emit(RunFinished(end))
            self.bus.close()
        assert end is not None  # set on every path that gets here
        return end

    # -- what a kind of session fills in --------------------------------------------------------

    async def _prologue(self) -> None:
        """What the run records after its start, before any command is heard."""

    @abstractmethod
    async def _body(self) -> RunEnd:
        """The run itself, between its start and its end; the end it came to."""

    @abstractmethod
    async def _apply(self, command: Command) -> None:
        """What a command does to this run."""

    @abstractmethod
    def _progress(self) -> tuple[int, int]:
        """Turns done, and the turn budget now."""

    @abstractmethod
    def _state(self) -> str:
        """A few words on what the run is doing, for status displays."""

    @abstractmethod
    def _usage(self) -> dict[str, Usage]:
        """Tokens used so far, per agent."""

    # -- shared parts ---------------------------------------------------------------------------

    async def _read_commands(self, commands: MemoryObjectReceiveStream[Command]) -> None:
        async for command in commands:
            await self._apply(command)

    async def _emit(self, event: Event) -> None:
        event = self.bus.cleaned(event)  # what is recorded is what is shown: without secrets
        if self._recorder is not None and not self._recorder_broken \
                and (record := record_of(event)) is not None:
            await self._recorder.record(record)
        self.bus.publish(event)

    def _elapsed(self) -> float:
        return anyio.current_time() - self._started

    def _end(self, reason: EndReason, detail: str = "", ended_by: str | None = None) -> RunEnd:
        return RunEnd(
            reason=reason,
            detail=self._redact(detail),  # also returned to the caller, who may print it
            ended_by=ended_by,
            turns=self._progress()[0],
            usage=self._usage(),
            duration=round(self._elapsed(), 3),
            at=now_iso(),
        )
