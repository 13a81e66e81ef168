"""Test doubles that are real implementations of the provider interface (no patching)."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Awaitable, Callable, Sequence
from contextlib import aclosing

import anyio

from intermodel.config.model import AgentConfig, Pairing
from intermodel.config.request import Request
from intermodel.engine.dialogue import Dialogue
from intermodel.engine.events import Event
from intermodel.engine.prepare import ProviderFactory
from intermodel.engine.session import Recorder
from intermodel.errors import ProviderError
from intermodel.providers.base import Provider, ProviderWrapper, StreamEvent, TextDelta
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Header, Record, RunEnd
from intermodel.security.secrets import Credentials


class FailingProvider(ProviderWrapper):
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


class Gate:
    """A door that replies wait at until the test opens it: the test decides when a turn may
    go on, so what it checks holds at any machine speed. Made outside any event loop (a
    screenshot test builds its app first), so its event is made when first waited on."""

    def __init__(self) -> None:
        self.is_open = False
        self._event: anyio.Event | None = None

    def open(self) -> None:
        self.is_open = True
        if self._event is not None:
            self._event.set()

    async def wait(self) -> None:
        if self.is_open:
            return
        if self._event is None:
            self._event = anyio.Event()
        await self._event.wait()


class GatedProvider(ProviderWrapper):
    """Wraps a provider; each reply after the first `after` passes its first `opening` events
    on, then waits at `gate` before the rest (so the turn is seen under way, and stays so,
    until the gate opens). With `opening=0` the reply waits before its first token."""

    def __init__(self, inner: Provider, gate: Gate, opening: int = 1, after: int = 0) -> None:
        self.inner = inner
        self.name = inner.name
        self.gate = gate
        self.opening = opening
        self.after = after
        self.calls = 0

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        held = self.calls >= self.after
        self.calls += 1
        passed = 0
        async with aclosing(self.inner.stream(request)) as events:
            async for event in events:
                if held and passed == self.opening:
                    await self.gate.wait()
                passed += 1
                yield event

    async def aclose(self) -> None:
        await self.inner.aclose()


def gated_scripted(gate: Gate, *names: str, opening: int = 1, after: int = 0) -> ProviderFactory:
    """A provider factory: scripted agents, those named (all if none is) held at `gate`."""

    def factory(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
        provider = ScriptedProvider(agent, partner)
        if names and agent.name not in names:
            return provider
        return GatedProvider(provider, gate, opening, after)

    return factory


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
