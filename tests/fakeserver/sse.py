"""Wire encodings of a reply: SSE events as ready-to-send bytes, and the non-streamed JSON bodies.

Event shapes follow captures of llama.cpp's OpenAI- and Anthropic-compatible endpoints. Each
streamed piece is one byte template joined around the JSON-escaped piece, so a stream costs one
string escape per chunk rather than one `json.dumps` of a whole dict.
"""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from json.encoder import encode_basestring_ascii as _quote  # the C string escaper behind json.dumps
from typing import Any

from .faults import HUGE_INT_DIGITS, NESTING_DEPTH, PayloadKind
from .replies import Reply

FINGERPRINT = "b1-0c1e570"

# Heartbeats carry no data; `after_chunks` in faults does not count them.
KEEPALIVE = b": keep-alive\n\n"
PING = b'event: ping\ndata: {"type": "ping"}\n\n'
HEARTBEATS = (KEEPALIVE, PING)

DONE = b"data: [DONE]\n\n"

# Truncated JSON inside otherwise well-formed events. The Anthropic one names its event because
# the Anthropic SDK silently drops data that arrives without an `event:` line.
OPENAI_MALFORMED = b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"tru\n\n'
ANTHROPIC_MALFORMED = (
    b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"ty\n\n'
)

ANTHROPIC_STOP_REASONS = {"stop": "end_turn", "length": "max_tokens"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def think_tag_chunks(thinking: list[str]) -> list[str]:
    """Thinking wrapped in <think></think>, both tags split across chunks as real streams do."""
    *head, last = thinking
    return ["<thi", "nk>", *head, last + "</", "think>"]


def signature(thinking: str) -> str:
    """A stable stand-in for the opaque signature Anthropic attaches to a thinking block."""
    return base64.b64encode(hashlib.sha256(thinking.encode()).digest()).decode()


def openai_stream(
    reply: Reply, *, id: str, created: int, model: str, usage: tuple[int, int] | None
) -> Iterator[bytes]:
    """chat.completion.chunk events; `usage` None leaves out the final usage chunk."""
    meta = _dumps(
        {"created": created, "id": id, "model": model, "system_fingerprint": FINGERPRINT,
         "object": "chat.completion.chunk"}
    )[1:]  # the object's members without its opening brace, to close each chunk
    head = b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"'
    tail = b"}}]," + meta + b"\n\n"

    def deltas(key: str, pieces: list[str]) -> Iterator[bytes]:
        prefix = head + key.encode() + b'":'
        for piece in pieces:
            yield prefix + _quote(piece).encode() + tail

    yield KEEPALIVE
    yield head + b'role":"assistant","content":null' + tail
    thinking = reply.thinking_chunks()
    text = reply.text_chunks()
    style = reply.thinking_style
    if thinking and style in ("reasoning_content", "reasoning"):
        yield from deltas(style, thinking)
    elif thinking and style == "think_tags":
        text = think_tag_chunks(thinking) + text
    yield from deltas("content", text)
    yield (
        b'data: {"choices":[{"finish_reason":' + _quote(reply.stop_reason).encode()
        + b',"index":0,"delta":{}}],' + meta + b"\n\n"
    )
    if usage is not None:
        prompt, completion = usage
        yield (
            b'data: {"choices":[],' + meta[:-1] + b',"usage":'
            + _dumps({"completion_tokens": completion, "prompt_tokens": prompt,
                      "total_tokens": prompt + completion})
            + b"}\n\n"
        )
    yield DONE


def openai_completion(
    reply: Reply, *, id: str, created: int, model: str, usage: tuple[int, int]
) -> bytes:
    """A non-streamed chat.completion body."""
    message: dict[str, Any] = {"role": "assistant", "content": reply.text}
    if reply.thinking and reply.thinking_style in ("reasoning_content", "reasoning"):
        message[reply.thinking_style] = reply.thinking
    elif reply.thinking and reply.thinking_style == "think_tags":
        message["content"] = f"<think>{reply.thinking}</think>{reply.text}"
    prompt, completion = usage
    return _dumps({
        "choices": [{"finish_reason": reply.stop_reason, "index": 0, "message": message}],
        "created": created, "model": model, "system_fingerprint": FINGERPRINT,
        "object": "chat.completion", "id": id,
        "usage": {"completion_tokens": completion, "prompt_tokens": prompt,
                  "total_tokens": prompt + completion},
    })


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + _dumps(data) + b"\n\n"


def anthropic_stream(
    reply: Reply, *, id: str, model: str, thinking: bool, usage: tuple[int, int]
) -> Iterator[bytes]:
    """Messages stream events; the thinking block is sent only when `thinking` is true."""
    prompt, completion = usage
    yield _event("message_start", {"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": prompt, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": 0},
    }})
    yield PING
    index = 0

    def deltas(kind: str, key: str, pieces: list[str]) -> Iterator[bytes]:
        prefix = (
            b'event: content_block_delta\ndata: {"type":"content_block_delta","index":%d,'
            b'"delta":{"type":"%s","%s":' % (index, kind.encode(), key.encode())
        )
        for piece in pieces:
            yield prefix + _quote(piece).encode() + b"}}\n\n"

    def block_stop() -> bytes:
        return _event("content_block_stop", {"type": "content_block_stop", "index": index})

    if thinking and reply.thinking:
        yield _event("content_block_start", {"type": "content_block_start", "index": index,
                                             "content_block": {"type": "thinking", "thinking": "",
                                                               "signature": ""}})
        yield from deltas("thinking_delta", "thinking", reply.thinking_chunks())
        yield from deltas("signature_delta", "signature", [signature(reply.thinking)])
        yield block_stop()
        yield PING
        index += 1
    yield _event("content_block_start", {"type": "content_block_start", "index": index,
                                         "content_block": {"type": "text", "text": ""}})
    yield from deltas("text_delta", "text", reply.text_chunks())
    yield block_stop()
    yield _event("message_delta", {
        "type": "message_delta",
        "delta": {"stop_reason": ANTHROPIC_STOP_REASONS.get(reply.stop_reason, reply.stop_reason),
                  "stop_sequence": None},
        "usage": {"output_tokens": completion},
    })
    yield _event("message_stop", {"type": "message_stop"})


