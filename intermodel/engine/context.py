"""Keeping each agent's request inside its context window.

Each agent may have a window (`context_window` in its config, or what its server reports). Before
a turn, its request is estimated (see `tokens`), reply budget included. If it will not fit, the
pairing's policy decides: `stop` ends the run, `drop_oldest` drops the oldest turns from that
agent's view — never the role prompt or the opener — until it fits, and records a `Trim`, so the
transcript says exactly what was dropped and `inspect` can rebuild the trimmed request. When a
server refuses a request as too long anyway, the same policy applies with a tighter target.

Requests come from each agent's `AgentView`, which keeps its view as the history grows, and
counts the characters the estimate needs as it goes: neither the request nor its estimate is
worked out again from the whole history each turn.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import anyio

from intermodel.config.model import Pairing
from intermodel.config.request import Request
from intermodel.engine.requests import AgentView
from intermodel.engine.tokens import Calibration, estimate_size, estimate_tokens
from intermodel.providers.base import ProbeFailed, Provider
from intermodel.records import HistoryEntry, Trim, Turn, now_iso

__all__ = ["ContextFull", "ContextKeeper"]

# After a server refused a request as too long, aim for a prompt this much smaller.
_REFUSED_TARGET = 0.8


class ContextFull(Exception):
    """The request cannot be made to fit (or the policy says stop)."""


class ContextKeeper:
    def __init__(self, pairing: Pairing) -> None:
        self.pairing = pairing
        self.windows: dict[str, int | None] = {a.name: a.context_window for a in pairing.agents}
        self._calibration = {name: Calibration() for name in pairing.agent_names}
        self._views = {name: AgentView(pairing, name) for name in pairing.agent_names}
        # Each agent's request last built, and its uncalibrated estimate.
        self._built: dict[str, tuple[Request, int]] = {}

    async def discover(self, providers: Mapping[str, Provider]) -> list[str]:
        """Ask providers that can tell (local servers, the local model) for their context size,
        all at once; return notes worth recording, and refuse a pairing that cannot fit even one
        turn. A server that does not answer in time is noted and the run goes on (with the
        configured context_window, if any)."""
        answers: dict[str, int | ProbeFailed | None] = {}

        async def ask(name: str, provider: Provider) -> None:
            limit = getattr(provider, "context_limit", None)
            try:
                answers[name] = await limit() if limit is not None else None
            except ProbeFailed as failed:
                answers[name] = failed

        async with anyio.create_task_group() as tg:
            for name, provider in providers.items():
                tg.start_soon(ask, name, provider)
        notes: list[str] = []
        for name, provider in providers.items():
            found = answers.get(name)
            configured = self.windows[name]
            if isinstance(found, ProbeFailed):
                using = "" if configured is None else \
                    f"; using the configured context_window of {configured}"
                notes.append(f"{name}: context size unknown: {found}{using}")
                continue
            if found is None:
                continue
            self.windows[name] = found if configured is None else min(configured, found)
            if configured is not None and configured > found:
                notes.append(f"{name}: the server's context is {found} tokens, less than the "
                             f"configured context_window of {configured}; using {found}")
            else:
                notes.append(f"{name}: context of {found} tokens (as its {provider.name} "
                             "provider reports)")
        notes.extend(self._plan_notes())
        return notes

    def _plan_notes(self) -> list[str]:
        notes = []
        d = self.pairing.dialogue
        for agent in self.pairing.agents:
            window = self.windows[agent.name]
            if window is None:
                continue
            reply = agent.sampling.max_tokens
            base = estimate_tokens(Request(agent.model, self.pairing.system_prompt(agent.name),
                                           ())) + len(d.opener) // 4
            if base + 2 * reply > window:
                raise ContextFull(f"{agent.name}: the role prompt, the opener and two replies of "
                                  f"max_tokens={reply} need about {base + 2 * reply} tokens; the "
                                  f"context window is {window}")
            worst = base + d.max_turns * reply
            if worst > window:
                then = ("older turns will be dropped" if d.context_policy == "drop_oldest"
                        else "the run will stop")
                notes.append(f"{agent.name}: a full run could need about {worst} tokens, more "
                             f"than its context of {window}; when it fills, {then}")
        return notes

    def fit(self, history: Sequence[HistoryEntry], agent: str, turn: int
            ) -> tuple[Request, Trim | None]:
        """The request for `turn`, trimmed if needed (the Trim is to be recorded). `history` is
        the run's own, which only grows at its end (another list is read from its start)."""
        request = self._build(history, agent, turn)
        window = self.windows[agent]
        if window is None:
            return request, None
        need = self._need(agent, request)
        if need <= window:
            return request, None
        return self._trim(agent, turn, need, window, "estimate")

    def refused(self, history: Sequence[HistoryEntry], agent: str, turn: int
                ) -> tuple[Request, Trim]:
        """The server said the request was too long: trim further than the estimate thought."""
        request = self._build(history, agent, turn)
        need = self._need(agent, request)
        window = self.windows[agent]
        reply = request.sampling.max_tokens
        target = int((need - reply) * _REFUSED_TARGET) + reply  # a smaller prompt, same reply
        if window is not None:
            target = min(target, window)
        request, trim = self._trim(agent, turn, need, target, "server")
        assert trim is not None
        return request, trim

    def learn(self, request: Request, turn: Turn) -> None:
        """Calibrate the estimate with what the server reported for this request."""
        self._calibration[turn.agent].learn(self._estimate(turn.agent, request),
                                            turn.usage.input_tokens)

    def _build(self, history: Sequence[HistoryEntry], agent: str, turn: int) -> Request:
        view = self._views[agent]
        view.follow(history)
        return self._made(agent, view.request(turn))

    def _made(self, agent: str, request: Request) -> Request:
        """`request`, just made by the agent's view, with its estimate from the view's count."""
        chars = len(request.system) + self._views[agent].text_chars
        self._built[agent] = (request, estimate_size(chars, len(request.messages)))
        return request

    def _estimate(self, agent: str, request: Request) -> int:
        built = self._built.get(agent)
        return built[1] if built is not None and built[0] is request else estimate_tokens(request)

    def _need(self, agent: str, request: Request) -> int:
        raw = self._estimate(agent, request)
        return self._calibration[agent].scaled(raw) + request.sampling.max_tokens

    def _trim(self, agent: str, turn: int, need: int, target: int, cause: str
              ) -> tuple[Request, Trim]:
        """The request with the fewest older turns dropped that fits `target` (the view has
        followed the history in `fit` or `refused`)."""
        what = f"{agent}'s request for turn {turn} needs about {need} tokens"
        if self.pairing.dialogue.context_policy == "stop":
            raise ContextFull(f"{what}; its context window is {target}")
        view = self._views[agent]
        current = view.cutoff(turn)
        # Keep at least the turn just before this one: the agent must have something to answer.
        for cutoff in range(current + 1, turn - 1):
            candidate = self._made(agent, view.request(turn, drop_through=cutoff))
            if not candidate.messages or candidate.messages[0].role != "user":
                continue  # a view must start with a user message
            if self._need(agent, candidate) <= target:
                dropped = view.turns_between(current, cutoff)
                return candidate, Trim(agent, turn, cutoff, dropped, need, target, cause,
                                       now_iso())
        raise ContextFull(f"{what}; even with every older turn dropped it does not fit in "
                          f"{target}")
