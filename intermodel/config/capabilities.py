"""What each provider's API accepts and can do: one declaration per provider, read everywhere.

The config checks (which settings an agent of this provider may have), seed variants (which APIs
take a seed) and the reply limits (which replies come over the network) all read these facts
here, and each provider class declares its own entry as its `capabilities`. They live in `config`,
below the providers, so a file can be checked without importing any SDK (the anthropic SDK alone
takes seconds to import on a cold start): `providers.registry` maps the same names to classes.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

__all__ = ["OPTIONS", "PROVIDERS", "SAMPLING_SETTINGS", "Capabilities", "Option",
           "SamplingSetting", "ThinkingBudget", "providers_with"]

SamplingSetting = Literal["temperature", "top_p", "seed"]
# The sampling settings an API may refuse; max_tokens and stop sequences every provider takes.
SAMPLING_SETTINGS: tuple[SamplingSetting, ...] = ("temperature", "top_p", "seed")
# Agent settings that belong to one kind of provider; others refuse them.
Option = Literal["script", "context_size", "api", "reasoning"]
OPTIONS: tuple[Option, ...] = ("script", "context_size", "api", "reasoning")


@dataclass(frozen=True)
class ThinkingBudget:
    """A provider takes `[thinking] budget_tokens`: at least `minimum`, and below max_tokens when
    `below_max_tokens` (Anthropic counts thinking inside max_tokens)."""

    minimum: int = 1
    below_max_tokens: bool = False


@dataclass(frozen=True)
class Capabilities:
    """One provider's facts.

    `network`: it talks to a server over HTTP, so it takes `base_url` and an API key (`key_env`,
    the default variable) and its replies get `ReplyLimits`. `default_model`: the model when the
    file names none (None: the file must). `model_is_file`: the model is a file, relative to the
    pairing file. `sampling`: the sampling settings its API accepts; `refusal` says why it takes
    no others, for the config check's message. `thinking_budget`: whether (and how) it takes a
    thinking budget. `options`: the agent settings only this kind of provider takes.
    """

    network: bool
    key_env: str | None = None
    default_model: str | None = None
    model_is_file: bool = False
    sampling: frozenset[SamplingSetting] = frozenset(SAMPLING_SETTINGS)
    refusal: str = ""
    thinking_budget: ThinkingBudget | None = None
    options: frozenset[Option] = frozenset()

    @property
    def seeds(self) -> bool:
        """Whether its API takes a sampling seed (seed variants skip those that do not)."""
        return "seed" in self.sampling


# The providers intermodel knows, in the order the config check lists them. Adding one: its
# entry here, its class in `providers/` (declaring `capabilities = PROVIDERS[name]`), and one
# line in `providers.registry.REGISTRY`.
PROVIDERS: Mapping[str, Capabilities] = {
    "openai": Capabilities(network=True, key_env="OPENAI_API_KEY",
                           options=frozenset({"api", "reasoning"})),
    "anthropic": Capabilities(
        network=True, key_env="ANTHROPIC_API_KEY", sampling=frozenset(),
        refusal="the Anthropic Messages API (version 2026-10-21, which the anthropic SDK sends, "
                "refuses sampling settings); for an Anthropic-compatible server that takes it, "
                "use extra_body",
        thinking_budget=ThinkingBudget(minimum=1024, below_max_tokens=True)),
    "scripted": Capabilities(network=False, default_model="scripted",
                             thinking_budget=ThinkingBudget(), options=frozenset({"script"})),
    "local": Capabilities(network=False, default_model="bundled", model_is_file=True,
                          options=frozenset({"context_size"})),
}


def providers_with(option: Option) -> tuple[str, ...]:
    """The providers that take an agent setting of their own kind."""
    return tuple(name for name, caps in PROVIDERS.items() if option in caps.options)
