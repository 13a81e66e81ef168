"""A panel: one message sent to several agents at once, each answering on its own.

This is how the question "what does each model say to the same invitation?" is asked: no
conversation, every agent streams its answer concurrently, and the answers land in one transcript
as turns numbered by the agents' order in the file. Each answer has the same retry policy and the
same records as a dialogue turn; one agent failing does not stop the others.
"""

from __future__ import annotations

import math
import random
from collections.abc import Mapping
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from intermodel.config.model import Panel
from intermodel.config.request import Request
from intermodel.engine.bus import EventBus, Subscription
from intermodel.engine.controls import Command, Controls, Stop
from intermodel.engine.dialogue import Recorder, new_run_id
from intermodel.engine.events import (
    Event,
    Notice,
    RunFinished,
    RunStarted,
    TurnCompleted,
    record_of,
)
from intermodel.engine.requests import panel_request
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.turns import TurnFailed, TurnProducer
from intermodel.providers.base import Provider
from intermodel.providers.registry import reply_limits
from intermodel.records import RunEnd, Turn, Usage, now_iso
from intermodel.security.secrets import Redactor

__all__ = ["PanelRun"]


class PanelRun:
    """Runs a panel; the same `subscribe`, `controls` and `run` as a Dialogue."""

    def __init__(
        self,
        panel: Panel,
        providers: Mapping[str, Provider],
        *,
        recorder: Recorder | None = None,
        transcript_path: str | None = None,
        redactor: Redactor | None = None,
        run_id: str | None = None,
        rng: random.Random | None = None,
        origin: Mapping[str, Any] | None = None,
    ) -> None:
        self.pairing = panel  # the name front ends look for
        self.run_id = run_id or new_run_id()
        self._providers = providers
        self._recorder = recorder
        self._transcript_path = transcript_path
        self._origin = dict(origin or {})
        self._redact = redactor or Redactor()
        self.bus = EventBus(self._redact)
        self._command_send, self._commands = anyio.create_memory_object_stream[Command](math.inf)
        self.controls = Controls(self._command_send)
        self._stop: Stop | None = None
        self._answers: dict[str, Turn] = {}
        self._failures: dict[str, str] = {}
        self._producers = {
            agent.name: TurnProducer(
                emit=self._emit, publish=self.bus.publish,
                retry=RetryPolicy(panel.retry, rng), redact=self._redact,
                deadline=lambda: math.inf,
                stop_reason=lambda: self._stop.reason if self._stop is not None else None)
            for agent in panel.agents
        }
        self._started = 0.0

    def subscribe(self) -> Subscription:
        return self.bus.subscribe()

    def snapshot(self) -> dict[str, object]:
        done = len(self._answers) + len(self._failures)
        return {"run_id": self.run_id, "pairing": self.pairing.name,
                "transcript": self._transcript_path, "turns": len(self._answers),
                "max_turns": len(self.pairing.agents),
                "state": "stopping" if self._stop else f"{done} of {len(self._producers)} done",
                "elapsed": round(anyio.current_time() - self._started, 1)}

    async def run(self) -> RunEnd:
        self._started = anyio.current_time()
        end: RunEnd | None = None
        try:
            await self._emit(RunStarted(self.run_id, self.pairing, self._transcript_path,
                                        now_iso(), origin=self._origin))
            async with anyio.create_task_group() as commands:
                commands.start_soon(self._read_commands, self._commands)
                async with anyio.create_task_group() as answers:
                    for slot, agent in enumerate(self.pairing.agents, start=1):
                        answers.start_soon(self._answer, slot, agent.name)
                commands.cancel_scope.cancel()
            end = self._end()
        except BaseException:
            end = self._end(self._stop.reason if self._stop else "stopped")
            raise
        finally:
            self._command_send.close()
            self._commands.close()
            if end is not None:
                with anyio.CancelScope(shield=True), anyio.move_on_after(10):
                    await self._emit(RunFinished(end))
            self.bus.close()
        assert end is not None
        return end

    async def _answer(self, slot: int, agent: str) -> None:
        request = panel_request(self.pairing, agent)

        async def fit(refused: bool) -> Request:
            if refused:  # a one-message request has nothing to drop
                raise TurnFailed("error", f"{agent}: the message is too long for its context")
            return request

        try:
            turn, _ = await self._producers[agent].produce(
                slot, agent, self._providers[agent], fit, len(self.pairing.agents),
                reply_limits(self.pairing.agent(agent)))
        except TurnFailed as failed:
            if failed.reason == "error":
                self._failures[agent] = failed.detail
            return
        self._answers[agent] = turn
        await self._emit(TurnCompleted(turn))

    async def _read_commands(self, commands: MemoryObjectReceiveStream[Command]) -> None:
        async for command in commands:
            if isinstance(command, Stop):
                self._stop = command
                for producer in self._producers.values():
                    producer.cancel()
            else:
                self.bus.publish(Notice("a panel can only be stopped"))

    async def _emit(self, event: Event) -> None:
        event = self.bus.cleaned(event)  # what is recorded is what is shown: without secrets
        if self._recorder is not None and (record := record_of(event)) is not None:
            await self._recorder.record(record)
        self.bus.publish(event)

    def _end(self, reason: str | None = None) -> RunEnd:
        if reason is None:
            reason = "complete"
            if self._stop is not None:
                reason = self._stop.reason
            elif self._failures or len(self._answers) < len(self.pairing.agents):
                reason = "error"
        detail = self._redact("; ".join(self._failures.values()))
        usage = {name: self._answers[name].usage if name in self._answers else Usage()
                 for name in self.pairing.agent_names}
        return RunEnd(reason, detail, None, len(self._answers), usage,
                      round(anyio.current_time() - self._started, 3), now_iso())
