"""Producing one turn: stream an agent's provider, retry what can be retried, keep the record.

A `TurnProducer` streams one request at a time. Text and thinking are published piece by piece as
they arrive; the turn is complete only with the provider's `Finished`. Transient failures are
retried after the policy's wait (each recorded as a `retry`, the partial reply discarded, never
glued to the next attempt); a server that says the request is too long gets a trimmed request
(`fit(refused=True)`); a fatal error, a stop or the time budget ends the turn, and whatever had
streamed is recorded as a `discard` (its first DISCARD_KEPT characters, and its length).

A reply from a server has limits (`ReplyLimits`): a watchdog task ends an attempt that has had no
complete event for `stall` seconds, or has lasted `seconds`, as timed out (and it is retried);
past `chars` characters the reply is cut and kept, a length stop of intermodel's own. The
watchdog costs the per-token path nothing: it reads how far the reply has grown, every quarter of
`stall`. Usage counts no honest server sends (negative, fractional, beyond 2^53) are dropped with
a note rather than kept, or allowed to cost the reply.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Iterable, Iterator
from contextlib import aclosing, contextmanager
from dataclasses import dataclass, field, replace
from typing import NoReturn

import anyio
from anyio.lowlevel import checkpoint

from intermodel.config.request import Request
from intermodel.engine.events import (
    Event,
    Notice,
    Retrying,
    TextChunk,
    ThinkingChunk,
    TurnDiscarded,
    TurnStarted,
)
from intermodel.engine.retry import RetryPolicy
from intermodel.errors import (
    ContextTooLong,
    ProviderError,
    StreamInterrupted,
    TimedOut,
    TransientError,
)
from intermodel.providers.base import (
    Finished,
    Provider,
    ReplyLimits,
    Serving,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)
from intermodel.records import Discard, EndReason, ReasoningItem, Retry, Turn, Usage, now_iso
from intermodel.security.secrets import Redactor

__all__ = ["DISCARD_KEPT", "MAX_COUNT", "Fit", "TurnFailed", "TurnProducer"]

# How much of a discarded partial reply the transcript keeps (its full length is recorded too).
DISCARD_KEPT = 65_536
# The largest token count taken as a server's word: 2^53, exact as a JSON number anywhere.
MAX_COUNT = 2**53
_NO_CAP = 2**62  # an int: comparing two ints is the cheapest test the per-token path can make

# The request for the turn; with refused=True, a smaller one (the server said it was too long).
Fit = Callable[[bool], Awaitable[Request]]


class TurnFailed(Exception):
    """The turn could not be completed. `reason` is how the run should end ("error",
    "time_budget", or the stop's reason); `detail` a line for people ("" when obvious)."""

    def __init__(self, reason: EndReason, detail: str = "") -> None:
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
    events: int = 0  # events other than text, for the watchdog (text is counted by `text`)
    stalled: bool = False  # the watchdog ended the attempt
    cut: bool = False  # the reply passed its length cap and was ended here
    endpoint: str = ""  # the server of an endpoint pool the attempt went to
    notes: list[str] = field(default_factory=list)  # to record once the turn is complete

    @property
    def chars(self) -> int:
        return sum(map(len, self.text)) + sum(map(len, self.thinking))

    def progress(self) -> int:
        """Grows with every event: what the watchdog watches."""
        return len(self.text) + len(self.thinking) + self.events


class TurnProducer:
    def __init__(
        self,
        *,
        emit: Callable[[Event], Awaitable[None]],
        publish: Callable[[Event], None],
        retry: RetryPolicy,
        redact: Redactor,
        deadline: Callable[[], float],
        stop_reason: Callable[[], EndReason | None],
    ) -> None:
        self._emit = emit  # recorded events (awaited: on disk before anyone sees them)
        self._publish = publish  # per-token events (never recorded)
        self._retry = retry
        self._redact = redact
        self._deadline = deadline
        self._stop_reason = stop_reason
        self._scope: anyio.CancelScope | None = None
        self._stopped = False  # cancelled: every later scope is cancelled as it opens
        self.sleeping = False  # waiting to retry

    def cancel(self) -> None:
        """End the turn under way now (its partial reply is discarded and recorded), and any
        later attempt or wait of it as soon as it begins: a stop is final."""
        self._stopped = True
        if self._scope is not None:
            self._scope.cancel()

    async def produce(self, index: int, agent: str, provider: Provider, fit: Fit,
                      max_turns: int, limits: ReplyLimits | None = None) -> tuple[Turn, Request]:
        """The completed turn and the request it answered; raises TurnFailed. `limits` bound
        each attempt (a server's reply); None for in-process providers."""
        request = await fit(False)
        failures = 0
        waited = 0.0
        while True:
            partial = _Partial()
            await self._emit(TurnStarted(index, agent, failures + 1, max_turns))
            started = anyio.current_time()
            try:
                with self._cancellable() as scope:
                    if limits is None:
                        await self._stream(provider, request, index, agent, partial, started)
                    else:
                        await self._watched(provider, request, index, agent, partial, started,
                                            limits)
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
                    await self._discard(index, agent, self._stop_reason() or EndReason.STOPPED,
                                        partial)
                raise
            if scope.cancelled_caught:
                await self._cancelled(index, agent, partial)
            latency = anyio.current_time() - started
            turn = self._turn(index, agent, partial, request, latency, failures + 1)
            for note in partial.notes:
                await self._emit(Notice(self._redact(note)))
            return turn, request

    @contextmanager
    def _cancellable(self, *, sleeping: bool = False) -> Iterator[anyio.CancelScope]:
        """A scope that a stop (or the time budget) cancels; a stop that came while no scope
        was open (between attempts) cancels it at once."""
        with anyio.CancelScope(deadline=self._deadline()) as scope:
            self._scope, self.sleeping = scope, sleeping
            if self._stopped:
                scope.cancel()
            try:
                yield scope
            finally:
                self._scope, self.sleeping = None, False

    async def _watched(self, provider: Provider, request: Request, index: int, agent: str,
                       partial: _Partial, started: float, limits: ReplyLimits) -> None:
        """`_stream` under the reply's limits: a stall or the whole reply's deadline ends the
        attempt as timed out."""
        failure: Exception | None = None
        with anyio.CancelScope(deadline=started + limits.seconds) as whole:
            async with anyio.create_task_group() as tg:
                tg.start_soon(_watch, partial, limits.stall, whole)
                try:
                    await self._stream(provider, request, index, agent, partial, started,
                                       limits.chars)
                except Exception as exc:  # raised below, not wrapped in the task group's group
                    failure = exc
                tg.cancel_scope.cancel()
        if failure is not None:
            raise failure
        if whole.cancelled_caught:
            if partial.stalled:
                raise TimedOut(f"no complete event for {limits.stall:g} s (the server stalled)",
                               provider=provider.name)
            raise TimedOut(f"the reply took longer than {limits.seconds:g} s "
                           "(max_reply_seconds)", provider=provider.name)

    async def _stream(self, provider: Provider, request: Request, index: int, agent: str,
                      partial: _Partial, started: float, cap: int = _NO_CAP) -> None:
        # The hot path: once per token. Exact type checks, locals and bound methods keep it
        # cheap; what one kind's scrubber holds back is flushed only when the kind changes.
        publish = self._publish
        add_text, add_thinking = partial.text.append, partial.thinking.append
        size = 0  # characters of text and thinking so far, against `cap`
        first = True  # no text or thinking yet: the next is the first token
        thinking = False  # the last delta was thinking
        # Once the first piece is out, the producer yields once, so subscribers get it now
        # rather than after a burst the server sent at once has been parsed whole.
        first_out = True
        # A server may echo a key: it is removed from the reply as it streams, so the screen, the
        # transcript and the partner's view all get the same text without it.
        text_scrub, thinking_scrub = self._redact.stream(), self._redact.stream()
        clean_text, clean_thinking = text_scrub.feed, thinking_scrub.feed

        def flush_thinking() -> None:
            if rest := thinking_scrub.flush():
                add_thinking(rest)
                publish(ThinkingChunk(index, agent, rest))

        def flush_text() -> None:
            if rest := text_scrub.flush():
                add_text(rest)
                publish(TextChunk(index, agent, rest))

        try:
            async with aclosing(provider.stream(request)) as events:
                async for event in events:
                    if type(event) is TextDelta:
                        if first:
                            partial.ttft = anyio.current_time() - started
                            first = False
                        if thinking:  # what thinking held back comes first
                            thinking = False
                            flush_thinking()
                        text = event.text
                        if piece := clean_text(text):
                            add_text(piece)
                            publish(TextChunk(index, agent, piece))
                            if first_out:
                                first_out = False
                                await checkpoint()
                        else:
                            partial.events += 1  # held back, but a sign of life all the same
                        size += len(text)
                        if size > cap:
                            _cut(partial, request, cap, agent, index)
                            break
                    elif isinstance(event, ThinkingDelta):
                        if first:
                            partial.ttft = anyio.current_time() - started
                            first = False
                        if not thinking:
                            thinking = True
                            flush_text()
                        text = event.text
                        if piece := clean_thinking(text):
                            add_thinking(piece)
                            publish(ThinkingChunk(index, agent, piece))
                            if first_out:
                                first_out = False
                                await checkpoint()
                        else:
                            partial.events += 1
                        size += len(text)
                        if size > cap:
                            _cut(partial, request, cap, agent, index)
                            break
                    else:
                        partial.events += 1
                        if isinstance(event, UsageReport):
                            partial.usage = _usage(event, partial.notes, agent, index)
                        elif isinstance(event, Finished):
                            partial.finished = event
                        elif type(event) is Serving:
                            partial.endpoint = event.endpoint
        finally:
            flush_thinking()
            flush_text()
        if partial.finished is None:
            raise StreamInterrupted("the stream ended without a finish", provider=provider.name)

    async def _record_retry(self, index: int, agent: str, attempt: int, error: ProviderError,
                            wait: float, partial: _Partial) -> None:
        await self._emit(Retrying(Retry(index, agent, attempt, error.kind,
                                        self._redact(error.message), error.status, wait,
                                        partial.chars, now_iso(),
                                        endpoint=error.endpoint or partial.endpoint)))

    async def _fail(self, index: int, agent: str, partial: _Partial, error: ProviderError,
                    attempts: int, *, gave_up: bool = False) -> NoReturn:
        await self._discard(index, agent, EndReason.ERROR, partial)
        tried = f" (gave up after {attempts} attempts)" if gave_up else ""
        raise TurnFailed(EndReason.ERROR, self._redact(f"{agent}: {error.describe()}{tried}"))

    async def _cancelled(self, index: int, agent: str, partial: _Partial) -> NoReturn:
        """The turn's scope was cancelled: by a stop, or by the time budget."""
        reason = self._stop_reason() or EndReason.TIME_BUDGET
        await self._discard(index, agent, reason, partial)
        raise TurnFailed(reason)

    async def _discard(self, index: int, agent: str, reason: EndReason,
                       partial: _Partial) -> None:
        if partial.text or partial.thinking or reason is not EndReason.ERROR:
            text, thinking = "".join(partial.text), "".join(partial.thinking)
            await self._emit(TurnDiscarded(Discard(
                index, agent, reason, text[:DISCARD_KEPT], thinking[:DISCARD_KEPT], now_iso(),
                text_chars=len(text), thinking_chars=len(thinking))))

    def _turn(self, index: int, agent: str, partial: _Partial, request: Request, latency: float,
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
            client_stop=partial.cut,
            endpoint=partial.endpoint,
            reasoning_items=tuple(self._readable_items(finished.reasoning_items)),
        )

    def _readable_items(self, items: Iterable[ReasoningItem]) -> Iterator[ReasoningItem]:
        """Reasoning items with any known key taken out of their readable text, as from the
        thinking that streamed (the encrypted part is opaque: it goes back as it came)."""
        known = self._redact.known
        for item in items:
            content = None if item.content is None else tuple(map(known, item.content))
            yield replace(item, summary=tuple(map(known, item.summary)), content=content)


def _cut(partial: _Partial, request: Request, cap: int, agent: str, index: int) -> None:
    """The reply passed its cap without a finish: end it here, as a length stop."""
    partial.cut = True
    partial.finished = Finished("length", request.model)
    partial.notes.append(f"{agent}, turn {index}: the reply passed {cap:,.0f} characters "
                         "without finishing; intermodel cut it there (stop_reason length, "
                         "client_stop)")


async def _watch(partial: _Partial, stall: float, scope: anyio.CancelScope) -> None:
    """Cancel `scope` once the reply has not grown for `stall` seconds (checked every quarter
    of that, so it fires between `stall` and 1.25 x `stall` after the last event)."""
    seen = partial.progress()
    quiet_since = anyio.current_time()
    while True:
        await anyio.sleep(stall / 4)
        progress = partial.progress()
        now = anyio.current_time()
        if progress != seen:
            seen, quiet_since = progress, now
        elif now - quiet_since >= stall:
            partial.stalled = True
            scope.cancel()
            return


def _usage(report: UsageReport, notes: list[str], agent: str, index: int) -> Usage:
    """The counts as reported, minus any no honest server sends (noted, then left unknown)."""
    counts = []
    for name, value in (("input_tokens", report.input_tokens),
                        ("output_tokens", report.output_tokens),
                        ("reasoning_tokens", report.reasoning_tokens)):
        count = _count(value)
        if value is not None and count is None:
            shown = repr(value)
            if len(shown) > 40:
                shown = f"{shown[:20]}… ({len(shown)} characters)"
            notes.append(f"{agent}, turn {index}: the server reported {name} = {shown}; "
                         "recorded as unknown")
        counts.append(count)
    return Usage(*counts)


def _count(value: object) -> int | None:
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is int and 0 <= value <= MAX_COUNT:
        return value
    return None
