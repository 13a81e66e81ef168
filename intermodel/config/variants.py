"""Derived pairings: the same pairing with another opener, budget, seed or agent.

Changes are made to the resolved table and validated again, so a variant is exactly as if its
file had said so — and its transcript records the variant, not the original.
"""

from __future__ import annotations

import copy
from collections.abc import Mapping
from typing import Any, TypeVar

from intermodel.config.capabilities import PROVIDERS
from intermodel.config.loader import config_from_resolved
from intermodel.config.model import RunSpec
from intermodel.config.responses import takes_seed

__all__ = ["SEEDLESS_PROVIDERS", "vary"]

# Providers whose API takes no seed (Anthropic's refuses sampling settings altogether).
SEEDLESS_PROVIDERS = frozenset(name for name, caps in PROVIDERS.items() if not caps.seeds)


Spec = TypeVar("Spec", bound=RunSpec)


def vary(
    spec: Spec,
    *,
    name: str | None = None,
    opener: str | None = None,
    max_turns: int | None = None,
    seed: int | None = None,
    agents: Mapping[str, Mapping[str, Any]] | None = None,
    source: str | None = None,
) -> Spec:
    """A new pairing (or panel) with the given changes. `agents` replaces whole agent tables
    (keeping the agent's name, so a conversation so far still reads right); `seed` goes to every
    agent whose API takes one (not Anthropic's, nor OpenAI's Responses API). For a panel,
    `opener` is its message and `max_turns` does not apply."""
    resolved = copy.deepcopy(dict(spec.resolved))
    if name is not None:
        resolved["name"] = name
    if spec.kind == "panel":
        if opener is not None:
            resolved["panel"]["prompt"] = opener
    else:
        dialogue = resolved["dialogue"]
        if opener is not None:
            dialogue["opener"] = opener
        if max_turns is not None:
            dialogue["max_turns"] = max_turns
    for agent_name, table in (agents or {}).items():
        if agent_name not in resolved["agents"]:
            raise KeyError(agent_name)
        resolved["agents"][agent_name] = copy.deepcopy(dict(table))
    if seed is not None:
        for table in resolved["agents"].values():
            if table.get("provider") not in SEEDLESS_PROVIDERS and takes_seed(table):
                table["seed"] = seed
    varied = config_from_resolved(resolved, source=source or spec.source)
    assert isinstance(varied, type(spec))  # the resolved table still says which kind it is
    return varied
