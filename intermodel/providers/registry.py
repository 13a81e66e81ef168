"""Which provider an agent's config asks for.

SDK modules are imported only when a pairing uses them, so `validate` and scripted runs start fast
and the local model's optional dependencies are needed only by local agents.
"""

from __future__ import annotations

from intermodel.config.model import AgentConfig
from intermodel.providers.base import Provider
from intermodel.secrets import Credentials

__all__ = ["make_provider"]


def make_provider(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
    """The provider an agent's config asks for, ready to stream."""
    if agent.provider == "scripted":
        from intermodel.providers.scripted import ScriptedProvider

        return ScriptedProvider(agent, partner)
    if agent.provider == "openai":
        from intermodel.providers.openai import OpenAIProvider

        return OpenAIProvider(agent, credentials)
    if agent.provider == "anthropic":
        from intermodel.providers.anthropic import AnthropicProvider

        return AnthropicProvider(agent, credentials)
    if agent.provider == "local":
        from intermodel.providers.local import LocalProvider

        return LocalProvider(agent)
    raise ValueError(f"unknown provider {agent.provider!r}")
