"""Fault specs for the fake server, the queue and seeded rate that deliver them, and error bodies.

What the real SDKs raise for each fault, observed with openai 3.57 and anthropic 2.14 (both on
httpx2 2.16), `max_retries=0`, `create(stream=True)` then iterating. "raw" means the SDK lets a
transport or JSON exception through unwrapped. The tests in test_faults.py pin every row.

    fault                   openai                          anthropic
    status 400              BadRequestError                 BadRequestError
    status 401              AuthenticationError             AuthenticationError
    status 403              PermissionDeniedError           PermissionDeniedError
    status 404              NotFoundError                   NotFoundError
    status 429              RateLimitError                  RateLimitError
    status 500, 502         InternalServerError             InternalServerError
    status 503              InternalServerError             ServiceUnavailableError (1)
    status 529              InternalServerError             OverloadedError (1)
    context_too_long        BadRequestError                 BadRequestError
    reset                   APIConnectionError (2)          APIConnectionError (2)
    refuse                  APIConnectionError (3)          APIConnectionError (3)
    cut_midway              APIConnectionError (4)          raw httpx2.RemoteProtocolError
    stall                   APITimeoutError (5)             raw httpx2.ReadTimeout
    malformed_sse           raw json.JSONDecodeError        raw json.JSONDecodeError
    stream_error            APIError (6)                    APIStatusError, status_code 200

    (1) subclasses of anthropic.InternalServerError.
    (2) from httpx2.ReadError (ConnectionResetError underneath).
    (3) from httpx2.ConnectError (ConnectionRefusedError underneath).
    (4) from httpx2.RemoteProtocolError ("incomplete chunked read").
    (5) from httpx2.ReadTimeout; APITimeoutError subclasses APIConnectionError.
    (6) the base class, not an APIStatusError: it has no status_code; `.body` is the error object.

For mid-stream faults both SDKs have already yielded the events sent before the fault.

Hostile servers (test_faults.py pins these rows too). "nothing" means the SDK raises nothing: it
waits, or reads, as long as the server goes on.

    fault                       openai                      anthropic
    silent                      APITimeoutError (5)         APITimeoutError (5)
    drip (bytes < read timeout) nothing: no read times out  nothing: no read times out
    endless                     nothing: chunks forever     nothing: events forever
    linger                      APITimeoutError (5), after  raw httpx2.ReadTimeout, after
                                the whole reply             the whole reply
    bad_payload invalid_utf8    raw UnicodeDecodeError      raw UnicodeDecodeError
    bad_payload huge_int        raw ValueError (7)          raw ValueError (7)
    bad_payload deep_nesting    raw RecursionError          raw RecursionError
    bad_payload absurd_usage    nothing: usage is 10^400    nothing: usage is 10^400
    redirect (307, elsewhere)   follows it, with every      follows it, with every
                                extra header (8)            extra header (8)
    Backlogged (connect)        APITimeoutError (9)         APITimeoutError (9)

    (7) "Exceeds the limit (4300 digits) for integer string conversion".
    (8) httpx2 drops only Authorization on a redirect to another origin; `x-api-key` and any
        other credential header go along. The SDKs follow redirects by default.
    (9) from httpx2.ConnectTimeout.

Not pinned: `bad_payload` `not_an_object` and `mistyped_text`, which test intermodel's own reader
of the event stream (`intermodel/providers/wire.py`; its providers read the raw response, not the
SDKs' streams, so a fault that strikes mid-stream reaches them as the raw transport or JSON
exception; status errors are still the SDKs').

OpenAI's Responses API (`client.responses.create(stream=True)` on the same openai SDK): every row
of both tables is as in the openai column, the in-stream error included when it is sent as the
live API sends it. The other ways a Responses stream reports failure raise nothing:

    stream_error, responses="error"              APIError (6) (the live API's nested shape)
    stream_error, responses="error_documented"   nothing: yields a ResponseErrorEvent
    stream_error, responses="response.failed"    nothing: yields a ResponseFailedEvent
    stream_error, responses="llamacpp"           APIError (6) (a bare data: line, as llama.cpp)
    empty_stream                                 nothing: no events at all
    a response cut by max_output_tokens          nothing: ends with response.incomplete

Non-streamed requests, where the fault strikes halfway through the JSON body (the Responses API
as openai's Chat Completions):

    cut_midway              APIConnectionError              APIConnectionError
    stall                   APITimeoutError                 APITimeoutError
    malformed_sse           raw json.JSONDecodeError        raw json.JSONDecodeError
    stream_error            InternalServerError             OverloadedError (sent as a 529)
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from email.utils import formatdate
from typing import Any, Literal

FaultKind = Literal[
    "ok", "status", "context_too_long", "empty_stream", "reset", "refuse", "cut_midway", "stall",
    "malformed_sse",
    "stream_error",
    # Hostile servers: slow, endless, never finished, or sending what no honest server would.
    "redirect", "silent", "drip", "endless", "linger", "bad_payload",
]
StreamErrorKind = Literal["overloaded", "rate_limit", "api_error"]
# How a Responses API stream reports a failure (see responses.error_event).
ResponsesErrorShape = Literal["error", "error_documented", "response.failed", "llamacpp"]
PayloadKind = Literal["invalid_utf8", "huge_int", "deep_nesting", "absurd_usage", "not_an_object",
                      "mistyped_text"]

MID_STREAM_KINDS = frozenset({"cut_midway", "stall", "malformed_sse", "stream_error", "drip",
                              "endless", "linger", "bad_payload"})
TRANSIENT_STATUSES = frozenset({408, 409, 429, 500, 502, 503, 504, 529})
# Digits of the integers a hostile server sends: past Python's 4,300-digit conversion limit, and
# a usage count of 10^400 (within the limit, but beyond any float).
HUGE_INT_DIGITS = 5000
ABSURD_USAGE = 10**400
NESTING_DEPTH = 100_000


def http_date(seconds_from_now: float) -> str:
    """An HTTP-date for a Retry-After header, `seconds_from_now` ahead."""
    return formatdate(time.time() + seconds_from_now, usegmt=True)


@dataclass(frozen=True)
class Fault:
    """One failure, applied to one generation request (a refusal: to connection attempts)."""

    kind: FaultKind
    code: int = 0
    retry_after: str | None = None
    # A Retry-After HTTP-date this many seconds after the fault is served (not when the fault
    # was made: a test collected long before it runs would otherwise send a date in the past).
    retry_at: float | None = None
    retry_after_ms: str | None = None
    # Replaces the error body: a dict is sent as JSON, text as text/plain.
    body: dict[str, Any] | str | None = None
    # Data events sent before a mid-stream fault strikes; heartbeats are not counted. A reply
    # shorter than this is still faulted, before its last event.
    after_chunks: int = 0
    seconds: float = 0.0
    stream_error_kind: StreamErrorKind = "overloaded"
    responses_error: ResponsesErrorShape = "error"
    context_variant: Literal["llamacpp", "openai"] = "llamacpp"
    location: str = ""  # where a redirect points
    payload: PayloadKind = "invalid_utf8"
    usage: bool = True  # for linger: whether the OpenAI usage chunk is sent before the silence

    @classmethod
    def ok(cls) -> Fault:
        """No fault: lets one request through, so a queue can aim at later requests."""
        return cls("ok")

    @classmethod
    def status(
        cls,
        code: int,
        retry_after: str | None = None,
        retry_after_ms: int | str | None = None,
        body: dict[str, Any] | str | None = None,
        *,
        retry_at: float | None = None,
    ) -> Fault:
        """An HTTP error response; `retry_after` is seconds ("2") or an HTTP-date (`http_date`),
        `retry_at` an HTTP-date that many seconds after the response is sent."""
        ms = None if retry_after_ms is None else str(retry_after_ms)
        return cls("status", code=code, retry_after=retry_after, retry_at=retry_at,
                   retry_after_ms=ms, body=body)

    @classmethod
    def context_too_long(cls, variant: Literal["llamacpp", "openai"] = "llamacpp") -> Fault:
        """400 for a prompt over n_ctx; `variant` picks llama.cpp's body or OpenAI's (whose
        wording differs between Chat Completions and the Responses API)."""
        return cls("context_too_long", code=400, context_variant=variant)

    @classmethod
    def empty_stream(cls) -> Fault:
        """200 and a well-formed but empty event stream: llama-cpp-python's server answers a
        prompt longer than its context this way (and only logs why)."""
        return cls("empty_stream")

    @classmethod
    def reset(cls) -> Fault:
        """Read the request, then reset the connection (TCP RST) without a response."""
        return cls("reset")

    @classmethod
    def refuse(cls, seconds: float = 0.5) -> Fault:
        """Stop listening for `seconds`, so connection attempts in that window are refused.

        It strikes when it reaches the head of the queue (for the seeded rate: when it is drawn),
        not when a request arrives, since a refused connection never becomes a request. Open
        keep-alive connections are closed too, so a pooled client has to reconnect. Whether any
        attempt lands in the window depends on the client. Afterwards the same port is bound
        again; should another socket have taken it meanwhile, that bind fails in the server
        thread and the server stays down.
        """
        return cls("refuse", seconds=seconds)

    @classmethod
    def cut_midway(cls, after_chunks: int = 3) -> Fault:
        """Send `after_chunks` events, then close without ending the chunked body."""
        return cls("cut_midway", after_chunks=after_chunks)

    @classmethod
    def stall(cls, after_chunks: int = 3, seconds: float = 2.0) -> Fault:
        """Send `after_chunks` events, go silent for `seconds`, then close.

        Make `seconds` longer than the client's read timeout to get a timeout; a shorter stall
        ends as a cut connection.
        """
        return cls("stall", after_chunks=after_chunks, seconds=seconds)

    @classmethod
    def malformed_sse(cls, after_chunks: int = 2) -> Fault:
        """Send `after_chunks` events, then one whose JSON is truncated, then the rest."""
        return cls("malformed_sse", after_chunks=after_chunks)

    @classmethod
    def stream_error(
        cls, after_chunks: int = 2, kind: StreamErrorKind = "overloaded",
        responses: ResponsesErrorShape = "error", body: dict[str, Any] | None = None,
    ) -> Fault:
        """Send `after_chunks` events, then the protocol's in-stream error event, and end.

        On the Responses API, `responses` picks the event: `error` as the live API sends it
        (fields nested under `error`), `error_documented` as its reference documents it (flat),
        `response.failed` (the response, failed, with its error), or `llamacpp` (a bare `data:`
        line with the error body, as llama.cpp's server sends it). `body` ({"error": {...}})
        replaces the error `kind` stands for.
        """
        return cls("stream_error", after_chunks=after_chunks, stream_error_kind=kind,
                   responses_error=responses, body=body)

    @classmethod
    def redirect(cls, location: str, code: int = 307) -> Fault:
        """A redirect (301, 302, 307 or 308) to `location`, another origin or the same one."""
        return cls("redirect", code=code, location=location)

    @classmethod
    def silent(cls) -> Fault:
        """Read the request, then answer nothing at all, holding the connection open until the
        server stops: a server that accepts and never answers."""
        return cls("silent")

    @classmethod
    def drip(cls, after_chunks: int = 0, seconds: float = 2.0) -> Fault:
        """Send `after_chunks` events, then the rest of the stream one byte every `seconds`
        (each byte its own chunk), so no read ever times out yet no event completes for a long
        time. Given to every request (`FakeServer.every_request`), the whole response drips
        from its status line on, and never completes."""
        return cls("drip", after_chunks=after_chunks, seconds=seconds)

    @classmethod
    def endless(cls) -> Fault:
        """Stream text events forever (at `chunk_delay` apart), never a finish; a non-streamed
        reply's JSON body never ends either."""
        return cls("endless")

    @classmethod
    def linger(cls, usage: bool = True) -> Fault:
        """Send the whole reply, finish and usage included, but not the stream's terminator
        (OpenAI's `[DONE]`, Anthropic's `message_stop`), then keep the connection open and
        silent until the server stops. `usage=False` also leaves out OpenAI's usage chunk,
        which otherwise follows the finish."""
        return cls("linger", usage=usage)

    @classmethod
    def bad_payload(cls, payload: PayloadKind, after_chunks: int = 2) -> Fault:
        """After `after_chunks` events, an event no honest server sends, then the rest:

        - `invalid_utf8`: a text piece whose bytes are not UTF-8;
        - `huge_int`: an integer of HUGE_INT_DIGITS digits (past Python's conversion limit);
        - `deep_nesting`: a field nested NESTING_DEPTH arrays deep;
        - `not_an_object`: an event whose data is a JSON array, not an object;
        - `mistyped_text`: a text delta whose text is a number;
        - `absurd_usage`: nothing wrong until the usage, whose counts are ABSURD_USAGE (the
          reply is otherwise whole; `after_chunks` does not apply).
        """
        return cls("bad_payload", payload=payload, after_chunks=after_chunks)

    @property
    def mid_stream(self) -> bool:
        return self.kind in MID_STREAM_KINDS

    @property
    def transient(self) -> bool:
        """Whether a client should retry: everything but a 4xx that retrying cannot fix, a
        redirect, a reply that is whole (`linger`, absurd usage), an endless one (the client
        cuts it), and payloads no retry will mend (huge integers, deep nesting)."""
        if self.kind == "status":
            return self.code in TRANSIENT_STATUSES
        if self.kind == "bad_payload":
            return self.payload == "invalid_utf8"
        return self.kind not in ("context_too_long", "empty_stream", "redirect", "endless",
                                 "linger")


# The seeded rate's default draw: every kind a client should retry.
TRANSIENT_MIX: tuple[Fault, ...] = (
    Fault.status(429, retry_after="1"),
    Fault.status(500),
    Fault.status(502),
    Fault.status(503),
    Fault.status(529),
    Fault.reset(),
    Fault.refuse(),
    Fault.cut_midway(),
    Fault.stall(),
    Fault.malformed_sse(),
    Fault.stream_error(),
)


class FaultQueue:
    """Faults for upcoming generation requests: queued ones first, else a seeded random rate.

    The rate draws once per request. A draw is made ahead of the request it is for, so that a
    drawn refusal can close the port before that request's connection attempt.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._queue: deque[Fault] = deque()
        self._rate = 0.0
        self._rng = random.Random()
        self._kinds: tuple[Fault, ...] = TRANSIENT_MIX
        self._drawn: Fault | None = None
        self._has_draw = False
        self.on_push: Callable[[], None] | None = None  # lets the server act on a queued refusal

    def push(self, *faults: Fault) -> None:
        with self._lock:
            self._queue.extend(faults)
        if self.on_push is not None:
            self.on_push()

    def set_rate(self, rate: float, seed: int | None, kinds: Sequence[Fault] | None) -> None:
        with self._lock:
            self._rate = rate
            self._rng = random.Random(seed)
            self._kinds = tuple(kinds) if kinds else TRANSIENT_MIX
            self._has_draw = False

    def clear(self) -> None:
        with self._lock:
            self._queue.clear()
            self._rate = 0.0
            self._has_draw = False

    def __len__(self) -> int:
        with self._lock:
            return len(self._queue)

    def take(self) -> Fault | None:
        """The fault for a request that has arrived; a refusal is left for the server to arm."""
        with self._lock:
            if self._queue:
                if self._queue[0].kind == "refuse":
                    return None
                queued = self._queue.popleft()
                return None if queued.kind == "ok" else queued
            fault = self._draw()
            if fault is not None and fault.kind == "refuse":
                return None
            self._has_draw = False
            return fault

    def take_refusal(self) -> Fault | None:
        """The next fault if it is a refusal, removing it; else None and nothing changes."""
        with self._lock:
            if self._queue:
                return self._queue.popleft() if self._queue[0].kind == "refuse" else None
            fault = self._draw()
            if fault is None or fault.kind != "refuse":
                return None
            self._has_draw = False
            return fault

    def _draw(self) -> Fault | None:
        if not self._has_draw:
            hit = self._rate > 0 and self._rng.random() < self._rate
            self._drawn = self._rng.choice(self._kinds) if hit else None
            self._has_draw = True
        return self._drawn


# Error bodies, shaped like each provider's own.
_OPENAI_ERRORS: dict[int, tuple[str, str | None, str]] = {
    400: ("invalid_request_error", None, "Invalid request."),
    401: ("invalid_request_error", "invalid_api_key", "Incorrect API key provided."),
    403: ("permission_error", None, "You are not allowed to use this model."),
    404: ("invalid_request_error", "model_not_found", "The model does not exist."),
    429: ("requests", "rate_limit_exceeded", "Rate limit reached for requests."),
    500: ("server_error", None, "The server had an error while processing your request."),
    502: ("server_error", None, "Bad gateway."),
    503: ("server_error", None, "The engine is currently overloaded, please try again later."),
    529: ("server_error", None, "Overloaded."),
}
_ANTHROPIC_ERRORS: dict[int, tuple[str, str]] = {
    400: ("invalid_request_error", "Invalid request."),
    401: ("authentication_error", "invalid x-api-key"),
    403: ("permission_error", "Your API key does not have permission to use this resource."),
    404: ("not_found_error", "Not found."),
    429: ("rate_limit_error", "Number of requests has exceeded your rate limit."),
    500: ("api_error", "Internal server error."),
    502: ("api_error", "Bad gateway."),
    503: ("api_error", "Service unavailable."),
    529: ("overloaded_error", "Overloaded"),
}
# In-stream errors reuse the body of the status each kind would have had.
STREAM_ERROR_STATUS: dict[StreamErrorKind, int] = {
    "overloaded": 529, "rate_limit": 429, "api_error": 500,
}


def openai_error(
    status: int, message: str | None = None, *, type: str | None = None,
    code: str | None = None, param: str | None = None,
) -> dict[str, Any]:
    default = _OPENAI_ERRORS.get(
        status, ("server_error" if status >= 500 else "invalid_request_error", None, "Error.")
    )
    return {"error": {"message": message or default[2], "type": type or default[0],
                      "param": param, "code": code or default[1]}}


def anthropic_error(status: int, message: str | None = None) -> dict[str, Any]:
    default = _ANTHROPIC_ERRORS.get(
        status, ("api_error" if status >= 500 else "invalid_request_error", "Error.")
    )
    return {"type": "error", "error": {"type": default[0], "message": message or default[1]}}


def error_body(protocol: str, status: int, message: str | None = None) -> dict[str, Any]:
    if protocol == "anthropic":
        return anthropic_error(status, message)
    return openai_error(status, message)


def context_error_body(
    protocol: str, variant: str, n_prompt: int, n_ctx: int
) -> dict[str, Any]:
    """The 400 body for a prompt of `n_prompt` tokens against a window of `n_ctx`."""
    if protocol == "anthropic":
        return anthropic_error(400, f"prompt is too long: {n_prompt} tokens > {n_ctx} maximum")
    if variant == "openai" and protocol == "responses":
        return openai_error(
            400, "Your input exceeds the context window of this model. Please adjust your "
                 "input and try again.", code="context_length_exceeded", param="input",
        )
    if variant == "openai":
        return openai_error(
            400,
            f"This model's maximum context length is {n_ctx} tokens. However, your messages "
            f"resulted in {n_prompt} tokens. Please reduce the length of the messages.",
            code="context_length_exceeded", param="messages",
        )
    # llama.cpp's own shape: a numeric code and its token counts beside the message.
    return {"error": {
        "code": 400,
        "message": f"request ({n_prompt} tokens) exceeds the available context size "
                   f"({n_ctx} tokens), try increasing it",
        "type": "exceed_context_size_error", "n_prompt_tokens": n_prompt, "n_ctx": n_ctx,
    }}
