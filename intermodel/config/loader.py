"""TOML pairing file → validated, frozen `Pairing`.

Loading is two steps. `normalise` checks the raw TOML table against the schema and produces the
*resolved* table: every default filled in, prompt and opener files inlined, nothing secret. `build`
turns a resolved table into dataclasses. Transcripts store the resolved table, so a run can be
rebuilt from its transcript alone with `from_resolved`.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any, cast

from intermodel.config.capabilities import (
    OPTIONS,
    PROVIDERS,
    SAMPLING_SETTINGS,
    providers_with,
)
from intermodel.config.endpoints import check_endpoints
from intermodel.config.model import (
    DEFAULT_COOL_DOWN,
    PLACEHOLDERS,
    AgentConfig,
    DetectorConfig,
    DialogueConfig,
    Pairing,
    Panel,
    Price,
    RetryConfig,
    RunSpec,
    ScriptConfig,
    unknown_placeholders,
)
from intermodel.config.request import Sampling
from intermodel.config.responses import check_openai_api
from intermodel.config.schema import (
    AGENT,
    DETECTORS,
    DIALOGUE,
    PANEL,
    PANEL_TOP,
    PRICE,
    RETRY,
    SCRIPT,
    THINKING,
    TOP,
    Checker,
    shown_value,
)
from intermodel.errors import ConfigError, ConfigIssue
from intermodel.security.bounds import MAX_DEPTH, MAX_TEXT_FILE, nesting_depth
from intermodel.security.files import UnreadableFile, read_regular
from intermodel.security.patterns import pattern_problem
from intermodel.security.secrets import (
    SENSITIVE_HEADER,
    header_name_problem,
    header_value_problem,
    looks_like_key,
)

__all__ = ["config_from_resolved", "from_resolved", "load_config", "load_pairing",
           "parse_pairing", "parse_toml", "read_text_file"]

_AGENT_NAME = re.compile(r"^[A-Za-z][A-Za-z0-9_-]{0,31}$")
_SECRET_KEYS = {"api_key", "apikey", "key", "token", "secret", "password", "auth_token"}
_PASTED_KEY = ("looks like it contains an API key; keys belong in environment variables named by "
               "api_key_env")
SCRIPT_PLACEHOLDERS = ("name", "partner", "reply")
PANEL_PLACEHOLDERS = ("name",)
MAX_PANEL = 12


def load_pairing(path: str | Path) -> Pairing:
    """Read and validate a pairing file. Raises ConfigError listing every problem found."""
    found = load_config(path)
    if not isinstance(found, Pairing):
        raise ConfigError(str(path), [ConfigIssue("", "this is a panel, not a pairing")])
    return found


def load_config(path: str | Path) -> RunSpec:
    """A pairing file, or a panel file (one with a [panel] table)."""
    path = Path(path)
    shown = str(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError(shown, [ConfigIssue("", "no such file")]) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(shown, [ConfigIssue("", f"cannot read: {exc}")]) from None
    raw = parse_toml(text, shown)
    _refuse_pasted_keys(raw, shown)
    if "panel" in raw:
        resolved = normalise_panel(raw, source=shown, base_dir=path.parent,
                                   default_name=path.stem)
        return build_panel(resolved, source=shown)
    return parse_pairing(text, source=shown, base_dir=path.parent, default_name=path.stem)


def parse_toml(text: str, source: str) -> dict[str, Any]:
    """The TOML table in `text`; one ConfigError for anything that does not parse, including
    input that would crash the parser or what reads the result later (nesting deeper than
    MAX_DEPTH, integers of thousands of digits)."""
    try:
        raw = tomllib.loads(text)
    except RecursionError:
        raw = None  # tomllib recurses per level of nesting
    except ValueError as exc:  # TOMLDecodeError, or an integer Python will not convert
        message = str(exc) if isinstance(exc, tomllib.TOMLDecodeError) else "a number of " \
            "thousands of digits"
        raise ConfigError(source, [ConfigIssue("", f"not valid TOML: {message}")]) from None
    if raw is None or nesting_depth(raw) > MAX_DEPTH:
        raise ConfigError(source, [ConfigIssue("", f"tables and lists nest more than "
                                               f"{MAX_DEPTH} levels deep")])
    return raw


def normalise_panel(raw: Mapping[str, Any], *, source: str, base_dir: Path,
                    default_name: str) -> dict[str, Any]:
    check = Checker()
    top = check.table(raw, "", PANEL_TOP)
    top.setdefault("name", default_name)
    agents = _normalise_agents(check, raw.get("agents"), base_dir, panel=True)
    panel = check.table(_table(raw, "panel"), "panel", PANEL)
    reported = set(_table(raw, "panel")) - set(panel)
    if "prompt_file" in panel:
        if "prompt" in panel:
            check.fail("panel.prompt_file", "give either prompt or prompt_file, not both")
        panel["prompt"] = _read_text(check, base_dir, panel.pop("prompt_file"),
                                     "panel.prompt_file").strip()
    if not panel.get("prompt") and "prompt" not in reported:
        check.fail("panel.prompt", "missing; the message every agent answers")
    retry = check.table(_table(raw, "retry"), "retry", RETRY)
    if check.issues:
        raise ConfigError(source, check.issues)
    top.update(agents=agents, panel=panel, retry=retry)
    return top


def build_panel(resolved: Mapping[str, Any], *, source: str) -> Panel:
    agents = tuple(_build_agent(name, table) for name, table in resolved["agents"].items())
    return Panel(name=resolved["name"], description=resolved["description"],
                 prompt=resolved["panel"]["prompt"], agents=agents,
                 retry=RetryConfig(**resolved["retry"]), transcripts=resolved["transcripts"],
                 source=source, resolved=resolved)


def parse_pairing(
    text: str, *, source: str, base_dir: Path | None = None, default_name: str = "pairing"
) -> Pairing:
    raw = parse_toml(text, source)
    _refuse_pasted_keys(raw, source)
    resolved = normalise(raw, source=source, base_dir=base_dir or Path("."),
                         default_name=default_name)
    return build(resolved, source=source)


def from_resolved(resolved: Mapping[str, Any], *, source: str) -> Pairing:
    """Rebuild a Pairing from the resolved table a transcript stored."""
    again = normalise(dict(resolved), source=source, base_dir=Path("."), default_name="pairing")
    return build(again, source=source)


def config_from_resolved(resolved: Mapping[str, Any], *, source: str) -> RunSpec:
    """A pairing or a panel, whichever the resolved table a transcript stored describes."""
    if "panel" in resolved:
        again = normalise_panel(dict(resolved), source=source, base_dir=Path("."),
                                default_name="panel")
        return build_panel(again, source=source)
    return from_resolved(resolved, source=source)


def normalise(
    raw: Mapping[str, Any], *, source: str, base_dir: Path, default_name: str
) -> dict[str, Any]:
    check = Checker()
    top = check.table(raw, "", TOP)
    top.setdefault("name", default_name)
    agents = _normalise_agents(check, raw.get("agents"), base_dir)
    names = list(agents)
    raw_agents = raw.get("agents") if isinstance(raw.get("agents"), dict) else None
    dialogue = _normalise_dialogue(check, raw.get("dialogue"), names, base_dir, raw_agents)
    retry = check.table(_table(raw, "retry"), "retry", RETRY)
    detectors = check.table(_table(raw, "detectors"), "detectors", DETECTORS)
    for phrase_source, text in _texts_to_scan(agents, dialogue):
        if looks_like_key(text):
            check.fail(phrase_source, _PASTED_KEY)
    if check.issues:
        raise ConfigError(source, check.issues)
    top.update(agents=agents, dialogue=dialogue, retry=retry, detectors=detectors)
    return top


def _refuse_pasted_keys(raw: Mapping[str, Any], source: str) -> None:
    """A key pasted anywhere in the file, as a value or as a key's name, is refused before
    anything else is checked, so no other message can quote it."""
    check = Checker()
    for path in _key_shaped_places(raw, ""):
        check.fail(path, _PASTED_KEY)
    if check.issues:
        raise ConfigError(source, check.issues)


def _key_shaped_places(value: Any, path: str) -> list[str]:
    if isinstance(value, str):
        return [path] if looks_like_key(value) else []
    places: list[str] = []
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            places += [where] if looks_like_key(str(key)) else _key_shaped_places(item, where)
    elif isinstance(value, list):
        for n, item in enumerate(value):
            places += _key_shaped_places(item, f"{path}[{n}]")
    return places


def _table(raw: Mapping[str, Any], key: str) -> Mapping[str, Any]:
    value = raw.get(key, {})
    return value if isinstance(value, dict) else {}  # a non-table is reported by the TOP check


def _normalise_agents(check: Checker, raw: Any, base_dir: Path, *, panel: bool = False
                      ) -> dict[str, dict[str, Any]]:
    if not isinstance(raw, dict):
        return {}  # already reported by the top-level check
    if panel and not 1 <= len(raw) <= MAX_PANEL:
        check.fail("agents", f"a panel has 1 to {MAX_PANEL} agents, found {len(raw)}")
    elif not panel and len(raw) != 2:
        check.fail("agents", f"expected exactly two agents, found {len(raw)}"
                   + (f" ({', '.join(raw)})" if raw else ""))
    agents: dict[str, dict[str, Any]] = {}
    seen: set[str] = set()
    for name, table in raw.items():
        path = f"agents.{name}"
        if not _AGENT_NAME.match(name):
            check.fail(path, "agent names start with a letter and use letters, digits, - and _ "
                       "(at most 32)")
        if name.lower() in seen or name.lower() in {"both", "a", "b", "human"}:
            check.fail(path, f"the name {shown_value(name)} is taken (duplicate, or reserved for "
                       "addressing)")
        seen.add(name.lower())
        if not isinstance(table, dict):
            check.fail(path, f"expected a table like [agents.{name}]")
            continue
        for secret in _SECRET_KEYS & set(table):
            check.fail(f"{path}.{secret}", "literal API keys are refused in pairing files (they "
                       "leak into git and transcripts); export the key in an environment "
                       "variable and name it with api_key_env = \"VARIABLE_NAME\"")
        table = {k: v for k, v in table.items() if k not in _SECRET_KEYS}
        agents[name] = _normalise_agent(check, table, path, base_dir,
                                        PANEL_PLACEHOLDERS if panel else PLACEHOLDERS)
    return agents


def _normalise_agent(
    check: Checker, table: dict[str, Any], path: str, base_dir: Path,
    placeholders: tuple[str, ...] = (),
) -> dict[str, Any]:
    agent = check.table(table, path, AGENT)
    reported = set(table) - set(agent)  # given but invalid: nothing more is said about them
    provider = agent.get("provider")
    agent["thinking"] = check.table(agent.get("thinking", {}), f"{path}.thinking", THINKING)
    if "price" in agent:
        agent["price"] = check.table(agent["price"], f"{path}.price", PRICE)
    if "prompt_file" in agent:
        if "prompt" in table:
            check.fail(f"{path}.prompt_file", "give either prompt or prompt_file, not both")
        agent["prompt"] = _read_text(check, base_dir, agent.pop("prompt_file"),
                                     f"{path}.prompt_file")
    for header, value in agent.get("extra_headers", {}).items():
        problem = header_name_problem(header) or header_value_problem(value)
        if problem is not None:
            check.fail(f"{path}.extra_headers.{header!r}" if header_name_problem(header)
                       else f"{path}.extra_headers.{header}", problem)
        elif SENSITIVE_HEADER.search(header) and "${" not in value:
            check.fail(f"{path}.extra_headers.{header}", "a credential header needs an "
                       "environment reference like \"Bearer ${MY_PROXY_KEY}\", not a literal value")
    for name in unknown_placeholders(agent.get("prompt", ""), placeholders):
        known = ", ".join(f"{{{p}}}" for p in placeholders)
        check.fail(f"{path}.prompt", f"unknown placeholder {{{name}}}; known: {known} "
                   "(write {{ and }} for literal braces)")
    if provider is None:
        return agent  # missing or unknown: already reported
    caps = PROVIDERS[provider]
    if "model" not in agent:
        if caps.default_model is not None:
            agent["model"] = caps.default_model
        else:
            check.fail(f"{path}.model",
                       f"missing; provider {shown_value(provider)} needs a model id")
    if caps.model_is_file and agent.get("model", caps.default_model) != caps.default_model:
        # Like prompt_file: a model path is relative to the pairing file, not to where you are.
        agent["model"] = str(base_dir / Path(agent["model"]).expanduser())
    if not caps.network:
        for key in ("api_key_env", "base_url", "base_urls", "endpoint_cool_down"):
            if key in table and key not in reported:
                check.fail(f"{path}.{key}", f"not used by provider {shown_value(provider)}")
    else:
        check_endpoints(check, agent, table, path)
    if "script" in caps.options:
        if "script" not in reported:
            agent["script"] = _normalise_script(check, agent.get("script", {}),
                                                f"{path}.script", base_dir)
    else:
        agent.pop("script", None)
    for option in OPTIONS:
        if option in table and option not in reported and option not in caps.options:
            takers = " or ".join(f"provider = \"{name}\"" for name in providers_with(option))
            check.fail(f"{path}.{option}", f"only for {takers}")
    _check_sampling(check, agent, path, provider)
    if "api" in caps.options:
        check_openai_api(check, agent, table, path)
    return agent


def _normalise_script(
    check: Checker, table: dict[str, Any], path: str, base_dir: Path
) -> dict[str, Any]:
    script = check.table(table, path, SCRIPT)
    reported = set(table) - set(script)
    if "file" in script:
        text = _read_text(check, base_dir, script.pop("file"), f"{path}.file")
        script["replies"] = list(script.get("replies", [])) + [
            part.strip() for part in re.split(r"^---\s*$", text, flags=re.MULTILINE)
            if part.strip()
        ]
    written = (("replies", script.get("replies", [])), ("thinking", script.get("thinking", [])),
               ("when", list((script.get("when") or {}).values())))
    for key, texts in written:
        for text in texts:
            for name in unknown_placeholders(text, SCRIPT_PLACEHOLDERS):
                check.fail(f"{path}.{key}", f"unknown placeholder {{{name}}}; known: {{name}}, "
                           "{partner}, {reply} (write {{ and }} for literal braces)")
    if (script.get("rule") == "list" and not script.get("replies") and not script.get("when")
            and "replies" not in reported):
        check.fail(f"{path}.replies", "rule = \"list\" needs at least one reply (or a file)")
    return script


def _check_sampling(check: Checker, agent: dict[str, Any], path: str, provider: str) -> None:
    """The sampling settings and thinking budget the provider's API takes."""
    caps = PROVIDERS[provider]
    for key in SAMPLING_SETTINGS:
        if key in agent and key not in caps.sampling:
            check.fail(f"{path}.{key}", "not accepted by "
                       + (caps.refusal or f"provider {shown_value(provider)}"))
    budget = agent["thinking"].get("budget_tokens")
    if budget is None:
        return
    if caps.thinking_budget is None:
        check.fail(f"{path}.thinking.budget_tokens", "a thinking budget is an Anthropic option; "
                   "for other APIs pass reasoning settings through extra_body")
        return
    if budget < caps.thinking_budget.minimum:
        check.fail(f"{path}.thinking.budget_tokens",
                   f"expected at least {caps.thinking_budget.minimum}, got {budget}")
    if caps.thinking_budget.below_max_tokens and budget >= agent.get("max_tokens", 0):
        check.fail(f"{path}.thinking.budget_tokens",
                   f"must be below max_tokens ({agent.get('max_tokens')})")


