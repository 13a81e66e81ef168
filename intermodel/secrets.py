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
from intermodel.errors import ConfigIssue, MissingKeyError

__all__ = [
    "SENSITIVE_HEADER",
    "Credentials",
    "Redactor",
    "expand_env",
    "resolve_credentials",
]

# Header names whose values are credentials; literal values for them are refused in pairings.
SENSITIVE_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|password", re.I)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_KEY_SHAPED = re.compile(r"(sk-ant-|sk-|AIza|xai-|gsk_|hf_)[A-Za-z0-9_\-]{16,}")
# A placeholder key for OpenAI-compatible local servers: the SDK refuses to start without one.
LOCAL_PLACEHOLDER_KEY = "not-needed"


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
    result: dict[str, Credentials] = {}
    for agent in pairing.agents:
        missing: list[str] = []
        headers = {k: expand_env(v, environ, missing) for k, v in agent.extra_headers.items()}
        for name in missing:
            issues.append(ConfigIssue(f"agents.{agent.name}.extra_headers",
                                      f"environment variable {name} is not set"))
        key: str | None = None
        if agent.api_key_env:
            key = environ.get(agent.api_key_env) or None
            if key is None and agent.key_required:
                issues.append(ConfigIssue(
                    f"agents.{agent.name}.api_key_env",
                    f"environment variable {agent.api_key_env} is not set; export it with "
                    f"the key for {agent.provider} (the pairing names the variable, never the key)",
                ))
            elif key is None:
                key = LOCAL_PLACEHOLDER_KEY
        result[agent.name] = Credentials(api_key=key, headers=headers)
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
