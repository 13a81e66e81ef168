"""llama.cpp's dialect of the Responses API, as its server sends it (captured in `wire/`), and
reading a stream back to compare one server's with another's.

No sequence numbers or indexes, bare response objects, reasoning only as full text (whose item
closes after the text), usage without reasoning tokens, never `incomplete`, errors in llama.cpp's
own shape, and its own refusals of input items. Keys are in llama.cpp's order.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from .replies import input_items
from .responses import Answer


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _event(kind: str, **fields: Any) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _dumps({"type": kind, **fields}) + b"\n\n"


def _error(message: str) -> tuple[int, dict[str, Any]]:
    return 400, {"error": {"code": 400, "message": message, "type": "invalid_request_error"}}


def check_inputs(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """llama.cpp's refusals of input it cannot turn into a chat: a previous_response_id, a
    reasoning item without its text (as OpenAI's encrypted ones are), and an assistant message
    without `"type": "message"` (which OpenAI accepts)."""
    if body.get("previous_response_id"):
        return _error("llama.cpp does not support 'previous_response_id'.")
    for item in input_items(body):
        if not isinstance(item, dict):
            continue
        if item.get("type") == "reasoning":
            content = item.get("content")
            if not isinstance(content, list):
                return _error("item['content'] is not an array")
            if not content:
                return _error("item['content'] is empty")
        elif item.get("role") == "assistant" and item.get("type") != "message":
            return _error("Cannot determine type of 'item'")
    return None


def _usage(answer: Answer) -> dict[str, Any]:
    prompt, completion = answer.usage
    return {"input_tokens": prompt, "output_tokens": completion,
            "total_tokens": prompt + completion, "input_tokens_details": {"cached_tokens": 0}}


def _reasoning(answer: Answer) -> dict[str, Any]:
    return {"id": answer.reasoning_id, "summary": [], "type": "reasoning",
            "content": [{"text": answer.reply.thinking, "type": "reasoning_text"}],
            "encrypted_content": ""}


def _message(answer: Answer) -> dict[str, Any]:
    return {"type": "message", "status": "completed", "id": answer.message_id,
            "content": [answer.text_part(answer.reply.text)], "role": "assistant"}


def _output(answer: Answer) -> list[dict[str, Any]]:
    reasoning = [_reasoning(answer)] if answer.reply.thinking else []
    return [*reasoning, *([_message(answer)] if answer.reply.text else [])]


def stream(answer: Answer) -> Iterator[bytes]:
    """The events of one streamed response in llama.cpp's dialect."""
    reply = answer.reply
    opened = {"id": answer.id, "object": "response", "status": "in_progress"}
    yield _event("response.created", response=opened)
    yield _event("response.in_progress", response=opened)
    if reply.thinking:
        yield _event("response.output_item.added", item={
            "id": answer.reasoning_id, "summary": [], "type": "reasoning", "content": [],
            "encrypted_content": "", "status": "in_progress"})
        head = (b'event: response.reasoning_text.delta\ndata: {"type":'
                b'"response.reasoning_text.delta","delta":')
        tail = b',"item_id":"' + answer.reasoning_id.encode() + b'"}\n\n'
        for piece in reply.thinking_chunks():
            yield head + _quote(piece).encode() + tail
    if reply.text:
        yield _event("response.output_item.added", item={
            "content": [], "id": answer.message_id, "role": "assistant",
            "status": "in_progress", "type": "message"})
        yield _event("response.content_part.added", item_id=answer.message_id,
                     part={"type": "output_text", "text": ""})
        head = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
                b'"item_id":"' + answer.message_id.encode() + b'","delta":')
        for piece in reply.text_chunks():
            yield head + _quote(piece).encode() + b"}\n\n"
    # The reasoning item closes only once the whole reply is there, after the text.
    if reply.thinking:
        yield _event("response.output_item.done", item=_reasoning(answer))
    if reply.text:
        part = answer.text_part(reply.text)
        yield _event("response.output_text.done", item_id=answer.message_id, text=reply.text)
        yield _event("response.content_part.done", item_id=answer.message_id, part=part)
        yield _event("response.output_item.done", item=_message(answer))
    prompt, completion = answer.usage
    yield _event("response.completed", response={
        "id": answer.id, "object": "response", "created_at": answer.created_at,
        "status": "completed", "model": answer.model, "output": _output(answer),
        "usage": _usage(answer),
    }, timings=_timings(prompt, completion))


def _timings(prompt: int, completion: int) -> dict[str, Any]:
    """llama.cpp's speed report, for a server reading 20 tokens a second and writing 10."""
    return {"cache_n": 0, "prompt_n": prompt, "prompt_ms": prompt * 50.0,
            "prompt_per_token_ms": 50.0, "prompt_per_second": 20.0, "predicted_n": completion,
            "predicted_ms": completion * 100.0, "predicted_per_token_ms": 100.0,
            "predicted_per_second": 10.0}


def body(answer: Answer) -> bytes:
    """The non-streamed response."""
    return _dumps({"completed_at": answer.created_at, "created_at": answer.created_at,
                   "id": answer.id, "model": answer.model, "object": "response",
                   "output": _output(answer), "status": "completed", "usage": _usage(answer)})


# Reading a stream back, to compare one server's with another's.


def read_stream(text: str) -> list[tuple[str, Any]]:
    """(event name, parsed data) of each event of a Responses stream (`event:` and `data:`
    lines; a `data:` line alone is named by its data's `type`, or "data")."""
    events = []
    for block in text.strip().split("\n\n"):
        fields = dict(line.split(": ", 1) for line in block.splitlines() if ": " in line)
        data = json.loads(fields["data"])
        name = fields.get("event") or (data.get("type") if isinstance(data, dict) else None)
        events.append((name or "data", data))
    return events


def shape(value: Any) -> Any:
    """A JSON value's structure: object keys in their order, and the types of the values."""
    if isinstance(value, dict):
        return tuple((key, shape(item)) for key, item in value.items())
    if isinstance(value, list):
        return tuple(shape(item) for item in value)
    return type(value).__name__


def stream_shape(events: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    """The shape of each event, a run of events of one shape (the deltas) counted once."""
    shapes = [(name, shape(data)) for name, data in events]
    return [item for i, item in enumerate(shapes) if i == 0 or item != shapes[i - 1]]
