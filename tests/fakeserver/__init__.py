"""A fake OpenAI/Anthropic-compatible streaming server on loopback, with injectable faults.

It speaks Chat Completions (`/v1/chat/completions`), the Responses API (`/v1/responses`) and
Anthropic Messages (`/v1/messages`), as the real SDKs expect them.
"""

from __future__ import annotations

from .faults import TRANSIENT_MIX, Fault, FaultQueue, http_date
from .replies import DefaultResponder, Reply, Responder, ScriptedResponder, split_tokens
from .server import Backlogged, FakeServer, RecordedRequest

__all__ = [
    "TRANSIENT_MIX",
    "Backlogged",
    "DefaultResponder",
    "FakeServer",
    "Fault",
    "FaultQueue",
    "RecordedRequest",
    "Reply",
    "Responder",
    "ScriptedResponder",
    "http_date",
    "split_tokens",
]
