"""OpenAI's two APIs in a pairing file: which one an `openai` agent speaks (`api`), its reasoning
settings, and the settings each API or a reasoning model refuses, reported before any request.

`api = "chat"` (the default) is Chat Completions, which every OpenAI-compatible server speaks;
`api = "responses"` is the Responses API, the only one in which OpenAI's reasoning models (the
o-series, the GPT-5 family) return their reasoning: summaries, and encrypted reasoning items to
hand back. The Responses API takes no `seed` and no stop sequences. OpenAI's reasoning models
refuse `temperature` and `top_p` while they reason; GPT-5.1 and later take them with reasoning
effort "none".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any, Literal

from intermodel.config.schema import REASONING, Checker, shown_value

__all__ = ["API_CHOICES", "Api", "check_openai_api", "is_reasoning_model", "takes_seed"]

Api = Literal["chat", "responses"]
API_CHOICES: tuple[Api, ...] = ("chat", "responses")

# OpenAI's reasoning models by id (a router's "openai/" prefix aside): o1, o3, o4-mini, GPT-5 and
# later, but not the GPT-5 chat models, which do not reason.
_REASONING_MODEL = re.compile(r"^(?:openai/)?(?:o\d|gpt-[5-9])(?!.*-chat)", re.IGNORECASE)
_REFUSED_BY_RESPONSES = ("seed", "stop")
_REFUSED_WHILE_REASONING = ("temperature", "top_p")


def is_reasoning_model(model: str) -> bool:
    """Whether `model` names one of OpenAI's reasoning models."""
    return bool(_REASONING_MODEL.match(model))


def takes_seed(agent: Mapping[str, Any]) -> bool:
    """Whether an agent's API takes a sampling seed, as far as its API choice goes (the
    Responses API takes none); `agent` is its table in a pairing file."""
    return bool(agent.get("api", "chat") != "responses")


def check_openai_api(check: Checker, agent: dict[str, Any], raw: Mapping[str, Any],
                     path: str) -> None:
    """Check an `openai` agent's `api` and `reasoning` settings and what they rule out, and fill
    in the reasoning defaults. `agent` is the agent's checked table, `raw` as the file wrote it.

    A reasoning model asked through the Responses API without a summary setting gets
    `summary = "auto"`: its thinking is what the Responses API is for, and without a summary
    it would arrive empty."""
    api = agent.get("api", "chat")
    reasoning = agent.get("reasoning")
    if reasoning is not None:
        agent["reasoning"] = reasoning = check.table(reasoning, f"{path}.reasoning", REASONING)
        if api != "responses" and "api" not in set(raw) - set(agent):
            check.fail(f"{path}.reasoning", 'only with api = "responses" (for Chat Completions, '
                       "pass reasoning_effort through extra_body)")
    if api == "responses":
        for key in _REFUSED_BY_RESPONSES:
            if key in raw and agent.get(key) not in (None, []):  # a resolved config has stop []
                check.fail(f"{path}.{key}", "not accepted by the OpenAI Responses API; for a "
                           "compatible server that takes it, use extra_body")
    model = agent.get("model")
    if not isinstance(model, str) or not is_reasoning_model(model):
        return
    if api == "responses" and (reasoning or {}).get("summary") is None:
        agent["reasoning"] = {**(reasoning or {}), "summary": "auto"}
    effort = ((reasoning or {}).get("effort") if api == "responses"
              else agent.get("extra_body", {}).get("reasoning_effort"))
    if effort == "none":
        return
    how = ('reasoning.effort = "none"' if api == "responses"
           else 'reasoning_effort = "none" in extra_body')
    for key in _REFUSED_WHILE_REASONING:
        if key in raw and agent.get(key) is not None:
            check.fail(f"{path}.{key}", f"not accepted by OpenAI's reasoning models "
                       f"({shown_value(model)}) while they reason; GPT-5.1 and later take it "
                       f"with {how}")
