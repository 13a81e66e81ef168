"""An `openai` agent's API (`api`), its reasoning settings, and what `validate` reports before
any request: what the Responses API has no place for, and what OpenAI's reasoning models refuse
while they reason."""

from __future__ import annotations

import pytest

from intermodel.config import parse_pairing
from intermodel.config.responses import is_reasoning_model
from intermodel.config.variants import vary
from intermodel.errors import ConfigError


def pairing_text(gpt: str, *, model: str = "gpt-5.2", api: str = "responses") -> str:
    return f"""
name = "apis"
[dialogue]
opener = "Go."
[agents.gpt]
provider = "openai"
api = "{api}"
model = "{model}"
{gpt}
[agents.other]
provider = "scripted"
[agents.other.script]
replies = ["fine"]
"""


def issues(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_pairing(text, source="apis.toml")
    return [f"{issue.path}: {issue.message}" for issue in caught.value.issues]


def test_the_responses_api_has_no_seed_and_no_stop() -> None:
    found = issues(pairing_text('seed = 3\nstop = ["END"]', model="gpt-4.1"))
    assert found == [
        "agents.gpt.seed: not accepted by the OpenAI Responses API; for a compatible server "
        "that takes it, use extra_body",
        "agents.gpt.stop: not accepted by the OpenAI Responses API; for a compatible server "
        "that takes it, use extra_body"]
    chat = parse_pairing(pairing_text('seed = 3\nstop = ["END"]', api="chat"), source="x")
    assert chat.agent("gpt").sampling.seed == 3


@pytest.mark.parametrize("api", ["responses", "chat"])
def test_a_reasoning_model_refuses_sampling_while_it_reasons(api: str) -> None:
    found = issues(pairing_text("temperature = 0.7\ntop_p = 0.9", api=api))
    how = ('reasoning.effort = "none"' if api == "responses"
           else 'reasoning_effort = "none" in extra_body')
    assert found == [f"agents.gpt.{key}: not accepted by OpenAI's reasoning models ('gpt-5.2') "
                     f"while they reason; GPT-5.1 and later take it with {how}"
                     for key in ("temperature", "top_p")]


@pytest.mark.parametrize(("api", "settings"), [
    ("responses", '[agents.gpt.reasoning]\neffort = "none"'),
    ("chat", '[agents.gpt.extra_body]\nreasoning_effort = "none"')])
def test_without_reasoning_it_takes_sampling_settings(api: str, settings: str) -> None:
    pairing = parse_pairing(pairing_text("temperature = 0.7\n" + settings, api=api), source="x")
    assert pairing.agent("gpt").sampling.temperature == 0.7


def test_other_models_take_sampling_settings() -> None:
    pairing = parse_pairing(pairing_text("temperature = 0.7", model="gpt-4.1"), source="x")
    assert pairing.agent("gpt").sampling.temperature == 0.7


@pytest.mark.parametrize(("model", "reasons"), [
    ("gpt-5.2", True), ("gpt-5-mini", True), ("GPT-5", True), ("o3", True), ("o4-mini", True),
    ("openai/gpt-5.1", True), ("gpt-5-chat-latest", False), ("gpt-4.1", False),
    ("gpt-4o", False), ("omni-moderation", False), ("qwen3", False)])
def test_which_models_reason(model: str, reasons: bool) -> None:
    assert is_reasoning_model(model) is reasons


def test_reasoning_settings_reach_the_agent_and_a_reasoning_model_gets_a_summary() -> None:
    explicit = parse_pairing(pairing_text('[agents.gpt.reasoning]\neffort = "high"\n'
                                          'summary = "detailed"'), source="x")
    assert explicit.agent("gpt").reasoning == {"effort": "high", "summary": "detailed"}
    assert explicit.agent("gpt").api == "responses"
    default = parse_pairing(pairing_text(""), source="x")
    assert default.agent("gpt").reasoning == {"summary": "auto"}
    assert default.resolved["agents"]["gpt"]["reasoning"] == {"summary": "auto"}
    plain = parse_pairing(pairing_text("", model="gpt-4.1"), source="x")
    assert plain.agent("gpt").reasoning == {}
    chat = parse_pairing(pairing_text("", api="chat"), source="x")
    assert (chat.agent("gpt").api, chat.agent("gpt").reasoning) == ("chat", {})


def test_reasoning_settings_only_where_they_are_sent() -> None:
    assert issues(pairing_text('[agents.gpt.reasoning]\neffort = "high"', api="chat")) == [
        'agents.gpt.reasoning: only with api = "responses" (for Chat Completions, pass '
        "reasoning_effort through extra_body)"]
    assert issues(pairing_text('[agents.gpt.reasoning]\neffort = "huge"\nsummry = "auto"')) == [
        "agents.gpt.reasoning.effort: expected one of 'none', 'minimal', 'low', 'medium', "
        "'high', 'xhigh', got 'huge'",
        "agents.gpt.reasoning.summry: unknown key; did you mean 'summary'? (valid keys: effort, "
        "summary)"]
    text = pairing_text("").replace('provider = "scripted"',
                                    'provider = "scripted"\napi = "chat"\nreasoning = {}')
    assert issues(text) == ['agents.other.api: only for provider = "openai"',
                            'agents.other.reasoning: only for provider = "openai"']
    assert issues(pairing_text("", api="completions")) == [
        "agents.gpt.api: expected one of 'chat', 'responses', got 'completions'"]


def test_seed_variants_leave_the_responses_api_alone() -> None:
    text = pairing_text("", model="gpt-4.1").replace(
        '[agents.other]\nprovider = "scripted"\n[agents.other.script]\nreplies = ["fine"]',
        '[agents.chat]\nprovider = "openai"\nmodel = "gpt-4.1"')
    varied = vary(parse_pairing(text, source="x"), seed=42)
    assert varied.agent("gpt").sampling.seed is None
    assert varied.agent("chat").sampling.seed == 42