def anthropic_message(
    reply: Reply, *, id: str, model: str, thinking: bool, usage: tuple[int, int]
) -> bytes:
    """A non-streamed Messages body."""
    content: list[dict[str, Any]] = []
    if thinking and reply.thinking:
        content.append({"type": "thinking", "thinking": reply.thinking,
                        "signature": signature(reply.thinking)})
    content.append({"type": "text", "text": reply.text})
    prompt, completion = usage
    return _dumps({
        "id": id, "type": "message", "role": "assistant", "model": model, "content": content,
        "stop_reason": ANTHROPIC_STOP_REASONS.get(reply.stop_reason, reply.stop_reason),
        "stop_sequence": None,
        "usage": {"input_tokens": prompt, "cache_creation_input_tokens": 0,
                  "cache_read_input_tokens": 0, "output_tokens": completion},
    })


def openai_error_event(error: dict[str, Any]) -> bytes:
    return b"data: " + _dumps(error) + b"\n\n"


def anthropic_error_event(error: dict[str, Any]) -> bytes:
    return _event("error", error)


# Hostile payloads: one event each, in the shape of a text delta, that no honest server sends.
_NESTED = b"[" * NESTING_DEPTH + b"]" * NESTING_DEPTH
_HUGE = b"1" + b"0" * (HUGE_INT_DIGITS - 1)
_OPENAI_BAD = {
    "invalid_utf8": b'data: {"choices":[{"finish_reason":null,"index":0,"delta":'
                    b'{"content":"caf\xc3 \xff\xfe"}}],"object":"chat.completion.chunk"}\n\n',
    "huge_int": b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":"big"}}],'
                b'"created":' + _HUGE + b',"object":"chat.completion.chunk"}\n\n',
    "deep_nesting": b'data: {"choices":[{"finish_reason":null,"index":0,"delta":'
                    b'{"content":"deep"}}],"nest":' + _NESTED + b'}\n\n',
    "not_an_object": b'data: [{"choices":[{"finish_reason":null,"index":0,"delta":'
                     b'{"content":"listed"}}]}]\n\n',
    "mistyped_text": b'data: {"choices":[{"finish_reason":null,"index":0,"delta":'
                     b'{"content":42}}],"object":"chat.completion.chunk"}\n\n',
}
_ANTHROPIC_BAD = {
    "invalid_utf8": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                    b'"delta":{"type":"text_delta","text":"caf\xc3 \xff\xfe"}}\n\n',
    "huge_int": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":'
                + _HUGE + b',"delta":{"type":"text_delta","text":"big"}}\n\n',
    "deep_nesting": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                    b'"delta":{"type":"text_delta","text":"deep"},"nest":' + _NESTED + b'}\n\n',
    "not_an_object": b'event: content_block_delta\ndata: [{"type":"content_block_delta",'
                     b'"index":0,"delta":{"type":"text_delta","text":"listed"}}]\n\n',
    "mistyped_text": b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
                     b'"delta":{"type":"text_delta","text":42}}\n\n',
}


def bad_event(protocol: str, payload: PayloadKind) -> bytes:
    """The hostile event for `payload` (not `absurd_usage`, which is a whole reply's usage)."""
    return (_ANTHROPIC_BAD if protocol == "anthropic" else _OPENAI_BAD)[payload]


# The text an endless reply repeats, one piece per event.
ENDLESS_PIECE = "on and on " * 10


def openai_endless(*, id: str, created: int, model: str) -> Iterator[bytes]:
    """A reply that never finishes: the role chunk, then ENDLESS_PIECE forever."""
    meta = _dumps({"created": created, "id": id, "model": model,
                   "object": "chat.completion.chunk"})[1:]
    yield b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"role":"assistant",' \
          b'"content":null}}],' + meta + b"\n\n"
    piece = b'data: {"choices":[{"finish_reason":null,"index":0,"delta":{"content":' \
            + _quote(ENDLESS_PIECE).encode() + b"}}]," + meta + b"\n\n"
    while True:
        yield piece


def anthropic_endless(*, id: str, model: str) -> Iterator[bytes]:
    yield _event("message_start", {"type": "message_start", "message": {
        "id": id, "type": "message", "role": "assistant", "content": [], "model": model,
        "stop_reason": None, "stop_sequence": None,
        "usage": {"input_tokens": 1, "output_tokens": 0},
    }})
    yield _event("content_block_start", {"type": "content_block_start", "index": 0,
                                         "content_block": {"type": "text", "text": ""}})
    piece = (b'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,'
             b'"delta":{"type":"text_delta","text":' + _quote(ENDLESS_PIECE).encode()
             + b"}}\n\n")
    while True:
        yield piece


def terminator(protocol: str) -> bytes:
    """The event that ends a stream: OpenAI's `[DONE]`, Anthropic's `message_stop`."""
    if protocol == "anthropic":
        return _event("message_stop", {"type": "message_stop"})
    return DONE


def is_openai_usage(event: bytes) -> bool:
    return event.startswith(b'data: {"choices":[],')
