"""Which provider an agent's config asks for.

SDK modules are imported only when a pairing uses them, so `validate` and scripted runs start fast
and the local model's optional dependencies are needed only by local agents.
"""

from __future__ import annotations

from intermodel.config.model import AgentConfig
from intermodel.providers.base import Provider, ReplyLimits
from intermodel.security.secrets import Credentials

__all__ = ["CHARS_PER_TOKEN", "MIN_REPLY_CHARS", "make_provider", "reply_limits"]

# The reply cap's margin: real text averages about 4 characters per token; 32 leaves room for any
# honest reply of max_tokens tokens (long whitespace or code tokens included), and no more.
CHARS_PER_TOKEN = 32
MIN_REPLY_CHARS = 4096
_NETWORK = frozenset({"openai", "anthropic"})


def reply_limits(agent: AgentConfig) -> ReplyLimits | None:
    """The limits of one reply from the agent's server; None for in-process providers (the local
    model stops at max_tokens itself, scripted replies are finite)."""
    if agent.provider not in _NETWORK:
        return None
    chars = max(MIN_REPLY_CHARS, CHARS_PER_TOKEN * agent.sampling.max_tokens)
    return ReplyLimits(stall=agent.timeout, seconds=agent.max_reply_seconds,
                       chars=min(chars, agent.max_reply_chars))


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
