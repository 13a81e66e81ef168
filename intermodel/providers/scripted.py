"""A provider that needs nothing: deterministic replies, streamed in chunks.

For demos, tests and benchmarks. Replies come from a list (or file), from what the agent was last
sent (`when`: the same reply to the same kind of message, whatever came before), or from a rule;
each is streamed a few words at a time with optional delays, so it behaves like a model on screen.
Every request received is kept in `requests`, which lets tests check exactly what an agent was
sent. Token counts are estimates (about four characters per token), clearly not a real
tokenizer's.
"""

from __future__ import annotations

import re
from collections import deque
from collections.abc import AsyncGenerator, Awaitable, Callable
from typing import Self

import anyio

from intermodel.config.capabilities import PROVIDERS
from intermodel.config.model import AgentConfig, ScriptConfig, render_placeholders
from intermodel.config.request import Request, estimate_text_tokens
from intermodel.errors import BadRequest
from intermodel.providers.base import (
    ConfiguredProvider,
    Finished,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)
from intermodel.security.secrets import Credentials

__all__ = ["Pacer", "ScriptedProvider"]

_WORD = re.compile(r"\S+\s*|\s+")
REQUESTS_KEPT = 200


class Pacer:
    """A steady rate, as a model generates: piece n is due n delays after the first was sent,
    however late the reader took the ones before (those already due come at once, as a burst out of
    a socket's buffer would). Sleeping a whole delay after each piece instead made a busy reader
    slow the model down, which no real server does."""

    def __init__(self, delay: float, clock: Callable[[], float] = anyio.current_time,
                 sleep: Callable[[float], Awaitable[None]] = anyio.sleep) -> None:
        self.delay = delay
        self._clock = clock
        self._sleep = sleep
        self._due: float | None = None

    async def next(self) -> None:
        """Wait until the next piece is due (always a checkpoint: other tasks run meanwhile)."""
        now = self._clock()
        self._due = (now if self._due is None else self._due) + self.delay
        await self._sleep(max(0.0, self._due - now))


def chunk_words(text: str, per_chunk: int) -> list[str]:
    """Split into pieces of `per_chunk` words, keeping all whitespace (joins back exactly)."""
    words = _WORD.findall(text)
    return ["".join(words[i:i + per_chunk]) for i in range(0, len(words), per_chunk)]


class ScriptedProvider(ConfiguredProvider):
    name = "scripted"
    capabilities = PROVIDERS["scripted"]

    @classmethod
    def for_agent(cls, agent: AgentConfig, partner: str, credentials: Credentials) -> Self:
        return cls(agent, partner)

    def __init__(self, agent: AgentConfig, partner: str) -> None:
        self.agent = agent
        self.partner = partner
        self.script = agent.script or ScriptConfig(rule="count")
        # The latest requests, for tests and demos to look at (bounded: runs can be long).
        self.requests: deque[Request] = deque(maxlen=REQUESTS_KEPT)

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        self.requests.append(request)
        # The agent's own earlier replies are its assistant messages; counting them (rather than
        # calls) keeps replies stable across retries and resumed runs.
        index = sum(1 for m in request.messages if m.role == "assistant")
        reply, thinking = self._reply(request, index)
        script = self.script
        if script.first_token_delay:
            await anyio.sleep(script.first_token_delay)
        pace = Pacer(script.delay)
        for piece in chunk_words(thinking, script.chunk_words):
            yield ThinkingDelta(piece)
            await pace.next()
        for piece in chunk_words(reply, script.chunk_words):
            yield TextDelta(piece)
            await pace.next()
        # Counted, not joined: a joined copy of a long history would cost more each turn.
        prompt = len(request.system) + sum(len(m.content) for m in request.messages)
        yield UsageReport(estimate_text_tokens(prompt),
                          estimate_text_tokens(len(thinking) + len(reply)))
        yield Finished("end_turn", self.agent.model)

    def _reply(self, request: Request, index: int) -> tuple[str, str]:
        script = self.script
        reply_number = index + 1
        values = {"name": self.agent.name, "partner": self.partner, "reply": reply_number}
        last = request.messages[-1].content if request.messages else ""
        for text, reply in script.when:
            if text in last:
                return render_placeholders(reply, values), ""
        if script.rule == "echo":
            return last, ""
        if script.rule == "count":
            return f"{self.agent.name} speaks for the {_ordinal(reply_number)} time.", ""
        replies = script.replies
        if not replies:  # a script of `when` replies only, and none of its texts was found
            raise BadRequest(f"script of {self.agent.name}: no `when` text is in the message and "
                             "there are no replies", provider=self.name)
        if index >= len(replies):
            if script.when_exhausted == "fail":
                raise BadRequest(f"script of {self.agent.name} has only {len(replies)} replies",
                                 provider=self.name)
            index = len(replies) - 1 if script.when_exhausted == "repeat_last" else (
                index % len(replies))
        thinking = script.thinking[index] if index < len(script.thinking) else ""
        return (render_placeholders(replies[index], values),
                render_placeholders(thinking, values))

    async def aclose(self) -> None:
        return None


def _ordinal(n: int) -> str:
    suffix = "th" if 10 <= n % 100 <= 20 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"
