"""A dialogue: the session that runs a conversation between two agents, turn after turn.

Turn i is spoken by the first speaker when i is odd and by the other agent when it is even, so the
speaker of any turn follows from its number (and a resumed run needs no extra state). For each turn
the dialogue builds the speaker's view (`requests.AgentView`, kept as the history grows), streams
its provider, and emits events (what every session shares, recording before publishing included,
is in `session`).

Controls arrive through a memory object stream and are handled by a task beside the turn loop:
interjections are recorded at once and seen by their addressees from their next turn; pause and
step take effect between turns; stop either finishes or discards the streaming turn.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Literal

import anyio

from intermodel.config.model import Pairing
from intermodel.config.request import Request
from intermodel.engine.budgets import Budgets
from intermodel.engine.context import ContextFull, ContextKeeper
from intermodel.engine.controls import (
    Command,
    Extend,
    Interject,
    Pause,
    Resume,
    Step,
    Stop,
)
from intermodel.engine.detectors import detect, turns_needed
from intermodel.engine.events import (
    BudgetExtended,
    Flagged,
    Interjected,
    Notice,
    Paused,
    Resumed,
    Trimmed,
    TurnCompleted,
    event_for,
)
from intermodel.engine.gate import Gate
from intermodel.engine.requests import HistoryCursor
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.session import Recorder, Session
from intermodel.engine.stops import RegexTimedOut, find_stop
from intermodel.engine.turns import TurnFailed, TurnProducer
from intermodel.errors import (
    UsageError,
)
from intermodel.providers.base import Provider
from intermodel.providers.registry import reply_limits
from intermodel.records import (
    BudgetChange,
    EndReason,
    Flag,
    HistoryEntry,
    Interjection,
    Resumption,
    RunEnd,
    StopMatch,
    Trim,
    Turn,
    Usage,
    now_iso,
)
from intermodel.security.secrets import Redactor

__all__ = ["Dialogue", "DialogueState", "speaker_of"]


def speaker_of(pairing: Pairing, turn: int) -> str:
    first = pairing.dialogue.first
    return first if turn % 2 == 1 else pairing.partner_of(first)


@dataclass
class DialogueState:
    """Where a conversation stands: enough to start it, or to continue it after a resume."""

    history: list[HistoryEntry] = field(default_factory=list)
    max_turns: int = 0
    usage: dict[str, Usage] = field(default_factory=dict)
    # True when the history came from elsewhere (a branch's parent) and this run's transcript
    # must record it too; a resumed run's history is already in its file.
    inherited: bool = False
    # The turns of the history, kept as it grows (read several times a turn: counting them
    # from the whole history each time would cost more with every turn).
    _cursor: HistoryCursor = field(default_factory=HistoryCursor, init=False, repr=False,
                                   compare=False)
    _turns: list[Turn] = field(default_factory=list, init=False, repr=False, compare=False)

    @property
    def turns(self) -> list[Turn]:
        return list(self._followed())

    @property
    def turn_count(self) -> int:
        return len(self._followed())

    @property
    def next_turn(self) -> int:
        turns = self._followed()
        return turns[-1].index + 1 if turns else 1

    def latest_turns(self, count: int) -> list[Turn]:
        """The last `count` turns (fewer if there are not as many)."""
        return self._followed()[-count:] if count > 0 else []

    def _followed(self) -> list[Turn]:
        again, new = self._cursor.advance(self.history)
        if again:
            self._turns = []
        self._turns.extend(e for e in new if isinstance(e, Turn))
        return self._turns


class _Ended(Exception):
    """Internal: the run ends with this outcome."""

    def __init__(self, end: RunEnd) -> None:
        super().__init__(end.reason)
        self.end = end


class Dialogue(Session[Pairing]):
    def __init__(
        self,
        pairing: Pairing,
        providers: Mapping[str, Provider],
        *,
        recorder: Recorder | None = None,
        transcript_path: str | None = None,
        state: DialogueState | None = None,
        redactor: Redactor | None = None,
        run_id: str | None = None,
        rng: random.Random | None = None,
        resume: Resumption | None = None,
        origin: Mapping[str, Any] | None = None,
        cost_action: Literal["stop", "pause"] = "stop",
    ) -> None:
        super().__init__(pairing, providers, recorder=recorder, transcript_path=transcript_path,
                         redactor=redactor, run_id=run_id, resume=resume, origin=origin)
        self.state = state or DialogueState()
        if not self.state.max_turns:
            self.state.max_turns = pairing.dialogue.max_turns
        for name in pairing.agent_names:
            self.state.usage.setdefault(name, Usage())
        self._budgets = Budgets(pairing)
        # What reaching the cost budget does: stop (unattended), or pause (someone is watching).
        self._cost_action = cost_action
        self._cost_paused = False
        self._context = ContextKeeper(pairing)
        self._turns = TurnProducer(
            emit=self._emit, publish=self.bus.publish,
            retry=RetryPolicy(pairing.retry, rng), redact=self._redact,
            deadline=lambda: self._budgets.deadline(self._started),
            stop_reason=lambda: self._stop.reason if self._stop is not None else None,
        )
        self._gate = Gate()
        self._in_flight: int | None = None  # number of the turn being produced, if any
        self._probing: anyio.CancelScope | None = None  # while asking servers' context sizes

    def _progress(self) -> tuple[int, int]:
        return self.state.turn_count, self.state.max_turns

    def _state(self) -> str:
        if self._in_flight is not None:
            agent = speaker_of(self.spec, self._in_flight)
            return f"retrying {agent}" if self._turns.sleeping else f"streaming {agent}"
        if self._stop is not None:
            return "stopping"
        return "paused" if self._gate.paused else "waiting"

    def _usage(self) -> dict[str, Usage]:
        return dict(self.state.usage)

    async def _prologue(self) -> None:
        if self.state.inherited:
            await self._announce_history()

    async def _body(self) -> RunEnd:
        return await self._discover() or await self._turn_loop()

    async def _announce_history(self) -> None:
        """Record (and show) a history this run starts from, as if it had happened here."""
        for entry in self.state.history:
            event = event_for(entry)
            assert event is not None  # turns, interjections and trims all have one
            await self._emit(event)

    async def _discover(self) -> RunEnd | None:
        """Ask the servers for their context sizes (each probe is bounded in time); an end if
        the run cannot go on (a stop came meanwhile, or no turn would fit)."""
        with anyio.CancelScope() as scope:
            self._probing = scope
            if self._stop is not None:
                scope.cancel()
            try:
                notes = await self._context.discover(self._providers)
            except ContextFull as full:
                return self._end(EndReason.CONTEXT_FULL, str(full))
            finally:
                self._probing = None
        if scope.cancelled_caught:
            assert self._stop is not None
            return self._end(self._stop.reason)
        for note in notes:
            await self._emit(Notice(note))
        return None

    # -- the turn loop -----------------------------------------------------------------------

    async def _turn_loop(self) -> RunEnd:
        try:
            while True:
                self._check_budgets()
                await self._gate.wait(lambda: self._stop is not None)
                self._check_budgets()
                turn = await self._produce_turn(self.state.next_turn)
                self.state.history.append(turn)
                self.state.usage[turn.agent] = self.state.usage[turn.agent] + turn.usage
                await self._emit(TurnCompleted(turn))
                await self._check_stop_phrases(turn)
                await self._check_degeneration()
                await self._check_cost()
        except _Ended as ended:
            return ended.end

    def _check_budgets(self) -> None:
        if self._stop is not None:
            raise _Ended(self._end(self._stop.reason))
        used = self._budgets.exceeded(self.state.next_turn, self.state.max_turns,
                                      self.state.usage, self._elapsed())
        if used is not None:
            raise _Ended(self._end(used.reason, used.detail))

    async def _check_degeneration(self) -> None:
        stop: Flag | None = None
        config = self.spec.detectors
        for flag in detect(config, self.state.latest_turns(turns_needed(config))):
            await self._emit(Flagged(flag))
            if flag.action == "stop":
                stop = stop or flag
        if stop is not None:
            raise _Ended(self._end(EndReason.DEGENERATE, f"{stop.detector}: {stop.detail}"))

    def cost(self) -> float | None:
        """Dollars spent so far, when every agent has a price."""
        return self._budgets.cost(self.state.usage)

    async def _check_cost(self) -> None:
        reached = self._budgets.cost_reached(self.state.usage)
        if reached is None or self._cost_paused:
            return
        if self._cost_action == "stop":
            raise _Ended(self._end(reached.reason, reached.detail))
        self._cost_paused = True  # once: if the person resumes, that is their decision
        await self._emit(Notice(f"cost budget reached ({reached.detail}); paused"))
        await self._apply(Pause())

    async def _check_stop_phrases(self, turn: Turn) -> None:
        dialogue = self.spec.dialogue
        try:
            found = await find_stop(turn.text, dialogue.stop_phrases, dialogue.stop_match)
        except RegexTimedOut as slow:
            await self._emit(Notice(f"turn {turn.index}: {slow}"))
            return
        if found is not None:
            end = self._end(EndReason.STOP_PHRASE, f"{turn.agent} said {found.phrase!r}",
                            ended_by=turn.agent)
            raise _Ended(replace(end, stop=StopMatch(found.phrase, found.mode, turn.index,
                                                     found.start, found.end)))

    async def _produce_turn(self, index: int) -> Turn:
        """One turn, retried on transient errors. Raises _Ended if it cannot complete."""
        agent = speaker_of(self.spec, index)
        self._in_flight = index
        try:
            turn, request = await self._turns.produce(
                index, agent, self._providers[agent],
                lambda refused: self._fit(agent, index, refused=refused), self.state.max_turns,
                reply_limits(self.spec.agent(agent)))
        except TurnFailed as failed:
            detail = failed.detail
            if failed.reason is EndReason.TIME_BUDGET:
                detail = self._budgets.time_detail()
            raise _Ended(self._end(failed.reason, detail)) from None
        finally:
            self._in_flight = None
        self._context.learn(request, turn)
        return turn

    async def _fit(self, agent: str, index: int, *, refused: bool = False) -> Request:
        """The turn's request, inside the agent's context window; a trim is recorded first."""
        history = self.state.history
        trim: Trim | None
        try:
            if refused and self.spec.dialogue.context_policy == "drop_oldest":
                request, trim = self._context.refused(history, agent, index)
            elif refused:
                raise ContextFull(f"{agent}'s request for turn {index} is too long for its "
                                  "server (context_policy = \"stop\")")
            else:
                request, trim = self._context.fit(history, agent, index)
        except ContextFull as full:
            raise _Ended(self._end(EndReason.CONTEXT_FULL, str(full))) from None
        if trim is not None:
            history.append(trim)
            await self._emit(Trimmed(trim))
        return request

    # -- controls -----------------------------------------------------------------------------

    async def _apply(self, command: Command) -> None:
        if isinstance(command, Interject):
            try:
                to = self.spec.addressees(command.to)
            except UsageError as exc:
                self.bus.publish(Notice(str(exc)))
                return
            upcoming = self._in_flight + 1 if self._in_flight is not None else self.state.next_turn
            interjection = Interjection(upcoming, to, command.text, now_iso())
            self.state.history.append(interjection)
            await self._emit(Interjected(interjection))
        elif isinstance(command, Pause):
            if self._gate.pause():
                await self._emit(Paused())
        elif isinstance(command, Resume):
            if self._gate.resume():
                await self._emit(Resumed())
        elif isinstance(command, Step):
            if self._gate.step(turn_under_way=self._in_flight is not None):
                await self._emit(Resumed(step=True))
            else:  # it was running: it pauses after one turn
                await self._emit(Paused())
        elif isinstance(command, Stop):
            self._stop = command
            self._gate.open()
            if self._probing is not None:
                self._probing.cancel()  # no turn is under way yet: stop now
            if command.now or self._turns.sleeping:
                self._turns.cancel()
        elif isinstance(command, Extend):
            self.state.max_turns = Budgets.extended(self.state.max_turns, self.state.next_turn,
                                                    command.turns)
            await self._emit(BudgetExtended(BudgetChange(self.state.max_turns, now_iso())))

    # -- helpers ------------------------------------------------------------------------------

    @property
    def history(self) -> Sequence[HistoryEntry]:
        return self.state.history
