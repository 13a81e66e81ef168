from __future__ import annotations

from pathlib import Path

import pytest

from intermodel.config import from_resolved, load_config, load_pairing, parse_pairing
from intermodel.config.credentials import resolve_credentials
from intermodel.errors import ConfigError, MissingKeyError, UsageError
from tests.conftest import SCRIPTED, PairingFactory

REPO = Path(__file__).resolve().parents[2]
# Shaped like a real key, built here so no key-like string sits in the repository.
FAKE_KEY = "sk-" + "abcdefghijklmnopqrstuvwx"


def issues_of(text: str) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse_pairing(text, source="bad.toml")
    return [str(issue) for issue in caught.value.issues]


def test_scripted_pairing_fills_defaults(make_pairing: PairingFactory) -> None:
    pairing = make_pairing()
    assert pairing.agent_names == ("ada", "bo")
    assert pairing.dialogue.first == "ada"
    assert pairing.dialogue.opener_to == "ada"
    assert pairing.dialogue.opener_shared is False
    assert pairing.dialogue.share_thinking is False
    assert pairing.agent("ada").sampling.max_tokens == 1024
    assert pairing.retry.attempts == 30


def test_placeholders_fill_name_partner_and_budget(make_pairing: PairingFactory) -> None:
    pairing = make_pairing()
    assert pairing.system_prompt("ada") == "You are ada, talking with bo for 4 turns."
    assert pairing.system_prompt("bo") == "You are bo."


