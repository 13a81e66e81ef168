"""Providers: one module per API, all behind the small interface in `base`."""

from __future__ import annotations

from intermodel.providers.base import (
    Finished,
    Message,
    Provider,
    Request,
    Sampling,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)

__all__ = [
    "Finished",
    "Message",
    "Provider",
    "Request",
    "Sampling",
    "StreamEvent",
    "TextDelta",
    "ThinkingDelta",
    "UsageReport",
]
