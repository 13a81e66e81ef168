"""Which provider class an agent's config asks for: the registry of provider names.

Each entry loads its class when a run first uses it, so the SDK modules are imported only when a
pairing uses them: scripted runs start fast, and the local model's optional dependencies are
needed only by local agents. The names are those of `config.capabilities.PROVIDERS`, where the
config check finds them (a test keeps the two equal).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from intermodel.config.capabilities import PROVIDERS
from intermodel.config.model import AgentConfig
from intermodel.providers.base import ConfiguredProvider, Provider, ReplyLimits
from intermodel.security.secrets import Credentials

__all__ = ["APIS", "CHARS_PER_TOKEN", "MIN_REPLY_CHARS", "REGISTRY", "make_provider",
           "provider_class", "reply_limits"]

# The reply cap's margin: real text averages about 4 characters per token; 32 leaves room for any
# honest reply of max_tokens tokens (long whitespace or code tokens included), and no more.
CHARS_PER_TOKEN = 32
MIN_REPLY_CHARS = 4096


def reply_limits(agent: AgentConfig) -> ReplyLimits | None:
    """The limits of one reply from the agent's server; None for in-process providers (the local
    model stops at max_tokens itself, scripted replies are finite)."""
    if not PROVIDERS[agent.provider].network:
        return None
    chars = max(MIN_REPLY_CHARS, CHARS_PER_TOKEN * agent.sampling.max_tokens)
    return ReplyLimits(stall=agent.timeout, seconds=agent.max_reply_seconds,
                       chars=min(chars, agent.max_reply_chars))


def _openai() -> type[ConfiguredProvider]:
    from intermodel.providers.openai import OpenAIProvider

    return OpenAIProvider


def _openai_responses() -> type[ConfiguredProvider]:
    from intermodel.providers.openai_responses import OpenAIResponsesProvider

    return OpenAIResponsesProvider


def _anthropic() -> type[ConfiguredProvider]:
    from intermodel.providers.anthropic import AnthropicProvider

    return AnthropicProvider


def _scripted() -> type[ConfiguredProvider]:
    from intermodel.providers.scripted import ScriptedProvider

    return ScriptedProvider


def _local() -> type[ConfiguredProvider]:
    from intermodel.providers.local import LocalProvider

    return LocalProvider


# Provider name -> its class, loaded on first use. Adding a provider: its module, a loader like
# those above, one line here, and its capabilities in config.capabilities.PROVIDERS.
REGISTRY: Mapping[str, Callable[[], type[ConfiguredProvider]]] = {
    "openai": _openai,
    "anthropic": _anthropic,
    "scripted": _scripted,
    "local": _local,
}


# A provider that speaks more than one API (`api` in its agent's config): the class of each API
# other than its default.
APIS: Mapping[tuple[str, str], Callable[[], type[ConfiguredProvider]]] = {
    ("openai", "responses"): _openai_responses,
}


def provider_class(name: str, api: str = "chat") -> type[ConfiguredProvider]:
    """The class of the provider called `name` (speaking `api`, where it speaks several);
    ValueError for a name no provider has."""
    load = APIS.get((name, api)) or REGISTRY.get(name)
    if load is None:
        raise ValueError(f"unknown provider {name!r} (known: {', '.join(REGISTRY)})")
    return load()


def make_provider(agent: AgentConfig, partner: str, credentials: Credentials) -> Provider:
    """The provider an agent's config asks for, ready to enter (`async with`). An agent with an
    endpoint pool (`base_urls`) gets one provider per server, used as one (`pool`), sharing the
    process's count of each server's load."""
    cls = provider_class(agent.provider, agent.api)
    if not agent.base_urls:
        return cls.for_agent(agent, partner, credentials)
    from intermodel.providers.pool import SHARED, PooledProvider

    members = [cls.for_agent(agent.at_endpoint(url), partner, credentials)
               for url in agent.base_urls]
    return PooledProvider(members, SHARED.pool(agent.base_urls), agent.endpoint_cool_down)
