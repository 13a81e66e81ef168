"""Producing one turn: stream an agent's provider, retry what can be retried, keep the record.

A `TurnProducer` streams one request at a time. Text and thinking are published piece by piece as
they arrive; the turn is complete only with the provider's `Finished`. Transient failures are
retried after the policy's wait (each recorded as a `retry`, the partial reply discarded, never
glued to the next attempt); a server that says the request is too long gets a trimmed request
(`fit(refused=True)`); a fatal error, a stop or the time budget ends the turn, and whatever had
streamed is recorded as a `discard`. The dialogue (and a panel) decide what a failed turn means
for the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field
from typing import NoReturn

import anyio

from intermodel.errors import ContextTooLong, ProviderError, StreamInterrupted, TransientError
from intermodel.events import Event, Retrying, TextChunk, ThinkingChunk, TurnDiscarded, TurnStarted
from intermodel.providers.base import (
    Finished,
    Provider,
    Request,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)
from intermodel.records import Discard, Retry, Turn, Usage, now_iso
from intermodel.retry import RetryPolicy
from intermodel.secrets import Redactor

__all__ = ["Fit", "TurnFailed", "TurnProducer"]

# The request for the turn; with refused=True, a smaller one (the server said it was too long).
Fit = Callable[[bool], Awaitable[Request]]


class TurnFailed(Exception):
    """The turn could not be completed. `reason` is how the run should end ("error",
    "time_budget", or the stop's reason); `detail` a line for people ("" when obvious)."""

    def __init__(self, reason: str, detail: str = "") -> None:
        super().__init__(reason)
        self.reason = reason
        self.detail = detail


@dataclass
class _Partial:
    """A reply as it streams in."""

    text: list[str] = field(default_factory=list)
    thinking: list[str] = field(default_factory=list)
    usage: Usage = field(default_factory=Usage)
    finished: Finished | None = None
    ttft: float | None = None

    @property
    def chars(self) -> int:
        return sum(map(len, self.text)) + sum(map(len, self.thinking))


class TurnProducer:
    def __init__(
        self,
        *,
        emit: Callable[[Event], Awaitable[None]],
        publish: Callable[[Event], None],
        retry: RetryPolicy,
        redact: Redactor,
        deadline: Callable[[], float],
        stop_reason: Callable[[], str | None],
    ) -> None:
        self._emit = emit  # recorded events (awaited: on disk before anyone sees them)
        self._publish = publish  # per-token events (never recorded)
        self._retry = retry
        self._redact = redact
        self._deadline = deadline
        self._stop_reason = stop_reason
        self._scope: anyio.CancelScope | None = None
        self.sleeping = False  # waiting to retry

    def cancel(self) -> None:
        """End the turn under way now (its partial reply is discarded and recorded)."""
        if self._scope is not None:
            self._scope.cancel()

    async def produce(self, index: int, agent: str, provider: Provider, fit: Fit,
                      max_turns: int) -> tuple[Turn, Request]:
        """The completed turn and the request it answered; raises TurnFailed."""
        request = await fit(False)
        failures = 0
        waited = 0.0
        while True:
            partial = _Partial()
            await self._emit(TurnStarted(index, agent, failures + 1, max_turns))
            started = anyio.current_time()
            try:
                with self._cancellable() as scope:
                    await self._stream(provider, request, index, agent, partial, started)
            except TransientError as error:
                failures += 1
                wait = self._retry.wait_before_retry(error, failures, waited)
                if wait is None:
                    await self._fail(index, agent, partial, error, failures, gave_up=True)
                await self._record_retry(index, agent, failures, error, wait, partial)
                with self._cancellable(sleeping=True) as scope:
                    await anyio.sleep(wait)
                waited += wait
                if scope.cancelled_caught:
                    await self._cancelled(index, agent, _Partial())
                continue
            except ContextTooLong as error:
                # The server measured better than our estimate: trim harder, go again.
                failures += 1
                await self._record_retry(index, agent, failures, error, 0.0, partial)
                request = await fit(True)
                continue
            except ProviderError as error:  # fatal: retrying cannot help
                await self._fail(index, agent, partial, error, failures + 1)
            except anyio.get_cancelled_exc_class():  # cancelled from outside the run
                with anyio.CancelScope(shield=True):
                    await self._discard(index, agent, self._stop_reason() or "stopped", partial)
                raise
            if scope.cancelled_caught:
                await self._cancelled(index, agent, partial)
            latency = anyio.current_time() - started
            return self._turn(index, agent, partial, request, latency, failures + 1), request

    @contextmanager
    def _cancellable(self, *, sleeping: bool = False) -> Iterator[anyio.CancelScope]:
        """A scope that a stop (or the time budget) cancels."""
        with anyio.CancelScope(deadline=self._deadline()) as scope:
            self._scope, self.sleeping = scope, sleeping
            try:
                yield scope
            finally:
                self._scope, self.sleeping = None, False

    async def _stream(self, provider: Provider, request: Request, index: int, agent: str,
                      partial: _Partial, started: float) -> None:
        # The hot path: once per token. Exact type checks and bound methods keep it cheap.
        publish = self._publish
        add_text = partial.text.append
        # A server may echo a key: it is removed from the reply as it streams, so the screen, the
        # transcript and the partner's view all get the same text without it.
        text_scrub, thinking_scrub = self._redact.stream(), self._redact.stream()
        clean_text, clean_thinking = text_scrub.feed, thinking_scrub.feed

        def flush_thinking() -> None:
            if rest := thinking_scrub.flush():
                partial.thinking.append(rest)
                publish(ThinkingChunk(index, agent, rest))

        def flush_text() -> None:
            if rest := text_scrub.flush():
                add_text(rest)
                publish(TextChunk(index, agent, rest))

        try:
            async with aclosing(provider.stream(request)) as events:
                async for event in events:
                    if type(event) is TextDelta:
                        if partial.ttft is None:
                            partial.ttft = anyio.current_time() - started
                        flush_thinking()  # what it held back comes first (cheap when nothing)
                        if piece := clean_text(event.text):
                            add_text(piece)
                            publish(TextChunk(index, agent, piece))
                    elif isinstance(event, ThinkingDelta):
                        if partial.ttft is None:
                            partial.ttft = anyio.current_time() - started
                        flush_text()
                        if piece := clean_thinking(event.text):
                            partial.thinking.append(piece)
                            publish(ThinkingChunk(index, agent, piece))
                    elif isinstance(event, UsageReport):
                        partial.usage = Usage(event.input_tokens, event.output_tokens,
                                              event.reasoning_tokens)
                    elif isinstance(event, Finished):
                        partial.finished = event
        finally:
            flush_thinking()
            flush_text()
        if partial.finished is None:
            raise StreamInterrupted("the stream ended without a finish", provider=provider.name)

    async def _record_retry(self, index: int, agent: str, attempt: int, error: ProviderError,
                            wait: float, partial: _Partial) -> None:
        await self._emit(Retrying(Retry(index, agent, attempt, error.kind,
                                        self._redact(error.message), error.status, wait,
                                        partial.chars, now_iso())))

    async def _fail(self, index: int, agent: str, partial: _Partial, error: ProviderError,
                    attempts: int, *, gave_up: bool = False) -> NoReturn:
        await self._discard(index, agent, "error", partial)
        tried = f" (gave up after {attempts} attempts)" if gave_up else ""
        raise TurnFailed("error", self._redact(f"{agent}: {error.describe()}{tried}"))

    async def _cancelled(self, index: int, agent: str, partial: _Partial) -> NoReturn:
        """The turn's scope was cancelled: by a stop, or by the time budget."""
        reason = self._stop_reason() or "time_budget"
        await self._discard(index, agent, reason, partial)
        raise TurnFailed(reason)

    async def _discard(self, index: int, agent: str, reason: str, partial: _Partial) -> None:
        if partial.text or partial.thinking or reason != "error":
            await self._emit(TurnDiscarded(Discard(
                index, agent, reason, "".join(partial.text), "".join(partial.thinking),
                now_iso())))

    @staticmethod
    def _turn(index: int, agent: str, partial: _Partial, request: Request, latency: float,
              attempts: int) -> Turn:
        finished = partial.finished
        assert finished is not None
        return Turn(
            index=index,
            agent=agent,
            text="".join(partial.text),
            thinking="".join(partial.thinking),
            signature=finished.signature,
            usage=partial.usage,
            latency=round(latency, 4),
            ttft=None if partial.ttft is None else round(partial.ttft, 4),
            stop_reason=finished.stop_reason,
            model=finished.model,
            attempts=attempts,
            request_hash=request.digest(),
            at=now_iso(),
        )
