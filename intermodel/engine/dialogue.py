"""The orchestrator: the one loop that runs a conversation between two agents.

Turn i is spoken by the first speaker when i is odd and by the other agent when it is even, so the
speaker of any turn follows from its number (and a resumed run needs no extra state). For each turn
the dialogue builds the speaker's view (`views.build_request`), streams its provider, and emits
events. Events that belong in the transcript are handed to the recorder and awaited *before* they
are published: whatever a person saw on screen is already on disk.

Controls arrive through a memory object stream and are handled by a task beside the turn loop:
interjections are recorded at once and seen by their addressees from their next turn; pause and
step take effect between turns; stop either finishes or discards the streaming turn.
"""

from __future__ import annotations

import math
import random
import uuid
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream

from intermodel.config.model import Pairing
from intermodel.config.request import Request
from intermodel.engine.bus import EventBus, Subscription
from intermodel.engine.context import ContextFull, ContextKeeper
from intermodel.engine.controls import (
    Command,
    Controls,
    Extend,
    Interject,
    Pause,
    Resume,
    Step,
    Stop,
)
from intermodel.engine.detectors import detect
from intermodel.engine.events import (
    BudgetExtended,
    Event,
    Flagged,
    Interjected,
    Notice,
    Paused,
    Resumed,
    RunFinished,
    RunStarted,
    Trimmed,
    TurnCompleted,
    event_for,
    record_of,
)
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.turns import TurnFailed, TurnProducer
from intermodel.errors import (
    TranscriptError,
    UsageError,
)
from intermodel.providers.base import Provider
from intermodel.providers.registry import reply_limits
from intermodel.records import (
    BudgetChange,
    Flag,
    Header,
    HistoryEntry,
    Interjection,
    Record,
    Resumption,
    RunEnd,
    Trim,
    Turn,
    Usage,
    now_iso,
)
from intermodel.security.bounds import MAX_TURNS
from intermodel.security.secrets import Redactor

__all__ = ["Dialogue", "DialogueState", "Recorder", "new_run_id", "speaker_of"]


class Recorder(Protocol):
    """A durable consumer (the transcript writer): awaited for what the transcript keeps of every
    event, before the event is published."""

    async def record(self, record: Header | Record) -> None: ...


def new_run_id() -> str:
    return uuid.uuid4().hex[:12]


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

    @property
    def turns(self) -> list[Turn]:
        return [e for e in self.history if isinstance(e, Turn)]

    @property
    def next_turn(self) -> int:
        turns = self.turns
        return turns[-1].index + 1 if turns else 1


class _Ended(Exception):
    """Internal: the run ends with this outcome."""

    def __init__(self, end: RunEnd) -> None:
        super().__init__(end.reason)
        self.end = end


