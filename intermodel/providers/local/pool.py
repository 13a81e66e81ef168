"""Agents on one model file share one loaded model, counted by reference.

A model is used under its `lock`, by one thread at a time, and freed when its last user lets go.
Letting go never waits for the lock: loading a model cannot be interrupted and may take long (a
slow disk, a file that never ends), so when the last user leaves while a thread holds the lock,
that thread frees the model as it lets go of it (`let_go`)."""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from pathlib import Path

from intermodel.providers.local.runtime import LoadedModel, load_model

__all__ = ["POOL", "Pool", "SharedModel"]


@dataclass(eq=False)
class SharedModel:
    """One model file as agents share it. `lock` guards everything done with the model."""

    path: Path
    context_size: int | None
    lock: threading.Lock = field(default_factory=threading.Lock)
    users: int = 0
    model: LoadedModel | None = None
    closing: bool = False  # its last user has gone: free the model once the lock is let go

    def loaded(self) -> LoadedModel:
        """The model, loaded on first use; call with `lock` held."""
        if self.model is None:
            self.model = load_model(self.path, self.context_size)
        return self.model

    def let_go(self) -> None:
        """Release `lock`; free the model if its last user has gone meanwhile."""
        self.lock.release()
        if self.closing:
            self.free_if_idle()

    def free_if_idle(self) -> None:
        """Free the model now unless a thread holds it (that thread frees it as it lets go)."""
        if not self.lock.acquire(blocking=False):
            return
        try:
            if self.model is not None:
                self.model.llm.close()
                self.model = None
        finally:
            self.lock.release()


class Pool:
    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._entries: dict[tuple[Path, int | None], SharedModel] = {}

    def acquire(self, path: Path, context_size: int | None) -> SharedModel:
        with self._lock:
            key = (path, context_size)
            shared = self._entries.get(key)
            if shared is None:
                shared = self._entries[key] = SharedModel(path, context_size)
            shared.users += 1
            return shared

    def release(self, shared: SharedModel) -> None:
        """Drop one user; free the model with the last one, now or, while a thread is using or
        loading it, as that thread lets go."""
        with self._lock:
            shared.users -= 1
            if shared.users > 0:
                return
            del self._entries[(shared.path, shared.context_size)]
        shared.closing = True
        shared.free_if_idle()


POOL = Pool()
