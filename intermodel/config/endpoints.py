"""The check of an agent's endpoint pool: `base_urls`, several servers of the same model.

A pool is a non-empty list of distinct http(s) URLs, given instead of `base_url` (never with it);
`endpoint_cool_down` belongs to a pool. Two URLs are the same server when they differ only in
case, a default port or a trailing slash (`http://A:80/v1/` is `http://a/v1`): listing one twice
would only skew the balance, so it is refused.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any
from urllib.parse import urlsplit

from intermodel.config.schema import Checker, shown_value, url
from intermodel.security.bounds import MAX_ENDPOINTS

__all__ = ["check_endpoints", "endpoint_key"]

_DEFAULT_PORT = {"http": 80, "https": 443}


def endpoint_key(address: str) -> tuple[str, str, int | None, str] | None:
    """What makes two server addresses the same server; None for what is not an http(s) URL."""
    if url(address) is not None:
        return None
    try:
        parts = urlsplit(address.strip())
        scheme = parts.scheme.lower()
        port = parts.port or _DEFAULT_PORT.get(scheme)
    except ValueError:  # a port that is not a number, a malformed IPv6 address
        return None
    return (scheme, (parts.hostname or "").lower(), port, parts.path.rstrip("/"))


def check_endpoints(check: Checker, agent: dict[str, Any], table: Mapping[str, Any],
                    path: str) -> None:
    """Report what is wrong with a network agent's `base_urls` and `endpoint_cool_down` (given
    as `table`, checked for type as `agent`); a pool with a problem is left out of `agent`."""
    if "endpoint_cool_down" in table and "base_urls" not in table:
        check.fail(f"{path}.endpoint_cool_down", "only for an endpoint pool (base_urls)")
    if "base_urls" not in agent:
        return  # not given, or not a list of strings (already reported)
    urls: list[str] = agent["base_urls"]
    problems = len(check.issues)
    if "base_url" in table:
        check.fail(f"{path}.base_urls", "give either base_url (one server) or base_urls "
                   "(several), not both")
    if not urls:
        check.fail(f"{path}.base_urls", "an empty list; give the servers' addresses "
                   "(or base_url for one)")
    elif len(urls) > MAX_ENDPOINTS:
        check.fail(f"{path}.base_urls", f"at most {MAX_ENDPOINTS} servers, got {len(urls)}")
    seen: dict[tuple[str, str, int | None, str], int] = {}
    for n, address in enumerate(urls[:MAX_ENDPOINTS]):
        key = endpoint_key(address)
        if key is None:
            check.fail(f"{path}.base_urls[{n}]",
                       f"expected an http:// or https:// URL, got {shown_value(address)}")
        elif key in seen:
            check.fail(f"{path}.base_urls[{n}]",
                       f"the same server as base_urls[{seen[key]}] ({shown_value(address)})")
        else:
            seen[key] = n
    if len(check.issues) > problems:
        del agent["base_urls"]
