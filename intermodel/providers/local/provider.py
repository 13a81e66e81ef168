"""The `local` provider: a GGUF model run in-process with llama-cpp-python."""

from __future__ import annotations

import threading
from collections.abc import AsyncGenerator

import anyio
import anyio.to_thread

from intermodel.config.model import AgentConfig
from intermodel.errors import ProviderBroken, ProviderError
from intermodel.providers.base import Request, StreamEvent
from intermodel.providers.local.pool import POOL
from intermodel.providers.local.reply import End, Reply, sampler_options
from intermodel.providers.local.runtime import NAME, import_llama, model_path
from intermodel.providers.local.state import Snapshot

__all__ = ["LocalProvider"]


class LocalProvider:
    name = NAME

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
            with anyio.CancelScope(shield=True):
                await anyio.to_thread.run_sync(reply.finished.wait)

    async def context_limit(self) -> int | None:
        """The context the model runs with, loading it now (off the event loop) so the first
        turn does not wait for it; None if it cannot be loaded: the first reply says why."""
        return await anyio.to_thread.run_sync(self._load_for_limit)

    def _load_for_limit(self) -> int | None:
        with self.shared.lock:
            try:
                return self.shared.loaded().n_ctx
            except ProviderError:
                return None

    async def aclose(self) -> None:
        if self._closed:
            return
        self._closed = True
        self.snapshot = None
        await anyio.to_thread.run_sync(POOL.release, self.shared)
