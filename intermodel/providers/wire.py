"""Reading a reply's event stream straight from its bytes: the server-sent events, and the JSON
object each one carries.

The providers ask the SDKs for the raw response (`with_streaming_response`) and read its body
here, rather than through the SDKs' streams, which build a typed model for every event (more than
half of the SDK's cost per chunk for Anthropic's stream, over nine tenths for OpenAI's). The
request side stays with the SDK: the URL, the headers and credentials, and the error an
unsuccessful status becomes.

Everything here reads untrusted input. Lines may end in CR, LF or CRLF, split anywhere between
reads; the bytes must be UTF-8 (`UnicodeDecodeError` otherwise, which `errors.translate` makes a
transient failure); an event's payload must be a JSON object, and a field the provider needs must
have the type it needs (`ProviderBroken` otherwise). Comments, `id` and `retry` fields and unknown
fields are skipped; an event with no data line is not dispatched (the SSE specification's rule).
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import aclosing
from typing import Any

from intermodel.errors import ProviderBroken
from intermodel.providers.errors import error_for_stream_payload

__all__ = ["MAX_EVENT", "ServerEvent", "json_object", "json_payloads", "loose_text", "member",
           "server_events", "text_member"]

ServerEvent = tuple[str, str]  # (the event's name, "" when it has none; its data)

_BOM = "\ufeff"
# The largest event we read: a final event repeats the whole reply (its text, its reasoning,
# encrypted), which is far smaller; a line that never ends must not fill memory.
MAX_EVENT = 16 * 2**20


async def server_events(body: AsyncIterator[bytes]) -> AsyncGenerator[ServerEvent, None]:
    """The events of an event stream, from its body's bytes as they arrive."""
    held: list[bytes] = []  # the start of a line whose end has not arrived yet, in pieces
    held_size = 0
    after_cr = False  # the last read ended in CR: an LF starting the next belongs to it
    first = True
    name = ""
    data: list[str] = []
    data_size = 0
    async for chunk in body:
        if after_cr:
            after_cr = False
            if chunk[:1] == b"\n":
                chunk = chunk[1:]
        end = max(chunk.rfind(b"\n"), chunk.rfind(b"\r"))
        if end < 0:  # no line ends here: keep it, without copying what came before
            held.append(chunk)
            held_size += len(chunk)
            if held_size > MAX_EVENT:
                raise _too_long()
            continue
        if held:
            end += held_size
            chunk = b"".join((*held, chunk))
            held.clear()
            held_size = 0
        rest = chunk[end + 1:]
        if rest:
            held.append(rest)
            held_size = len(rest)
        after_cr = not rest and chunk[end] == 0x0D  # an LF may yet come to make it CRLF
        # Whole lines, each with its ending; strict: a stream that is not UTF-8 is broken.
        text = chunk[:end + 1].decode("utf-8")
        if first:
            first = False
            text = text.removeprefix(_BOM)
        if "\r" in text:
            text = text.replace("\r\n", "\n").replace("\r", "\n")
        lines = text.split("\n")
        lines.pop()  # the empty string after the last line's ending
        for line in lines:
            if not line:  # the blank line that ends an event
                if data:
                    yield name, data[0] if len(data) == 1 else "\n".join(data)
                    data = []
                    data_size = 0
                name = ""
            elif line.startswith("data:"):
                value = line[6:] if line.startswith(" ", 5) else line[5:]
                data.append(value)
                data_size += len(value)
                if data_size > MAX_EVENT:
                    raise _too_long()
            elif line.startswith("event:"):
                name = line[7:] if line.startswith(" ", 6) else line[6:]
            elif line == "data":  # a field with no colon has the empty value
                data.append("")
            elif line == "event":
                name = ""
            # A comment (":…"), `id`, `retry` or an unknown field: nothing we use.
    # A stream that ends without the blank line closing its last event leaves that event
    # incomplete, and the SSE specification drops it; so do we.


def _too_long() -> ProviderBroken:
    return ProviderBroken(f"the server sent an event of more than {MAX_EVENT // 2**20} MiB")


def json_object(data: str) -> dict[str, Any]:
    """An event's payload, which must be a JSON object. Malformed JSON raises as `json` does
    (`errors.translate` classifies it)."""
    value = json.loads(data)
    if type(value) is not dict:
        raise ProviderBroken(f"the server sent an event that is not a JSON object: "
                             f"{type(value).__name__}")
    return value


async def json_payloads(body: AsyncIterator[bytes]) -> AsyncGenerator[dict[str, Any], None]:
    """The JSON objects of an OpenAI-style stream (Chat Completions, Responses), up to a `[DONE]`
    if it sends one. An object that carries an `error` (how OpenAI and compatible servers report a
    failure after the 200) raises it, as the SDK's own stream does."""
    async with aclosing(server_events(body)) as events:
        async for _, data in events:
            if data.startswith("[DONE]"):
                async for _ in events:  # to the body's end, so the connection can be reused
                    pass
                return
            payload = json_object(data)
            if payload.get("error"):
                raise error_for_stream_payload(payload, "An error occurred during streaming",
                                               provider="")  # `translate` names it
            yield payload


def member(value: object, key: str) -> Any:
    """`value[key]` when `value` is a JSON object, else None: a reader of untrusted JSON that
    never raises for a missing or mistyped field."""
    return value.get(key) if type(value) is dict else None


def text_member(value: object, key: str) -> str | None:
    """`value[key]` when it is a string, None when it is missing or null. Any other type in a
    field that carries text is a broken server."""
    text = value.get(key) if type(value) is dict else None
    if text is None or type(text) is str:
        return text
    raise ProviderBroken(f"the server sent {type(text).__name__} where the text of "
                         f"{key!r} belongs")


def loose_text(value: object, key: str) -> str | None:
    """`value[key]` when it is a string, else None: for a field that only names or annotates (a
    model, a status, a server's own extension), where any other type is ignored, not fatal."""
    text = value.get(key) if type(value) is dict else None
    return text if type(text) is str else None
