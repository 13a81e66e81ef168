"""Agents on one model file share one loaded model, counted by reference."""

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

    def loaded(self) -> LoadedModel:
        """The model, loaded on first use; call with `lock` held."""
        if self.model is None:
            self.model = load_model(self.path, self.context_size)
        return self.model


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
        """Drop one user; free the model with the last one (blocks while it is in use)."""
        with self._lock:
            shared.users -= 1
            if shared.users > 0:
                return
            del self._entries[(shared.path, shared.context_size)]
        with shared.lock:
            if shared.model is not None:
                shared.model.llm.close()
                shared.model = None


POOL = Pool()
