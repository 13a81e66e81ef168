"""The HTTP client under both SDK providers (the SDK's own defaults, with two changes), and what
they read after a reply is complete.

- It follows no redirect. A redirect would take the request, and the credentials in its headers
  (`extra_headers` such as `x-api-key` or a proxy's token, which httpx2 does not strip the way it
  strips `Authorization`), to wherever the server points. A model request is sent to the
  configured `base_url` or nowhere; a 3xx answer is an error that names its `Location`.
- It reads at most MAX_BODY bytes of an answer that is not an event stream (an error, or the
  one unstreamed request, which asks for a single token), so a body that never ends cannot fill
  memory: the SDKs read such bodies whole. Event streams are bounded by the reply's cap.

A reply is complete with its finish reason. What follows it (OpenAI's usage chunk and `[DONE]`,
Anthropic's `message_stop`, then the end of the body, which lets the connection be reused) is read
for AFTER_FINISH seconds at most (`read_after_finish`): a server that keeps the connection open
after its reply costs no more than that, and nothing that goes wrong meanwhile costs the reply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import anyio
import httpx2

__all__ = ["AFTER_FINISH", "MAX_BODY", "read_after_finish", "sdk_http_client"]

MAX_BODY = 64 * 1024
AFTER_FINISH = 2.0  # seconds, at most, of reading after a reply's finish

T = TypeVar("T")


async def read_after_finish(events: AsyncIterator[T], take: Callable[[T], object],
                            stall: float) -> None:
    """Read the rest of a finished reply's stream, handing each event to `take`, for
    AFTER_FINISH seconds at most, and well within `stall` (the agent's timeout, after which the
    turn producer would take the silence for a stall)."""
    with anyio.move_on_after(min(AFTER_FINISH, stall / 2)):
        try:
            async for event in events:
                take(event)
        except Exception:  # the stream broke, or was malformed, after the reply: it is whole
            return


def sdk_http_client(sdk: Any, timeout: httpx2.Timeout) -> httpx2.AsyncClient:
    """An AsyncClient for `sdk` (the openai or anthropic module), with its connection limits."""
    client: httpx2.AsyncClient = sdk.DefaultAsyncHttpxClient(
        timeout=timeout, follow_redirects=False,
        event_hooks={"response": [_bound_body]})
    return client


async def _bound_body(response: httpx2.Response) -> None:
    streamed = response.headers.get("content-type", "").startswith("text/event-stream")
    if (response.status_code >= 300 or not streamed) \
            and isinstance(response.stream, httpx2.AsyncByteStream):
        response.stream = _Prefix(response.stream, MAX_BODY)


class _Prefix(httpx2.AsyncByteStream):
    """The first `limit` bytes of a body."""

    def __init__(self, inner: httpx2.AsyncByteStream, limit: int) -> None:
        self._inner = inner
        self._limit = limit

    async def __aiter__(self) -> AsyncIterator[bytes]:
        left = self._limit
        async for piece in self._inner:
            yield piece[:left]
            left -= len(piece)
            if left <= 0:
                return

    async def aclose(self) -> None:
        await self._inner.aclose()
