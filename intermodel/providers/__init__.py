"""Providers: one module per API, all behind the small interface in `base`."""

from __future__ import annotations

from intermodel.providers.base import (
    HEARTBEAT,
    Finished,
    Heartbeat,
    Provider,
    ReplyLimits,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)

__all__ = [
    "HEARTBEAT",
    "Finished",
    "Heartbeat",
    "Provider",
    "ReplyLimits",
    "StreamEvent",
    "TextDelta",
    "ThinkingDelta",
    "UsageReport",
]
