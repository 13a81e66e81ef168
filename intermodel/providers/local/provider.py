"""The `local` provider: a GGUF model run in-process with llama-cpp-python."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator
from typing import Self

import anyio
import anyio.to_thread

from intermodel.config.capabilities import PROVIDERS
from intermodel.config.model import AgentConfig
from intermodel.config.request import Request
from intermodel.errors import ProviderBroken, ProviderError
from intermodel.providers.base import ConfiguredProvider, StreamEvent
from intermodel.providers.local.pool import POOL
from intermodel.providers.local.reply import End, Reply, sampler_options
from intermodel.providers.local.runtime import NAME, import_llama, model_path
from intermodel.providers.local.state import Snapshot
from intermodel.security.secrets import Credentials

__all__ = ["LocalProvider"]


class LocalProvider(ConfiguredProvider):
    name = NAME
    capabilities = PROVIDERS[NAME]

    @classmethod
    def for_agent(cls, agent: AgentConfig, partner: str, credentials: Credentials) -> Self:
        return cls(agent)

    def __init__(self, agent: AgentConfig) -> None:
        import_llama()
        self.agent = agent
        self.path = model_path(agent)
        sampler_options(agent.extra_body)
        self.shared = POOL.acquire(self.path, agent.context_size)
        self.snapshot: Snapshot | None = None  # touched only with shared.lock held
        self._closed = False

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        if self._closed:
            raise ProviderBroken("the provider is closed", provider=self.name)
        reply = Reply(self, request, sampler_options(request.extra_body))
        thread = threading.Thread(target=reply.run, name=f"intermodel-local-{self.agent.name}",
                                  daemon=True)
        thread.start()
        try:
            while True:
                for item in await reply.next_items():
                    if isinstance(item, End):
                        return
                    if isinstance(item, ProviderError):
                        raise item
                    for event in item:
                        yield event
        finally:
            reply.cancel.set()
            reply.wake()
            # Wait until the thread has let go of the model, unless it is loading it: a load
            # cannot be stopped, and the thread lets go (and frees a model no one uses) itself.
            with anyio.CancelScope(shield=True):
                while not await anyio.to_thread.run_sync(reply.finished.wait, 0.1):
                    if reply.loading:
                        break

    async def context_limit(self) -> int | None:
        """The context the model runs with, loading it now so the first turn does not wait for
        it; None if it cannot be loaded: the first reply says why.

        The load runs in a daemon thread of its own, which nothing waits for once this is
        cancelled: a model that takes long to load (a slow disk, a file that never ends) holds
        neither a stopped run nor the process's exit."""
        result: list[int | None] = [None]
        settled = threading.Event()

        def load() -> None:
            try:
                result[0] = self._load_for_limit()
            finally:
                settled.set()

        threading.Thread(target=load, name=f"intermodel-load-{self.agent.name}",
                         daemon=True).start()
        try:
            await anyio.to_thread.run_sync(settled.wait, abandon_on_cancel=True)
        finally:
            settled.set()  # cancelled: releases the worker thread waiting for the load
        return result[0]

    def _load_for_limit(self) -> int | None:
        self.shared.lock.acquire()
        try:
            return self.shared.loaded().n_ctx
        except ProviderError:
            return None
        finally:
            self.shared.let_go()

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.snapshot = None
        await anyio.to_thread.run_sync(POOL.release, self.shared)
