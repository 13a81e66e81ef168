"""Test doubles that are real implementations of the provider interface (no patching)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence

import anyio

from intermodel.config.model import Pairing
from intermodel.config.request import Request
from intermodel.engine.dialogue import Dialogue
from intermodel.engine.events import Event
from intermodel.engine.session import Recorder
from intermodel.errors import ProviderError
from intermodel.providers.base import Provider, StreamEvent, TextDelta
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Header, Record, RunEnd


class FailingProvider:
    """Wraps a provider; call number n (from 0) fails with `plan[n]` after streaming
    `partial` text, when `plan[n]` is an error."""

    def __init__(self, inner: Provider, plan: Sequence[ProviderError | None],
                 partial: str = "half a rep") -> None:
        self.inner = inner
        self.name = inner.name
        self.plan = list(plan)
        self.partial = partial
        self.calls = 0

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        call = self.calls
        self.calls += 1
        error = self.plan[call] if call < len(self.plan) else None
        if error is not None:
            if self.partial:
                yield TextDelta(self.partial)
            raise error
        async for event in self.inner.stream(request):
            yield event

    async def aclose(self) -> None:
        await self.inner.aclose()


def scripted_providers(pairing: Pairing) -> dict[str, ScriptedProvider]:
    return {a.name: ScriptedProvider(a, pairing.partner_of(a.name)) for a in pairing.agents}


class MemoryRecorder:
    """Keeps what a run records in a list (the transcript writer's interface)."""

    def __init__(self) -> None:
        self.records: list[Header | Record] = []

    async def record(self, record: Header | Record) -> None:
        self.records.append(record)


async def run_dialogue(
    pairing: Pairing,
    providers: dict[str, Provider] | None = None,
    *,
    react: Callable[[Dialogue, Event], Awaitable[None] | None] | None = None,
    recorder: Recorder | None = None,
    run_id: str | None = None,
    timeout: float = 20,
) -> tuple[RunEnd, list[Event]]:
    """Run to the end; `react` sees every published event and may send controls."""
    dialogue = Dialogue(pairing, providers or scripted_providers(pairing), recorder=recorder,
                        run_id=run_id)
    subscription = dialogue.subscribe()
    seen: list[Event] = []
    end: RunEnd | None = None

    async def watch() -> None:
        async for event in subscription:
            seen.append(event)
            if react is not None:
                result = react(dialogue, event)
                if result is not None:
                    await result

    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            end = await dialogue.run()
    assert end is not None
    return end, seen
