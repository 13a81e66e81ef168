"""Pairing files: schema, validation and the frozen `Pairing` they become."""

from __future__ import annotations

from intermodel.config.loader import from_resolved, load_pairing, parse_pairing
from intermodel.config.model import (
    AgentConfig,
    DialogueConfig,
    Pairing,
    RetryConfig,
    ScriptConfig,
    render_placeholders,
)

__all__ = [
    "AgentConfig",
    "DialogueConfig",
    "Pairing",
    "RetryConfig",
    "ScriptConfig",
    "from_resolved",
    "load_pairing",
    "parse_pairing",
    "render_placeholders",
]
