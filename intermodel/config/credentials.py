"""Each agent's key and header values, read from the environment once, before any request.

A pairing names its keys (`api_key_env`, `${VAR}` in header values) but never holds them; this is
where the names become values. Every value read is remembered by `intermodel.security.secrets`,
so that anything leaving the process as text can be cleaned of it.
"""

from __future__ import annotations

from collections.abc import Mapping

from intermodel.config.model import RunSpec
from intermodel.errors import ConfigError, ConfigIssue, MissingKeyError
from intermodel.security.secrets import (
    LOCAL_PLACEHOLDER_KEY,
    Credentials,
    expand_env,
    expanded_values,
    header_value_problem,
    remember_secrets,
)

__all__ = ["resolve_credentials"]


def resolve_credentials(spec: RunSpec, environ: Mapping[str, str]
                        ) -> dict[str, Credentials]:
    """Keys and expanded headers per agent. Every missing variable is reported at once, before
    any request is made."""
    issues: list[ConfigIssue] = []
    unusable: list[ConfigIssue] = []  # set, but impossible to send
    result: dict[str, Credentials] = {}
    for agent in spec.agents:
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
        remember_secrets([key or "", *expanded_values(agent.extra_headers.values(), environ)])
    if unusable:
        raise ConfigError(spec.source, unusable)
    if issues:
        raise MissingKeyError(spec.source, issues)
    return result
