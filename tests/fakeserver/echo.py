"""A hostile server mode: echo the caller's credential back inside bytes that are not UTF-8.

With `FakeServer.echo_key_invalid_utf8` set, every generation request is answered 200 with an event
stream whose first event carries the request's key (from `Authorization: Bearer` or `x-api-key`)
followed by a byte that is not UTF-8. The SDKs decode each SSE line with UTF-8, so the key ends up
inside the decoding error (its `repr` shows the raw line): what a careless error path would print.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .handler import Handler, RecordedRequest

__all__ = ["echoed_key", "send_key_in_invalid_utf8"]


def echoed_key(record: RecordedRequest) -> str:
    """The credential the request carried ("" when none)."""
    bearer = record.headers.get("authorization", "")
    if bearer.lower().startswith("bearer "):
        return bearer[len("bearer "):]
    return record.headers.get("x-api-key", "")


def send_key_in_invalid_utf8(handler: Handler, record: RecordedRequest) -> None:
    key = echoed_key(record).encode()
    if handler.api == "anthropic":
        event = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                 b'"delta":{"type":"text_delta","text":"your key: ' + key + b' \xff\xfe"}}\n\n')
    else:
        event = (b'data: {"choices":[{"index":0,"delta":{"content":"your key: ' + key
                 + b' \xff\xfe"}}]}\n\n')
    handler._start(200, "text/event-stream")
    handler.send_header("Content-Length", str(len(event)))
    handler.end_headers()
    handler.wfile.write(event)
    handler.close_connection = True
