"""API keys: read from the environment, never written anywhere.

Pairing files name keys (`api_key_env`, `${VAR}` in header values) but never hold them, so the
resolved config a transcript stores is secret-free by construction. Keys are resolved once, before
the first request (`intermodel.config.credentials`), and remembered for the life of the process,
so that everything that leaves it as text (transcript records, the screen, error lines, control
replies) can pass through `Redactor`, which removes the resolved values, what is left of one that
a message limit cut off, and anything shaped like a key (`KEY_SHAPED`, the project's one detector
of pasted keys).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from urllib.parse import urlsplit, urlunsplit

__all__ = [
    "KEY_SHAPED",
    "LOCAL_PLACEHOLDER_KEY",
    "SENSITIVE_HEADER",
    "Credentials",
    "Redactor",
    "StreamRedactor",
    "expand_env",
    "expanded_values",
    "header_name_problem",
    "header_value_problem",
    "looks_like_key",
    "public_url",
    "redact",
    "remember_secrets",
]

# Header names whose values are credentials; literal values for them are refused in pairings.
SENSITIVE_HEADER = re.compile(r"authorization|api[-_]?key|token|secret|cookie|password", re.I)
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
# What an API key looks like: a prefix providers give their keys, then a long token. Pairing files
# holding one anywhere are refused; lines shown or written have them removed.
KEY_SHAPED = re.compile(
    r"(?<![A-Za-z0-9])(?:sk-|xai-|gsk_|hf_|ghp_|github_pat_|pplx-|r8_|AIza)[A-Za-z0-9_\-]{16,}")
# Shorter known values are not redacted: they would blank out ordinary words.
MIN_SECRET = 6
# A cut-off key: at least this much of a known secret's beginning, where a message ends or was cut.
MIN_FRAGMENT = 8
_CUT_MARKS = ("…", "...")
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


def looks_like_key(text: str) -> bool:
    return KEY_SHAPED.search(text) is not None


def expanded_values(templates: Iterable[str], environ: Mapping[str, str]) -> list[str]:
    """The values `${VAR}` references in header templates expand to: whatever a pairing reads
    from the environment into a request is treated as a secret."""
    return [environ[name] for template in templates for name in _ENV_REF.findall(template)
            if name in environ]


# Every secret this process has resolved. It only grows, so its size tells a redactor when to
# refresh; any redactor (and any error line) can remove a key the run read.
_resolved: set[str] = set()


def remember_secrets(values: Iterable[str]) -> None:
    _resolved.update(v for v in values if _is_secret(v))


def _is_secret(value: str) -> bool:
    return len(value) >= MIN_SECRET and value != LOCAL_PLACEHOLDER_KEY


class Redactor:
    """Removes secrets from text that leaves the process: the values it was given and every value
    this process resolved, a cut-off beginning of one (`MIN_FRAGMENT` characters or more where the
    text ends or was cut with an ellipsis), and, except in `known`, key-shaped strings."""

    MARK = "[redacted]"

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._own = frozenset(s for s in secrets if _is_secret(s))
        self._seen = -1
        self._secrets: tuple[str, ...] = ()

    @classmethod
    def for_credentials(cls, credentials: Mapping[str, Credentials]) -> Redactor:
        values: list[str] = []
        for cred in credentials.values():
            if cred.api_key:
                values.append(cred.api_key)
            values.extend(v for k, v in cred.headers.items() if SENSITIVE_HEADER.search(k))
        remember_secrets(values)
        return cls(values)

    @property
    def secrets(self) -> tuple[str, ...]:
        """The known values, longest first (so a secret that contains another goes whole)."""
        if self._seen != len(_resolved):
            self._seen = len(_resolved)
            self._secrets = tuple(sorted(self._own | _resolved, key=len, reverse=True))
        return self._secrets

    def __call__(self, text: str) -> str:
        return KEY_SHAPED.sub(self.MARK, self.known(text))

    def known(self, text: str) -> str:
        """Remove only the known secrets (for model text, which must stay verbatim otherwise: a
        model inventing an `sk-...` string is data, not a leak)."""
        secrets = self.secrets
        if not secrets:
            return text
        text = self.replace_whole(text)
        for secret in secrets:
            if len(secret) > MIN_FRAGMENT and secret[:MIN_FRAGMENT] in text:
                text = _without_cut_off(text, secret, self.MARK)
        return text

    def replace_whole(self, text: str) -> str:
        for secret in self.secrets:
            if secret in text:
                text = text.replace(secret, self.MARK)
        return text

    def stream(self) -> StreamRedactor:
        return StreamRedactor(self)


def _without_cut_off(text: str, secret: str, mark: str) -> str:
    """`text` with every beginning of `secret` (MIN_FRAGMENT characters or more) that ends the
    text or is followed by an ellipsis replaced by `mark`: what a message limit left of a key."""
    head = secret[:MIN_FRAGMENT]
    parts: list[str] = []
    done = 0  # text before this index is in `parts`
    found = text.find(head)
    while found != -1:
        end = found + MIN_FRAGMENT
        while end < len(text) and end - found < len(secret) and text[end] == secret[end - found]:
            end += 1
        rest = text[end:]
        if rest.strip() and not rest.startswith(_CUT_MARKS):
            found = text.find(head, found + 1)
            continue
        parts += [text[done:found], mark]
        done = end
        found = text.find(head, end)
    return "".join(parts) + text[done:] if parts else text


class StreamRedactor:
    """Known secrets out of text that arrives in pieces (a reply as it streams). A piece that ends
    with the beginning of a secret is held back until the next one shows whether the secret
    follows; `flush` at the end gives back what is held, a cut-off key redacted.

    `feed` runs once per token, so it is written for that: no generator and no helper calls;
    for each secret, a test for it and for its first character, in C. A secret resolved
    mid-stream (by another run of the process) is taken up with the next piece."""

    __slots__ = ("_held", "_redactor")

    def __init__(self, redactor: Redactor) -> None:
        self._redactor = redactor
        self._held = ""

    def feed(self, piece: str) -> str:
        redactor = self._redactor
        # `secrets`, inlined: the set of resolved values only grows, so its size says if it did.
        secrets = redactor._secrets if redactor._seen == len(_resolved) else redactor.secrets
        if not secrets:  # the common case (no keys at all): nothing to do per token
            return piece
        held = self._held
        text = held + piece if held else piece
        for secret in secrets:  # longest first, as in `replace_whole`
            if secret in text:
                text = text.replace(secret, Redactor.MARK)
        # Hold back the longest end of `text` that is a proper beginning of a secret.
        size = len(text)
        hold = 0
        for secret in secrets:
            first = secret[0]
            if first not in text:  # most pieces, for most secrets
                continue
            start = size - len(secret) + 1
            at = text.find(first, start if start > 0 else 0)  # (not max(): a slow call)
            while at != -1 and size - at > hold:
                if secret.startswith(text[at:]):
                    hold = size - at
                    break
                at = text.find(first, at + 1)
        if hold:
            self._held = text[size - hold:]
            return text[:size - hold]
        self._held = ""
        return text

    def flush(self) -> str:
        if not self._held:
            return ""
        held, self._held = self._held, ""
        return self._redactor.known(held)


_default = Redactor()


def redact(text: str) -> str:
    """`text` without any secret this process resolved and without key-shaped strings."""
    return _default(text)


def public_url(url: str) -> str:
    """`url` as it may be written down: without a user or password (`http://user:key@host`) and
    without a query or fragment (`?api_key=...`), which may hold credentials, then redacted.
    What cannot be parsed as a URL is reduced to "[unreadable URL]"."""
    try:
        parts = urlsplit(url.strip())
        host = parts.hostname or ""
        port = parts.port
    except ValueError:  # a port that is not a number, a malformed IPv6 address...
        return "[unreadable URL]"
    if ":" in host:
        host = f"[{host}]"  # an IPv6 address
    netloc = host if port is None else f"{host}:{port}"
    return redact(urlunsplit((parts.scheme, netloc, parts.path, "", "")))
