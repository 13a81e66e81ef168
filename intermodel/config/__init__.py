"""Pairing, panel and experiment files: schema, validation and the frozen specs they become."""

from __future__ import annotations

from intermodel.config.loader import (
    config_from_resolved,
    from_resolved,
    load_config,
    load_pairing,
    parse_pairing,
)
from intermodel.config.model import (
    Addressee,
    AgentConfig,
    DialogueConfig,
    Pairing,
    Panel,
    RetryConfig,
    RunSpec,
    ScriptConfig,
    render_placeholders,
)

__all__ = [
    "Addressee",
    "AgentConfig",
    "DialogueConfig",
    "Pairing",
    "Panel",
    "RetryConfig",
    "RunSpec",
    "ScriptConfig",
    "config_from_resolved",
    "from_resolved",
    "load_config",
    "load_pairing",
    "parse_pairing",
    "render_placeholders",
]