def _normalise_dialogue(
    check: Checker, raw: Any, names: list[str], base_dir: Path,
    raw_agents: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    if not isinstance(raw, dict):
        return {}
    dialogue = check.table(raw, "dialogue", DIALOGUE)
    reported = set(raw) - set(dialogue)  # given but invalid: nothing more is said about them
    if "opener_file" in dialogue:
        if "opener" in raw:
            check.fail("dialogue.opener_file", "give either opener or opener_file, not both")
        dialogue["opener"] = _read_text(check, base_dir, dialogue.pop("opener_file"),
                                        "dialogue.opener_file").strip()
    if "max_cost" in dialogue and not all(
            isinstance(a, dict) and "price" in a for a in (raw_agents or {}).values()):
        check.fail("dialogue.max_cost", "a cost budget needs a price for every agent "
                   "([agents.NAME.price] input = ..., output = ...)")
    if not dialogue.get("opener") and "opener" not in reported:
        check.fail("dialogue.opener", "missing; the first speaker needs an opening message")
    if len(names) == 2:
        dialogue.setdefault("first", names[0])
        dialogue.setdefault("opener_to", dialogue["first"])
        for key in ("first", "opener_to"):
            if key == "opener_to" and key not in raw and dialogue["first"] not in names:
                continue  # it follows `first`, already reported
            if dialogue[key] not in names:
                check.fail(f"dialogue.{key}", f"expected an agent name ({' or '.join(names)}), "
                           f"got {shown_value(dialogue[key])}")
        if dialogue["opener_to"] != dialogue["first"] and not dialogue["opener_shared"] \
                and dialogue["first"] in names:
            first = shown_value(dialogue["first"])
            check.fail("dialogue.opener_to", f"{first} speaks first but would not see the "
                       f"opener; set opener_shared = true or opener_to = {first}")
    if "{text}" not in dialogue.get("interjection_format", "{text}"):
        check.fail("dialogue.interjection_format", "must contain {text}")
    if any(not phrase for phrase in dialogue.get("stop_phrases", [])):
        check.fail("dialogue.stop_phrases", "an empty stop phrase would end every run")
    elif dialogue.get("stop_match") == "regex":
        for n, phrase in enumerate(dialogue.get("stop_phrases", [])):
            if (problem := pattern_problem(phrase)) is not None:
                check.fail(f"dialogue.stop_phrases[{n}]", problem)
    return dialogue


def _read_text(check: Checker, base_dir: Path, name: str, path: str) -> str:
    """A text file the pairing names: a regular file of at most MAX_TEXT_FILE bytes (a FIFO
    would hang the reader, a device never end)."""
    try:
        return read_text_file(base_dir / name)
    except UnreadableFile as exc:
        check.fail(path, f"cannot read {name!r}: {exc}")
    return ""


def read_text_file(path: Path) -> str:
    """The UTF-8 text of a file a config names; UnreadableFile when it is not a regular file,
    holds more than MAX_TEXT_FILE bytes or is not UTF-8."""
    data = read_regular(path, limit=MAX_TEXT_FILE)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        raise UnreadableFile("not UTF-8 text") from None


def _texts_to_scan(
    agents: Mapping[str, Mapping[str, Any]], dialogue: Mapping[str, Any]
) -> list[tuple[str, str]]:
    """Every place a user might paste a key by mistake."""
    out = [("dialogue.opener", str(dialogue.get("opener", "")))]
    for name, agent in agents.items():
        for key in ("prompt", "api_key_env", "base_url", "extra_body", "extra_headers"):
            out.append((f"agents.{name}.{key}", str(agent.get(key, ""))))
    return out


def build(resolved: Mapping[str, Any], *, source: str) -> Pairing:
    agents = tuple(_build_agent(name, table) for name, table in resolved["agents"].items())
    d = resolved["dialogue"]
    dialogue = DialogueConfig(
        opener=d["opener"],
        opener_to=d["opener_to"],
        opener_shared=d["opener_shared"],
        first=d["first"],
        max_turns=d["max_turns"],
        max_total_tokens=d.get("max_total_tokens"),
        max_seconds=d.get("max_seconds"),
        max_cost=d.get("max_cost"),
        stop_phrases=tuple(d["stop_phrases"]), stop_match=d["stop_match"],
        share_thinking=d["share_thinking"],
        interjection_format=d["interjection_format"],
        empty_reply=d["empty_reply"],
        context_policy=d["context_policy"],
    )
    return Pairing(
        name=resolved["name"],
        description=resolved["description"],
        agents=cast("tuple[AgentConfig, AgentConfig]", agents),
        dialogue=dialogue,
        retry=RetryConfig(**resolved["retry"]),
        detectors=DetectorConfig(**resolved.get("detectors", {})),
        transcripts=resolved["transcripts"],
        source=source,
        resolved=resolved,
    )


def _build_agent(name: str, a: Mapping[str, Any]) -> AgentConfig:
    script = a.get("script")
    return AgentConfig(
        name=name,
        provider=a["provider"],
        model=a["model"],
        prompt=a["prompt"],
        base_url=a.get("base_url"),
        base_urls=tuple(a.get("base_urls", ())),
        endpoint_cool_down=float(a.get("endpoint_cool_down", DEFAULT_COOL_DOWN)),
        api_key_env=a.get("api_key_env") or PROVIDERS[a["provider"]].key_env,
        # A key is optional for custom servers (local ones) unless the file names one.
        key_required="api_key_env" in a or not ("base_url" in a or "base_urls" in a),
        sampling=Sampling(
            temperature=a.get("temperature"),
            top_p=a.get("top_p"),
            max_tokens=a["max_tokens"],
            seed=a.get("seed"),
            stop=tuple(a["stop"]),
        ),
        thinking_budget=a["thinking"].get("budget_tokens"),
        send_thinking_back=a["thinking"]["send_back"],
        api=a.get("api", "chat"),
        reasoning=dict(a.get("reasoning") or {}),
        extra_body=dict(a["extra_body"]),
        extra_headers=dict(a["extra_headers"]),
        timeout=float(a["timeout"]),
        max_reply_seconds=float(a["max_reply_seconds"]),
        max_reply_chars=a["max_reply_chars"],
        context_size=a.get("context_size"),
        context_window=a.get("context_window"),
        price=Price(**a["price"]) if "price" in a else None,
        script=None if script is None else ScriptConfig(
            replies=tuple(script["replies"]),
            thinking=tuple(script["thinking"]),
            when=tuple((script.get("when") or {}).items()),
            rule=script["rule"],
            when_exhausted=script["when_exhausted"],
            chunk_words=script["chunk_words"],
            delay=float(script["delay"]),
            first_token_delay=float(script["first_token_delay"]),
        ),
    )