def test_literal_braces_survive_placeholders(make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace('"You are {name}."', '"Answer in JSON like {{\\"a\\": 1}}, {name}."')
    assert make_pairing(text).system_prompt("bo") == 'Answer in JSON like {"a": 1}, bo.'


def test_unknown_placeholder_is_reported_with_known_ones() -> None:
    text = SCRIPTED.replace("You are {name}.", "You are {nmae}.")
    [issue] = issues_of(text)
    assert issue.startswith("agents.bo.prompt: unknown placeholder {nmae}")
    assert "{partner}" in issue


def test_unknown_key_suggests_the_closest_valid_key() -> None:
    text = SCRIPTED.replace('provider = "scripted"\nprompt = "You are {name}."',
                            'provider = "scripted"\ntemprature = 0.5\nprompt = "You are {name}."')
    [issue] = issues_of(text)
    assert issue.startswith("agents.bo.temprature: unknown key; did you mean 'temperature'?")


def test_type_and_range_errors_name_the_dotted_path() -> None:
    text = SCRIPTED.replace("max_turns = 4", 'max_turns = "four"').replace(
        'provider = "scripted"\nprompt = "You are {name}."',
        'provider = "scripted"\ntop_p = 3\nprompt = "You are {name}."')
    issues = issues_of(text)
    assert "dialogue.max_turns: expected an integer, got a string ('four')" in issues
    assert "agents.bo.top_p: expected a value from 0 to 1, got 3" in issues


def test_every_problem_is_reported_at_once_with_the_file_name() -> None:
    text = SCRIPTED.replace("max_turns = 4", "max_turns = 0").replace(
        'provider = "scripted"\nprompt = "You are {name}."', 'provider = "skripted"')
    with pytest.raises(ConfigError) as caught:
        parse_pairing(text, source="pairs/x.toml")
    lines = str(caught.value).splitlines()
    assert len(lines) == 2
    assert all(line.startswith("pairs/x.toml: ") for line in lines)
    assert any("agents.bo.provider: expected one of 'openai', 'anthropic'" in ln for ln in lines)


def test_literal_api_key_is_refused_with_an_explanation() -> None:
    text = SCRIPTED.replace('[agents.bo]\nprovider = "scripted"',
                            '[agents.bo]\nprovider = "openai"\nmodel = "m"\napi_key = "abc"')
    text = text.replace("[agents.bo.script]", "[agents.bo.extra_body]").replace(
        'replies = ["bo one", "bo two", "bo three"]', "")
    [issue] = issues_of(text)
    assert issue.startswith("agents.bo.api_key: literal API keys are refused")
    assert "api_key_env" in issue


def test_a_key_pasted_into_api_key_env_is_refused() -> None:
    text = SCRIPTED.replace('[agents.bo]\nprovider = "scripted"',
                            '[agents.bo]\nprovider = "openai"\nmodel = "m"\n'
                            f'api_key_env = "{FAKE_KEY}"')
    text = text.replace("[agents.bo.script]\n", "").replace(
        'replies = ["bo one", "bo two", "bo three"]', "")
    # Refused before anything else is checked, so no other message quotes the key.
    [issue] = issues_of(text)
    assert issue.startswith("agents.bo.api_key_env: looks like it contains an API key")
    assert FAKE_KEY not in issue


def test_credential_headers_must_come_from_the_environment() -> None:
    base = SCRIPTED.replace('[agents.bo]\nprovider = "scripted"',
                            '[agents.bo]\nprovider = "openai"\nmodel = "m"')
    base = base.replace("[agents.bo.script]\n", "[agents.bo.extra_headers]\n")
    literal = base.replace('replies = ["bo one", "bo two", "bo three"]',
                           'Authorization = "Bearer abc"')
    [issue] = issues_of(literal)
    assert issue.startswith("agents.bo.extra_headers.Authorization: a credential header")
    from_env = base.replace('replies = ["bo one", "bo two", "bo three"]',
                            'Authorization = "Bearer ${PROXY_KEY}"')
    pairing = parse_pairing(from_env, source="ok.toml")
    creds = resolve_credentials(pairing, {"OPENAI_API_KEY": "k1", "PROXY_KEY": "k2"})
    assert creds["bo"].headers == {"Authorization": "Bearer k2"}
    assert pairing.agent("bo").extra_headers == {"Authorization": "Bearer ${PROXY_KEY}"}


def test_missing_key_variables_are_all_reported_before_any_request() -> None:
    text = SCRIPTED.replace('[agents.ada]\nprovider = "scripted"',
                            '[agents.ada]\nprovider = "anthropic"\nmodel = "c"')
    text = text.replace('[agents.bo]\nprovider = "scripted"',
                        '[agents.bo]\nprovider = "openai"\nmodel = "g"\napi_key_env = "MY_KEY"')
    for table in ("ada", "bo"):
        text = text.replace(f"[agents.{table}.script]", f"[agents.{table}.extra_body]")
    text = text.replace('replies = ["ada one", "ada two", "ada three"]', "").replace(
        'replies = ["bo one", "bo two", "bo three"]', "")
    pairing = parse_pairing(text, source="keys.toml")
    with pytest.raises(MissingKeyError) as caught:
        resolve_credentials(pairing, {})
    message = str(caught.value)
    assert "agents.ada.api_key_env: environment variable ANTHROPIC_API_KEY is not set" in message
    assert "agents.bo.api_key_env: environment variable MY_KEY is not set" in message


def test_a_local_server_needs_no_key_unless_one_is_named() -> None:
    text = SCRIPTED.replace('[agents.bo]\nprovider = "scripted"',
                            '[agents.bo]\nprovider = "openai"\nmodel = "g"\n'
                            'base_url = "http://127.0.0.1:11434/v1"')
    text = text.replace("[agents.bo.script]", "[agents.bo.extra_body]").replace(
        'replies = ["bo one", "bo two", "bo three"]', "")
    creds = resolve_credentials(parse_pairing(text, source="local.toml"), {})
    assert creds["bo"].api_key == "not-needed"


def test_first_speaker_must_see_the_opener() -> None:
    text = SCRIPTED.replace("max_turns = 4", 'max_turns = 4\nopener_to = "bo"')
    [issue] = issues_of(text)
    assert issue.startswith("dialogue.opener_to: 'ada' speaks first but would not see the opener")


def test_exactly_two_agents_with_usable_names() -> None:
    text = SCRIPTED.replace("[agents.bo]", "[agents.both]").replace(
        "[agents.bo.script]", "[agents.both.script]")
    issues = issues_of(text)
    assert any(i.startswith("agents.both: the name 'both' is taken") for i in issues)
    one = SCRIPTED[: SCRIPTED.index("[agents.bo]")]
    assert "agents: expected exactly two agents, found 1 (ada)" in issues_of(one)


def test_anthropic_thinking_budget_and_sampling_rules() -> None:
    text = SCRIPTED.replace('[agents.ada]\nprovider = "scripted"',
                            '[agents.ada]\nprovider = "anthropic"\nmodel = "c"\nmax_tokens = 2000'
                            '\ntemperature = 1.0')
    text = text.replace("[agents.ada.script]", "[agents.ada.thinking]").replace(
        'replies = ["ada one", "ada two", "ada three"]', "budget_tokens = 4000")
    issues = issues_of(text)
    assert "agents.ada.thinking.budget_tokens: must be below max_tokens (2000)" in issues
    assert any(i.startswith("agents.ada.temperature: not accepted by the Anthropic Messages API")
               for i in issues)


def test_prompt_and_opener_files_are_inlined(tmp_path: Path) -> None:
    (tmp_path / "role.txt").write_text("You are {name}, from a file.", encoding="utf-8")
    (tmp_path / "opener.txt").write_text("An opener from a file.\n", encoding="utf-8")
    text = SCRIPTED.replace('opener = "Hello there."', 'opener_file = "opener.txt"').replace(
        'prompt = "You are {name}."', 'prompt_file = "role.txt"')
    config = tmp_path / "pair.toml"
    config.write_text(text, encoding="utf-8")
    pairing = load_pairing(config)
    assert pairing.dialogue.opener == "An opener from a file."
    assert pairing.system_prompt("bo") == "You are bo, from a file."
    # The resolved config holds the text itself: a transcript needs no other file.
    assert pairing.resolved["agents"]["bo"]["prompt"] == "You are {name}, from a file."
    assert "prompt_file" not in pairing.resolved["agents"]["bo"]


def test_resolved_config_round_trips(make_pairing: PairingFactory) -> None:
    pairing = make_pairing()
    again = from_resolved(pairing.resolved, source="header")
    assert again.agents == pairing.agents
    assert again.dialogue == pairing.dialogue
    assert again.retry == pairing.retry


def test_toml_syntax_errors_are_one_clear_line() -> None:
    [issue] = issues_of("name = \n")
    assert issue.startswith("not valid TOML: ")


def test_missing_file_is_reported(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="no such file"):
        load_pairing(tmp_path / "nope.toml")


@pytest.mark.parametrize("path", sorted((REPO / "configs").glob("*.toml")), ids=lambda p: p.name)
def test_every_example_config_validates(path: Path) -> None:
    config = load_config(path)
    assert len(config.agents) == (3 if path.name == "panel.toml" else 2)


def test_every_schema_key_is_documented() -> None:
    from intermodel.config import schema

    reference = (REPO / "docs" / "config.md").read_text(encoding="utf-8")
    tables = {"": schema.TOP, "dialogue": schema.DIALOGUE, "retry": schema.RETRY,
              "detectors": schema.DETECTORS, "agents.NAME.price": schema.PRICE,
              "panel": schema.PANEL,
              "agents.NAME": schema.AGENT, "agents.NAME.thinking": schema.THINKING,
              "agents.NAME.script": schema.SCRIPT}
    missing = [f"{table}.{key}".lstrip(".") for table, fields in tables.items()
               for key in fields if f"`{key}`" not in reference]
    assert missing == []


def test_one_resolver_says_who_a_human_message_is_for(make_pairing: PairingFactory) -> None:
    pairing = make_pairing()  # ada, then bo
    assert pairing.addressees("both") == ("ada", "bo")
    assert pairing.addressees(" A ") == ("ada",)
    assert pairing.addressees("b") == ("bo",)
    assert pairing.addressees("BO") == ("bo",)
    with pytest.raises(UsageError) as refused:
        pairing.addressees("sk-not-repeated")
    assert str(refused.value) == "no such addressee: use a, b, both, ada or bo"
