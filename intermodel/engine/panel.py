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

from intermodel.config.model import Panel
from intermodel.config.request import Request
from intermodel.engine.controls import Command, Stop
from intermodel.engine.events import (
    Notice,
    TurnCompleted,
)
from intermodel.engine.requests import panel_request
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.session import Recorder, Session
from intermodel.engine.turns import TurnFailed, TurnProducer
from intermodel.providers.base import Provider
from intermodel.providers.registry import reply_limits
from intermodel.records import EndReason, RunEnd, Turn, Usage
from intermodel.security.secrets import Redactor

__all__ = ["PanelRun"]


class PanelRun(Session[Panel]):
    """Runs a panel: every agent answers the panel's message at once."""

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
        super().__init__(panel, providers, recorder=recorder, transcript_path=transcript_path,
                         redactor=redactor, run_id=run_id, origin=origin)
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

    def _progress(self) -> tuple[int, int]:
        return len(self._answers), self.spec.max_turns

    def _state(self) -> str:
        if self._stop is not None:
            return "stopping"
        return f"{len(self._answers) + len(self._failures)} of {len(self._producers)} done"

    def _usage(self) -> dict[str, Usage]:
        return {name: self._answers[name].usage if name in self._answers else Usage()
                for name in self.spec.agent_names}

    async def _body(self) -> RunEnd:
        async with anyio.create_task_group() as answers:
            for slot, agent in enumerate(self.spec.agents, start=1):
                answers.start_soon(self._answer, slot, agent.name)
        reason = EndReason.COMPLETE
        if self._stop is not None:
            reason = self._stop.reason
        elif self._failures or len(self._answers) < len(self.spec.agents):
            reason = EndReason.ERROR
        return self._end(reason, "; ".join(self._failures.values()))

    async def _answer(self, slot: int, agent: str) -> None:
        request = panel_request(self.spec, agent)

        async def fit(refused: bool) -> Request:
            if refused:  # a one-message request has nothing to drop
                raise TurnFailed(EndReason.ERROR,
                                 f"{agent}: the message is too long for its context")
            return request

        try:
            turn, _ = await self._producers[agent].produce(
                slot, agent, self._providers[agent], fit, self.spec.max_turns,
                reply_limits(self.spec.agent(agent)))
        except TurnFailed as failed:
            if failed.reason is EndReason.ERROR:
                self._failures[agent] = failed.detail
            return
        self._answers[agent] = turn
        await self._emit(TurnCompleted(turn))

    async def _apply(self, command: Command) -> None:
        if isinstance(command, Stop):
            self._stop = command
            for producer in self._producers.values():
                producer.cancel()
        else:
            self.bus.publish(Notice("a panel can only be stopped"))
