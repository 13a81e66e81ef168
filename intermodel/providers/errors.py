"""Translating foreign failures into the project's error tree, at the provider boundary.

Both SDKs share a shape (`APIStatusError` with `status_code`, `response` and `body`;
`APIConnectionError` > `APITimeoutError`; a bare `APIError` for an error event inside a stream),
and both let some raw `httpx2` exceptions through when a stream breaks. `translate` maps all of it,
plus malformed data, to the most specific `ProviderError`, keeping the server's Retry-After.

Malformed data: truncated JSON or bytes that are not UTF-8 are transient (a proxy cutting a stream,
or a model that split a character between two tokens: another attempt may well succeed); an
integer of thousands of digits or JSON nested thousands deep comes from no honest server, and is
fatal (`ProviderBroken`). A redirect is fatal too: requests follow none (see `http`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

import httpx2
import pydantic

from intermodel.errors import (
    AuthenticationFailed,
    BadRequest,
    ConnectionFailed,
    ContextTooLong,
    ModelNotFound,
    ProviderBroken,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerUnavailable,
    StreamInterrupted,
    TimedOut,
)
from intermodel.security.secrets import redact

__all__ = ["StreamPhase", "error_for_status", "error_for_stream_payload", "parse_retry_after",
           "translate"]

_CONTEXT_TOO_LONG = re.compile(
    r"context.length|context_length_exceeded|exceed_context_size|exceeds the available context"
    r"|prompt is too long|maximum context|context window|too many tokens",
    re.IGNORECASE,
)
_QUOTA = re.compile(r"insufficient_quota|billing|credit balance", re.IGNORECASE)
# Python's own refusal of an integer literal past sys.get_int_max_str_digits() (4,300 digits).
_HUGE_INT = re.compile(r"Exceeds the limit \(\d+ digits\) for integer string conversion")
_MESSAGE_LIMIT = 400


@dataclass
class StreamPhase:
    """Whether any part of the response has arrived: a dropped connection before that is a
    connection failure, after it a broken stream (and the partial reply is discarded)."""

    streaming: bool = False


def parse_retry_after(
    headers: Mapping[str, str] | None, now: datetime | None = None
) -> float | None:
    """Seconds from `retry-after-ms`, or `retry-after` as seconds or an HTTP date."""
    if not headers:
        return None
    millis = headers.get("retry-after-ms")
    if millis:
        try:
            return max(0.0, float(millis) / 1000)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - (now or datetime.now(UTC))).total_seconds())


def _body_error(body: object) -> tuple[str, str]:
    """(message, type-or-code) from the error bodies OpenAI, Anthropic and llama.cpp send."""
    if isinstance(body, str):
        try:
            body = json.loads(body)
        except (ValueError, RecursionError):  # not JSON, or JSON no honest server sends
            return str(body), ""
    if not isinstance(body, Mapping):
        return "", ""
    error: Any = body.get("error", body)
    if not isinstance(error, Mapping):
        return str(error), ""
    message = str(error.get("message") or "")
    code = str(error.get("code") or error.get("type") or "")
    return message, code


def _short(text: str) -> str:
    """One line of at most _MESSAGE_LIMIT characters. Secrets go before the cut: half a key no
    longer looks like one, and a server may echo the key it was sent."""
    text = redact(" ".join(text.split()))
    return text if len(text) <= _MESSAGE_LIMIT else text[: _MESSAGE_LIMIT - 1] + "…"


def error_for_status(
    status: int, message: str, *, code: str = "", provider: str,
    headers: Mapping[str, str] | None = None,
) -> ProviderError:
    text = _short(message or f"HTTP {status}")
    both = f"{code} {message}"
    kw: dict[str, Any] = {"provider": provider, "status": status}
    if 300 <= status < 400:
        where = (headers or {}).get("location") or "elsewhere"
        return ProviderBroken(_short(f"the server redirects to {where}; requests follow no "
                                     "redirect (set base_url to the final address)"), **kw)
    if status == 429:
        if _QUOTA.search(both):
            return QuotaExhausted(text, **kw)
        return RateLimited(text, retry_after=parse_retry_after(headers), **kw)
    if status in (401, 403):
        return AuthenticationFailed(text, **kw)
    if status == 404:
        return ModelNotFound(text, **kw)
    if status == 402:
        return QuotaExhausted(text, **kw)
    if status == 408:
        return TimedOut(text, **kw)
    if status == 409 or status >= 500:
        return ServerUnavailable(text, retry_after=parse_retry_after(headers), **kw)
    if _CONTEXT_TOO_LONG.search(both):
        return ContextTooLong(text, **kw)
    return BadRequest(text, **kw)


def error_for_stream_payload(body: object, fallback: str, *, provider: str) -> ProviderError:
    """An error event inside an HTTP 200 stream: transient unless it refuses the request."""
    message, code = _body_error(body)
    message = message or fallback
    both = f"{code} {message}"
    if _CONTEXT_TOO_LONG.search(both):
        return ContextTooLong(_short(message), provider=provider)
    # invalid_request (Chat Completions), invalid_prompt (a failed Responses API response), …
    if re.search(r"invalid_|authentication|permission|not_found", code):
        return BadRequest(_short(message), provider=provider)
    if "rate_limit" in code:
        return RateLimited(_short(message), provider=provider)
    return ServerUnavailable(_short(message), provider=provider)


@contextmanager
def translate(sdk: Any, provider: str, phase: StreamPhase) -> Iterator[None]:
    """Re-raise anything `sdk` (the openai or anthropic module), httpx2 or the JSON/schema layer
    throws as a ProviderError."""
    try:
        yield
    except ProviderError as exc:
        exc.provider = exc.provider or provider  # raised below the provider (`wire`)
        raise
    except sdk.APIStatusError as exc:
        message, code = _body_error(exc.body)
        if exc.status_code == 200:  # Anthropic raises this for an `error` event mid-stream
            raise error_for_stream_payload(exc.body, exc.message, provider=provider) from exc
        raise error_for_status(exc.status_code, message or exc.message, code=code,
                               provider=provider, headers=exc.response.headers) from exc
    except (sdk.APITimeoutError, httpx2.TimeoutException) as exc:
        where = "while streaming" if phase.streaming else "before the reply began"
        raise TimedOut(f"timed out {where}", provider=provider) from exc
    except (sdk.APIConnectionError, httpx2.TransportError, httpx2.StreamError) as exc:
        detail = _short(str(exc.__cause__ or exc) or type(exc).__name__)
        if isinstance(exc, httpx2.LocalProtocolError) \
                or isinstance(exc.__cause__, httpx2.LocalProtocolError):
            # Our own request is malformed (a header value with a line break...): retrying
            # the same request cannot help.
            raise BadRequest(f"the request could not be sent: {detail}",
                             provider=provider) from exc
        if phase.streaming:
            raise StreamInterrupted(f"the stream broke: {detail}", provider=provider) from exc
        raise ConnectionFailed(f"cannot reach the server: {detail}", provider=provider) from exc
    except sdk.APIResponseValidationError as exc:
        raise ProviderBroken(f"unexpected response: {_short(str(exc))}", provider=provider) from exc
    except sdk.APIError as exc:  # an error payload inside the stream (no status)
        raise error_for_stream_payload(exc.body, exc.message, provider=provider) from exc
    except (json.JSONDecodeError, pydantic.ValidationError, httpx2.HTTPError) as exc:
        # Malformed SSE or JSON: a proxy or server hiccup, worth another attempt.
        raise StreamInterrupted(f"malformed stream data: {_short(str(exc))}",
                                provider=provider) from exc
    except UnicodeDecodeError as exc:
        raise StreamInterrupted(f"malformed stream data: not UTF-8 ({_short(str(exc))})",
                                provider=provider) from exc
    except RecursionError as exc:
        raise ProviderBroken("the server sent JSON nested too deeply to read",
                             provider=provider) from exc
    except ValueError as exc:
        if not _HUGE_INT.search(str(exc)):
            raise  # not the server's doing
        raise ProviderBroken("the server sent an integer of thousands of digits",
                             provider=provider) from exc
