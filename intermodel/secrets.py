"""API keys: read from the environment, never written anywhere.

Pairing files name keys (`api_key_env`, `${VAR}` in header values) but never hold them, so the
resolved config a transcript stores is secret-free by construction. Keys are resolved once, before
the first request, and everything that leaves the process as text (transcript records, logs, error
lines) passes through `Redactor`, which removes the resolved values and anything shaped like a key.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from intermodel.config.model import Pairing, Panel
from intermodel.errors import ConfigError, ConfigIssue, MissingKeyError

__all__ = [
    "SENSITIVE_HEADER",
    "Credentials",
    "Redactor",
    "expand_env",
    "header_name_problem",
    "header_value_problem",
    "resolve_credentials",
]

# Header names whose values are credentials; literal values for them are refused in pairings.
SENSITIVE_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|password", re.I)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEY_SHAPED = re.compile(r"(sk-ant-|sk-|AIza|xai-|gsk_|hf_)[A-Za-z0-9_\-]{16,}")
# A placeholder key for OpenAI-compatible local servers: the SDK refuses to start without one.
LOCAL_PLACEHOLDER_KEY = "not-needed"
# HTTP field names are tokens; values are printable ASCII, spaces and tabs. Anything else cannot
# be sent at all (the HTTP library refuses it on every attempt, which would look like a network
# failure to retry for hours); a line break would even let a value write headers of its own.
_HEADER_NAME = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
_NOT_IN_VALUE = re.compile(r"[^\t\x20-\x7e]")


def header_name_problem(name: str) -> str | None:
    """Why `name` cannot be an HTTP header name, or None."""
    if _HEADER_NAME.fullmatch(name):
        return None
    return "not a header name (letters, digits and !#$%&'*+-.^_`|~ only)"


def header_value_problem(value: str) -> str | None:
    """Why `value` cannot be sent as an HTTP header value, or None. Says where, not what: the
    value may be a secret."""
    found = _NOT_IN_VALUE.search(value)
    if found is None:
        return None
    char = found.group()
    what = "a line break" if char in "\r\n" else f"the character U+{ord(char):04X}"
    return f"holds {what} (at position {found.start()}); header values are printable ASCII"


@dataclass(frozen=True)
class Credentials:
    api_key: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


def expand_env(value: str, environ: Mapping[str, str], missing: list[str]) -> str:
    """Replace `${VAR}` with its value; record the names that are not set."""

    def replace(match: re.Match[str]) -> str:
        name = match.group(1)
        if name not in environ:
            missing.append(name)
            return ""
        return environ[name]

    return _ENV_REF.sub(replace, value)


def resolve_credentials(pairing: Pairing | Panel, environ: Mapping[str, str]
                        ) -> dict[str, Credentials]:
    """Keys and expanded headers per agent. Every missing variable is reported at once, before
    any request is made."""
    issues: list[ConfigIssue] = []
    unusable: list[ConfigIssue] = []  # set, but impossible to send
    result: dict[str, Credentials] = {}
    for agent in pairing.agents:
        missing: list[str] = []
        headers = {k: expand_env(v, environ, missing) for k, v in agent.extra_headers.items()}
        for name in missing:
            issues.append(ConfigIssue(f"agents.{agent.name}.extra_headers",
                                      f"environment variable {name} is not set"))
        for header, value in headers.items():
            problem = header_value_problem(value)
            if problem is not None:
                unusable.append(ConfigIssue(f"agents.{agent.name}.extra_headers.{header}",
                                            f"with its variables read, the value {problem}"))
        key: str | None = None
        if agent.api_key_env:
            key = environ.get(agent.api_key_env) or None
            problem = None if key is None else header_value_problem(key)
            if problem is not None:
                unusable.append(ConfigIssue(f"agents.{agent.name}.api_key_env",
                                            f"the key in {agent.api_key_env} {problem}"))
            if key is None and agent.key_required:
                issues.append(ConfigIssue(
                    f"agents.{agent.name}.api_key_env",
                    f"environment variable {agent.api_key_env} is not set; export it with "
                    f"the key for {agent.provider} (the pairing names the variable, never the key)",
                ))
            elif key is None:
                key = LOCAL_PLACEHOLDER_KEY
        result[agent.name] = Credentials(api_key=key, headers=headers)
    if unusable:
        raise ConfigError(pairing.source, unusable)
    if issues:
        raise MissingKeyError(pairing.source, issues)
    return result


class Redactor:
    """Removes known secret values and key-shaped strings from text that leaves the process."""

    MARK = "[redacted]"

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        # Longest first, so a secret that contains another is removed whole.
        self._secrets = sorted(
            {s for s in secrets if s and s != LOCAL_PLACEHOLDER_KEY and len(s) >= 6},
            key=len, reverse=True,
        )

    @classmethod
    def for_credentials(cls, credentials: Mapping[str, Credentials]) -> Redactor:
        values: list[str] = []
        for cred in credentials.values():
            if cred.api_key:
                values.append(cred.api_key)
            values.extend(v for k, v in cred.headers.items() if SENSITIVE_HEADER.search(k))
        return cls(values)

    def __call__(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, self.MARK)
        return _KEY_SHAPED.sub(self.MARK, text)

    def known(self, text: str) -> str:
        """Remove only the resolved secret values (for model text, which must stay verbatim
        otherwise: a model inventing an `sk-...` string is data, not a leak)."""
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, self.MARK)
        return text
