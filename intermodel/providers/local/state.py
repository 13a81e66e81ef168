"""Each agent's own context on a shared model: snapshots, and prompt evaluation that can stop."""

from __future__ import annotations

import ctypes
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from intermodel.providers.local.runtime import PREFILL_BATCH, import_llama

__all__ = ["Cancelled", "Snapshot", "prefill"]


@dataclass(frozen=True)
class Snapshot:
    """One agent's context: the token ids evaluated and llama.cpp's state for them."""

    tokens: Sequence[int]
    state: ctypes.Array[ctypes.c_uint8]

    @classmethod
    def take(cls, llm: Any) -> Snapshot:
        llama_cpp = import_llama()
        size = int(llama_cpp.llama_state_seq_get_size(llm.ctx, 0))
        state = (ctypes.c_uint8 * size)()
        llama_cpp.llama_state_seq_get_data(llm.ctx, state, size, 0)
        return cls(llm.input_ids[: llm.n_tokens].tolist(), state)

    def restore(self, llm: Any) -> None:
        llama_cpp = import_llama()
        llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx), -1, -1, -1)
        if llama_cpp.llama_state_seq_set_data(llm.ctx, self.state, len(self.state), 0) == 0:
            llm.reset()
            return
        llm.input_ids[: len(self.tokens)] = self.tokens
        llm.n_tokens = len(self.tokens)


class Cancelled(Exception):
    """Internal: the reply was stopped while it was being produced."""


def prefill(llm: Any, tokens: list[int], snapshot: Snapshot | None,
             cancel: threading.Event) -> None:
    """Bring the context to exactly `tokens`, reusing what is already evaluated, in batches
    small enough to stop between them."""
    live = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
    if snapshot is not None and llm.longest_token_prefix(snapshot.tokens, tokens) > live:
        snapshot.restore(llm)
        live = llm.longest_token_prefix(llm.input_ids[: llm.n_tokens].tolist(), tokens)
    keep = min(live, len(tokens) - 1)  # sampling needs fresh logits for the last prompt token
    llama_cpp = import_llama()
    if keep == 0 or not llama_cpp.llama_memory_seq_rm(llama_cpp.llama_get_memory(llm.ctx),
                                                      -1, keep, -1):
        llm.reset()  # no usable prefix, or a model whose memory cannot be cut mid-way
        keep = 0
    llm.n_tokens = keep
    for start in range(keep, len(tokens), PREFILL_BATCH):
        if cancel.is_set():
            raise Cancelled
        llm.eval(tokens[start:start + PREFILL_BATCH])