class Dialogue:
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
        self.pairing = pairing
        self.run_id = run_id or new_run_id()
        self.state = state or DialogueState()
        if not self.state.max_turns:
            self.state.max_turns = pairing.dialogue.max_turns
        for name in pairing.agent_names:
            self.state.usage.setdefault(name, Usage())
        self._resume = resume
        self._origin = dict(origin or {})
        # What reaching the cost budget does: stop (unattended), or pause (someone is watching).
        self._cost_action = cost_action
        self._cost_paused = False
        self._providers = providers
        self._recorder = recorder
        self._transcript_path = transcript_path
        self._context = ContextKeeper(pairing)
        self._redact = redactor or Redactor()
        self.bus = EventBus(self._redact)
        self._turns = TurnProducer(
            emit=self._emit, publish=self.bus.publish,
            retry=RetryPolicy(pairing.retry, rng), redact=self._redact,
            deadline=self._deadline,
            stop_reason=lambda: self._stop.reason if self._stop is not None else None,
        )
        self._command_send, self._commands = anyio.create_memory_object_stream[Command](math.inf)
        self.controls = Controls(self._command_send)
        self._paused = False
        self._steps = 0  # turns allowed to run while paused
        self._stop: Stop | None = None
        self._gate_changed = anyio.Event()
        self._in_flight: int | None = None  # number of the turn being produced, if any
        self._probing: anyio.CancelScope | None = None  # while asking servers' context sizes
        self._recorder_broken = False  # a transcript write failed: the run stops, unrecorded
        self._started = 0.0

    def subscribe(self) -> Subscription:
        return self.bus.subscribe()

    def snapshot(self) -> dict[str, object]:
        """Where the run stands, for status displays outside the process."""
        if self._in_flight is not None:
            agent = speaker_of(self.pairing, self._in_flight)
            state = f"retrying {agent}" if self._turns.sleeping else f"streaming {agent}"
        elif self._stop is not None:
            state = "stopping"
        else:
            state = "paused" if self._paused else "waiting"
        return {
            "run_id": self.run_id,
            "pairing": self.pairing.name,
            "transcript": self._transcript_path,
            "turns": len(self.state.turns),
            "max_turns": self.state.max_turns,
            "state": state,
            "elapsed": round(self._elapsed(), 1),
        }

    async def run(self) -> RunEnd:
        """Run until a budget, a stop phrase, a stop command or a fatal error ends it."""
        self._started = anyio.current_time()
        end: RunEnd | None = None
        try:
            await self._emit(RunStarted(self.run_id, self.pairing, self._transcript_path,
                                        now_iso(), resume=self._resume, origin=self._origin))
            if self.state.inherited:
                await self._announce_history()
            failure: Exception | None = None
            async with anyio.create_task_group() as tg:
                # Commands are heard from the start: a stop ends the probes too.
                tg.start_soon(self._read_commands, self._commands)
                try:
                    end = await self._discover() or await self._turn_loop()
                except Exception as exc:  # re-raised below, unwrapped from the task group's group
                    failure = exc
                tg.cancel_scope.cancel()
            if failure is not None:
                raise failure
        except TranscriptError as exc:
            self._recorder_broken = True  # nothing more can be recorded; say so on screen
            end = self._end("error", str(exc))
            raise
        except BaseException as exc:
            if end is None:
                if isinstance(exc, anyio.get_cancelled_exc_class()):
                    end = self._end(self._stop.reason if self._stop else "stopped")
                else:
                    end = self._end("error", f"internal error: {exc!r}")
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
                return self._end("context_full", str(full))
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
                await self._wait_at_gate()
                self._check_budgets()
                turn = await self._produce_turn(self.state.next_turn)
                self.state.history.append(turn)
                self.state.usage[turn.agent] = self.state.usage[turn.agent] + turn.usage
                await self._emit(TurnCompleted(turn))
                self._check_stop_phrases(turn)
                await self._check_degeneration()
                await self._check_cost()
        except _Ended as ended:
            return ended.end

    def _check_budgets(self) -> None:
        d = self.pairing.dialogue
        if self._stop is not None:
            raise _Ended(self._end(self._stop.reason))
        if self.state.next_turn > self.state.max_turns:
            raise _Ended(self._end("max_turns", f"{self.state.max_turns} turns"))
        total = sum(u.total for u in self.state.usage.values())
        if d.max_total_tokens is not None and total >= d.max_total_tokens:
            raise _Ended(self._end("token_budget", f"{total} of {d.max_total_tokens} tokens"))
        if d.max_seconds is not None and self._elapsed() >= d.max_seconds:
            raise _Ended(self._end("time_budget", f"{d.max_seconds:g} s"))

    async def _check_degeneration(self) -> None:
        stop: Flag | None = None
        for flag in detect(self.pairing.detectors, self.state.turns):
            await self._emit(Flagged(flag))
            if flag.action == "stop":
                stop = stop or flag
        if stop is not None:
            raise _Ended(self._end("degenerate", f"{stop.detector}: {stop.detail}"))

    def cost(self) -> float | None:
        """Dollars spent so far, when every agent has a price."""
        total = 0.0
        for agent in self.pairing.agents:
            if agent.price is None:
                return None
            usage = self.state.usage[agent.name]
            total += agent.price.cost(usage.input_tokens, usage.output_tokens)
        return total

    async def _check_cost(self) -> None:
        budget = self.pairing.dialogue.max_cost
        spent = self.cost()
        if budget is None or spent is None or spent < budget or self._cost_paused:
            return
        line = f"${spent:.4f} spent, budget ${budget:g}"
        if self._cost_action == "stop":
            raise _Ended(self._end("cost_budget", line))
        self._cost_paused = True  # once: if the person resumes, that is their decision
        await self._emit(Notice(f"cost budget reached ({line}); paused"))
        await self._apply(Pause())

    def _check_stop_phrases(self, turn: Turn) -> None:
        for phrase in self.pairing.dialogue.stop_phrases:
            if phrase in turn.text:
                raise _Ended(self._end("stop_phrase", f"{turn.agent} said {phrase!r}",
                                       ended_by=turn.agent))

    async def _wait_at_gate(self) -> None:
        """Block while paused, unless a step allows one turn."""
        while self._paused and self._steps == 0 and self._stop is None:
            await self._gate_changed.wait()
            self._gate_changed = anyio.Event()
        if self._paused and self._steps:
            self._steps -= 1

    async def _produce_turn(self, index: int) -> Turn:
        """One turn, retried on transient errors. Raises _Ended if it cannot complete."""
        agent = speaker_of(self.pairing, index)
        self._in_flight = index
        try:
            turn, request = await self._turns.produce(
                index, agent, self._providers[agent],
                lambda refused: self._fit(agent, index, refused=refused), self.state.max_turns,
                reply_limits(self.pairing.agent(agent)))
        except TurnFailed as failed:
            detail = failed.detail
            if failed.reason == "time_budget":
                detail = f"{self.pairing.dialogue.max_seconds or 0:g} s"
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
            if refused and self.pairing.dialogue.context_policy == "drop_oldest":
                request, trim = self._context.refused(history, agent, index)
            elif refused:
                raise ContextFull(f"{agent}'s request for turn {index} is too long for its "
                                  "server (context_policy = \"stop\")")
            else:
                request, trim = self._context.fit(history, agent, index)
        except ContextFull as full:
            raise _Ended(self._end("context_full", str(full))) from None
        if trim is not None:
            history.append(trim)
            await self._emit(Trimmed(trim))
        return request

    # -- controls -----------------------------------------------------------------------------

    async def _read_commands(self, commands: MemoryObjectReceiveStream[Command]) -> None:
        async for command in commands:
            await self._apply(command)

    async def _apply(self, command: Command) -> None:
        if isinstance(command, Interject):
            try:
                to = self._addressees(command.to)
            except UsageError as exc:
                self.bus.publish(Notice(str(exc)))
                return
            upcoming = self._in_flight + 1 if self._in_flight is not None else self.state.next_turn
            interjection = Interjection(upcoming, to, command.text, now_iso())
            self.state.history.append(interjection)
            await self._emit(Interjected(interjection))
        elif isinstance(command, Pause):
            if not self._paused:
                self._paused, self._steps = True, 0
                await self._emit(Paused())
        elif isinstance(command, Resume):
            if self._paused:
                self._paused, self._steps = False, 0
                self._open_gate()
                await self._emit(Resumed())
        elif isinstance(command, Step):
            if self._paused:
                self._steps += 1
                self._open_gate()
                await self._emit(Resumed(step=True))
            else:  # running: finish the turn under way, then pause
                self._paused, self._steps = True, 0 if self._in_flight is not None else 1
                await self._emit(Paused())
        elif isinstance(command, Stop):
            self._stop = command
            self._open_gate()
            if self._probing is not None:
                self._probing.cancel()  # no turn is under way yet: stop now
            if command.now or self._turns.sleeping:
                self._turns.cancel()
        elif isinstance(command, Extend):
            # Capped, as every budget is: the transcript records it, and readers bound it.
            self.state.max_turns = min(MAX_TURNS, max(self.state.next_turn - 1,
                                                      self.state.max_turns + command.turns))
            await self._emit(BudgetExtended(BudgetChange(self.state.max_turns, now_iso())))

    def _addressees(self, to: str) -> tuple[str, ...]:
        names = self.pairing.agent_names
        key = to.strip().lower()
        if key == "both":
            return names
        if key in ("a", "b"):
            return (names[0] if key == "a" else names[1],)
        for name in names:
            if name.lower() == key:
                return (name,)
        raise UsageError(f"cannot address {to!r}: use a, b, both, {names[0]} or {names[1]}")

    def _open_gate(self) -> None:
        self._gate_changed.set()

    # -- helpers ------------------------------------------------------------------------------

    async def _emit(self, event: Event) -> None:
        event = self.bus.cleaned(event)  # what is recorded is what is shown: without secrets
        if self._recorder is not None and not self._recorder_broken \
                and (record := record_of(event)) is not None:
            await self._recorder.record(record)
        self.bus.publish(event)

    def _elapsed(self) -> float:
        return anyio.current_time() - self._started

    def _deadline(self) -> float:
        seconds = self.pairing.dialogue.max_seconds
        return math.inf if seconds is None else self._started + seconds

    def _end(self, reason: str, detail: str = "", ended_by: str | None = None) -> RunEnd:
        return RunEnd(
            reason=reason,
            detail=self._redact(detail),  # also returned to the caller, who may print it
            ended_by=ended_by,
            turns=len(self.state.turns),
            usage=dict(self.state.usage),
            duration=round(self._elapsed(), 3),
            at=now_iso(),
        )

    @property
    def history(self) -> Sequence[HistoryEntry]:
        return self.state.history
