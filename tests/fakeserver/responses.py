"""OpenAI's Responses API (`POST /v1/responses`) as the fake server speaks it.

Streamed events, the non-streamed body, the encrypted reasoning a reasoning model hands back, and
the checks the API makes on reasoning items sent back to it. Shapes follow OpenAI's API: the
openai SDK's types, its streaming reference and what live traffic carries where the two differ
(the `error` event nests its fields under `error`, as the live API sends it, and as the SDK
needs to raise). llama.cpp's server speaks a reduced dialect of the same protocol; see
`wire/README.md` for a capture and every difference.

A stream, for a reply with thinking and a request asking for a summary:

    response.created, response.in_progress                       (the response, in progress)
    response.output_item.added                                   (the reasoning item)
      response.reasoning_summary_part.added                      (per summary part:)
      response.reasoning_summary_text.delta ...
      response.reasoning_summary_text.done
      response.reasoning_summary_part.done
    response.output_item.done                                    (with encrypted_content)
    response.output_item.added                                   (the assistant message)
      response.content_part.added
      response.output_text.delta ...
      response.output_text.done
      response.content_part.done
    response.output_item.done
    response.completed | response.incomplete                    (the response, with usage)

Every event carries `sequence_number`, from 0. Nothing follows the last event: no `[DONE]`.

`FakeServer.responses_dialect = "llamacpp"` speaks llama.cpp's dialect instead (see
`responses_llamacpp`).
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from json.encoder import encode_basestring_ascii as _quote
from typing import Any

from .faults import HUGE_INT_DIGITS, NESTING_DEPTH, PayloadKind, ResponsesErrorShape
from .replies import Reply, input_items, split_tokens

INCLUDE_ENCRYPTED = "reasoning.encrypted_content"

# Replies that stopped for these reasons end `incomplete`, with this reason.
INCOMPLETE_REASONS = {"length": "max_output_tokens", "max_output_tokens": "max_output_tokens",
                      "content_filter": "content_filter"}


def _dumps(obj: Any) -> bytes:
    return json.dumps(obj, separators=(",", ":")).encode()


def _event(kind: str, data: bytes) -> bytes:
    return b"event: " + kind.encode() + b"\ndata: " + data + b"\n\n"


# Encrypted reasoning. OpenAI's blob is Fernet ciphertext the client cannot read; this one is
# readable JSON plus a keyed hash, so tests can tell which response an item came from and the
# server can refuse blobs it did not issue, or that were cut or altered, as OpenAI does.

_SEAL_PREFIX = "gAAAAAB"  # what a Fernet token (OpenAI's blobs) starts with
_SEAL_KEY = b"intermodel fake server: reasoning items"


def seal(payload: dict[str, Any]) -> str:
    """The encrypted_content for `payload`; the same payload always gives the same blob."""
    data = base64.urlsafe_b64encode(json.dumps(payload, sort_keys=True).encode()).decode()
    tag = hmac.new(_SEAL_KEY, data.encode(), hashlib.sha256).hexdigest()[:32]
    return f"{_SEAL_PREFIX}{data}.{tag}"


def unseal(blob: object) -> dict[str, Any] | None:
    """The payload `seal` put in `blob`: {"response", "item", "reasoning"}; None when the blob
    was not issued by a fake server, or was changed."""
    if not isinstance(blob, str) or not blob.startswith(_SEAL_PREFIX):
        return None
    data, _, tag = blob[len(_SEAL_PREFIX):].rpartition(".")
    expected = hmac.new(_SEAL_KEY, data.encode(), hashlib.sha256).hexdigest()[:32]
    if not hmac.compare_digest(tag, expected):
        return None
    try:
        payload = json.loads(base64.urlsafe_b64decode(data.encode()))
    except (ValueError, binascii.Error):
        return None
    return payload if isinstance(payload, dict) else None


def reasoning_inputs(body: dict[str, Any]) -> list[dict[str, Any]]:
    return [item for item in input_items(body)
            if isinstance(item, dict) and item.get("type") == "reasoning"]


def _openai_error(message: str, *, param: str | None, code: str | None) -> dict[str, Any]:
    return {"error": {"message": message, "type": "invalid_request_error", "param": param,
                      "code": code}}


def check_reasoning_inputs(body: dict[str, Any]) -> tuple[int, dict[str, Any]] | None:
    """The status and error OpenAI answers for reasoning items it cannot use, else None.

    An item with encrypted_content must carry a blob this server issued, unchanged. An item
    without one refers to a stored item, and this server stores nothing: with `store` false
    OpenAI says exactly that.
    """
    for item in reasoning_inputs(body):
        item_id = str(item.get("id", ""))
        blob = item.get("encrypted_content")
        if blob is None:
            message = f"Item with id '{item_id}' not found."
            if body.get("store") is False:
                message += (" Items are not persisted when `store` is set to false. Try again "
                            "with `store` set to true, or remove this item from your input.")
            return 404, _openai_error(message, param="input", code=None)
        if unseal(blob) is None:
            return 400, _openai_error(
                f"The encrypted content for item {item_id} could not be verified. Reason: "
                "Encrypted content could not be decrypted or parsed.",
                param=None, code="invalid_encrypted_content")
    return None


@dataclass
class Answer:
    """What one response is: its ids and settings, and the reply rendered into it."""

    id: str  # resp_…
    model: str
    created_at: int
    body: dict[str, Any]  # the request
    reply: Reply
    usage: tuple[int, int]  # (input, output) tokens; output includes reasoning
    reasoning_tokens: int
    reasoning_id: str = ""
    message_id: str = ""
    _next: int = field(default=0, repr=False)

    def seq(self) -> int:
        """The next event's sequence number."""
        n = self._next
        self._next += 1
        return n

    @property
    def wants_summary(self) -> bool:
        return bool((self.body.get("reasoning") or {}).get("summary"))

    @property
    def include_encrypted(self) -> bool:
        include = self.body.get("include")
        return isinstance(include, list) and INCLUDE_ENCRYPTED in include

    @property
    def obfuscate(self) -> bool:
        return (self.body.get("stream_options") or {}).get("include_obfuscation") is not False

    @property
    def incomplete_reason(self) -> str | None:
        return INCOMPLETE_REASONS.get(self.reply.stop_reason)

    def summary_parts(self) -> list[str]:
        if not self.reply.thinking or self.reply.reasoning_output != "summary":
            return []
        if not self.wants_summary:
            return []
        return self.reply.summary_parts or [self.reply.thinking]

    def reasoning_item(self, *, done: bool) -> dict[str, Any]:
        """The reasoning item as `output_item.added` (done False) or `.done` shows it.

        An added item's encrypted_content is cut short (the SDK warns it "may be incomplete"):
        only the done item's blob verifies when sent back.
        """
        item: dict[str, Any] = {"id": self.reasoning_id, "type": "reasoning"}
        if self.include_encrypted:
            blob = seal({"response": self.id, "item": self.reasoning_id,
                         "reasoning": self.reply.thinking})
            item["encrypted_content"] = blob if done else blob[: len(blob) // 2]
        item["summary"] = [{"type": "summary_text", "text": part}
                           for part in (self.summary_parts() if done else [])]
        if self.reply.reasoning_output == "text":
            item["content"] = ([{"type": "reasoning_text", "text": self.reply.thinking}]
                               if done else [])
        return item

    def message_item(self, *, done: bool) -> dict[str, Any]:
        status = "in_progress" if not done else (
            "incomplete" if self.incomplete_reason else "completed")
        return {"id": self.message_id, "type": "message", "status": status,
                "content": [self.text_part(self.reply.text)] if done else [],
                "role": "assistant"}

    @staticmethod
    def text_part(text: str) -> dict[str, Any]:
        return {"type": "output_text", "annotations": [], "logprobs": [], "text": text}

    def output(self) -> list[dict[str, Any]]:
        items = [self.reasoning_item(done=True)] if self.reply.thinking else []
        return [*items, self.message_item(done=True)]

    def response(self, status: str, *, final: bool = False,
                 error: dict[str, Any] | None = None) -> dict[str, Any]:
        """The response object; `final` adds the output, usage and end state."""
        body = self.body
        reasoning = body.get("reasoning") or {}
        incomplete = self.incomplete_reason if status == "incomplete" else None
        response: dict[str, Any] = {
            "id": self.id, "object": "response", "created_at": self.created_at,
            "status": status, "background": False, "error": error,
            "incomplete_details": {"reason": incomplete} if incomplete else None,
            "instructions": body.get("instructions"),
            "max_output_tokens": body.get("max_output_tokens"), "max_tool_calls": None,
            "model": self.model, "output": self.output() if final and not error else [],
            "parallel_tool_calls": True, "previous_response_id": None, "prompt_cache_key": None,
            "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
            "safety_identifier": None, "service_tier": "default",
            "store": body.get("store", True),
            "temperature": body.get("temperature", 1.0),
            "text": {"format": {"type": "text"}, "verbosity": "medium"},
            "tool_choice": "auto", "tools": [], "top_logprobs": 0,
            "top_p": body.get("top_p", 1.0), "truncation": "disabled",
            "usage": self.usage_object() if final and not error else None,
            "user": None, "metadata": {},
        }
        if final and status == "completed":
            response["completed_at"] = self.created_at
        return response

    def usage_object(self) -> dict[str, Any]:
        prompt, completion = self.usage
        return {"input_tokens": prompt,
                "input_tokens_details": {"cache_write_tokens": 0, "cached_tokens": 0},
                "output_tokens": completion,
                "output_tokens_details": {"reasoning_tokens": self.reasoning_tokens},
                "total_tokens": prompt + completion}

    def event(self, kind: str, *, sequence: int | None = None, **fields: Any) -> bytes:
        """One event; `sequence` overrides the next sequence number."""
        number = self.seq() if sequence is None else sequence
        return _event(kind, _dumps({"type": kind, "sequence_number": number, **fields}))


_PAD = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"


def _obfuscation(piece: str) -> bytes:
    """OpenAI pads each delta with random characters so sizes do not leak the text; this pad is
    deterministic, and as long as the piece is short of 16 characters."""
    return _PAD[len(piece) % 7: len(piece) % 7 + max(1, 16 - len(piece))].encode()


def _deltas(answer: Answer, kind: str, ids: bytes, pieces: list[str],
            extra: bytes = b"") -> Iterator[bytes]:
    """One delta event per piece, as byte templates (one string escape per piece)."""
    head = (b"event: " + kind.encode() + b'\ndata: {"type":"' + kind.encode()
            + b'","sequence_number":')
    obfuscate = answer.obfuscate
    for piece in pieces:
        tail = extra
        if obfuscate:
            tail += b',"obfuscation":"' + _obfuscation(piece) + b'"'
        yield (head + str(answer.seq()).encode() + b"," + ids + b',"delta":'
               + _quote(piece).encode() + tail + b"}\n\n")


def stream(answer: Answer) -> Iterator[bytes]:
    """The events of one streamed response."""
    reply = answer.reply
    yield answer.event("response.created", response=answer.response("in_progress"))
    yield answer.event("response.in_progress", response=answer.response("in_progress"))
    index = 0
    if reply.thinking:
        yield from _reasoning_events(answer, index)
        index += 1
    where: dict[str, Any] = {"item_id": answer.message_id, "output_index": index,
                             "content_index": 0}
    yield answer.event("response.output_item.added", output_index=index,
                       item=answer.message_item(done=False))
    yield answer.event("response.content_part.added", **where, part=answer.text_part(""))
    ids = _dumps(where)[1:-1]
    yield from _deltas(answer, "response.output_text.delta", ids, reply.text_chunks(),
                       b',"logprobs":[]')
    yield answer.event("response.output_text.done", **where, text=reply.text, logprobs=[])
    yield answer.event("response.content_part.done", **where, part=answer.text_part(reply.text))
    yield answer.event("response.output_item.done", output_index=index,
                       item=answer.message_item(done=True))
    status = "incomplete" if answer.incomplete_reason else "completed"
    yield answer.event(f"response.{status}", response=answer.response(status, final=True))


def _reasoning_events(answer: Answer, index: int) -> Iterator[bytes]:
    reply = answer.reply
    item: dict[str, Any] = {"item_id": answer.reasoning_id, "output_index": index}
    yield answer.event("response.output_item.added", output_index=index,
                       item=answer.reasoning_item(done=False))
    for n, part in enumerate(answer.summary_parts()):
        where = {**item, "summary_index": n}
        yield answer.event("response.reasoning_summary_part.added", **where,
                           part={"type": "summary_text", "text": ""})
        yield from _deltas(answer, "response.reasoning_summary_text.delta", _dumps(where)[1:-1],
                           split_tokens(part))
        yield answer.event("response.reasoning_summary_text.done", **where, text=part)
        yield answer.event("response.reasoning_summary_part.done", **where,
                           part={"type": "summary_text", "text": part})
    if reply.reasoning_output == "text":
        where = {**item, "content_index": 0}
        yield answer.event("response.content_part.added", **where,
                           part={"type": "reasoning_text", "text": ""})
        yield from _deltas(answer, "response.reasoning_text.delta", _dumps(where)[1:-1],
                           reply.thinking_chunks())
        yield answer.event("response.reasoning_text.done", **where, text=reply.thinking)
        yield answer.event("response.content_part.done", **where,
                           part={"type": "reasoning_text", "text": reply.thinking})
    yield answer.event("response.output_item.done", output_index=index,
                       item=answer.reasoning_item(done=True))


def body(answer: Answer) -> bytes:
    """The non-streamed response."""
    status = "incomplete" if answer.incomplete_reason else "completed"
    return _dumps(answer.response(status, final=True))


def error_event(
    answer: Answer, error: dict[str, Any], shape: ResponsesErrorShape, sequence: int
) -> bytes:
    """An in-stream failure, from an OpenAI error body ({"error": {...}}), as event `sequence`.

    - `error`: as the live API sends it, the fields nested under `error`; the SDK raises
      `APIError` for it.
    - `error_documented`: flat, as the API reference documents it (and some servers send it);
      the SDK yields it as a `ResponseErrorEvent` and raises nothing.
    - `response.failed`: the response, failed, with the error in it; the SDK yields it.
    - `llamacpp`: the error body as a bare `data:` line, as llama.cpp's server sends it; the SDK
      raises `APIError`.
    """
    inner = error["error"]
    if shape == "llamacpp":
        return b"data: " + _dumps(error) + b"\n\n"
    if shape == "error":
        return answer.event("error", sequence=sequence, error=inner)
    if shape == "error_documented":
        return answer.event("error", sequence=sequence, code=inner.get("code"),
                            message=inner["message"], param=inner.get("param"))
    failed = {"code": inner.get("code") or "server_error", "message": inner["message"]}
    return answer.event("response.failed", sequence=sequence,
                        response=answer.response("failed", final=True, error=failed))


# The text an endless reply repeats, one piece per event.
ENDLESS_PIECE = "on and on " * 10


def endless(answer: Answer) -> Iterator[bytes]:
    """A response that never finishes: its opening events, then ENDLESS_PIECE forever."""
    where: dict[str, Any] = {"item_id": answer.message_id, "output_index": 0, "content_index": 0}
    yield answer.event("response.created", response=answer.response("in_progress"))
    yield answer.event("response.in_progress", response=answer.response("in_progress"))
    yield answer.event("response.output_item.added", output_index=0,
                       item=answer.message_item(done=False))
    yield answer.event("response.content_part.added", **where, part=answer.text_part(""))
    ids = _dumps(where)[1:-1]
    while True:
        yield from _deltas(answer, "response.output_text.delta", ids, [ENDLESS_PIECE],
                           b',"logprobs":[]')


def is_final(event: bytes) -> bool:
    """Whether `event` is the one that ends a stream (and carries the usage)."""
    return event.startswith((b"event: response.completed\n", b"event: response.incomplete\n"))


# Hostile and broken events, each in the shape of a text delta.
_DELTA = (b'event: response.output_text.delta\ndata: {"type":"response.output_text.delta",'
          b'"sequence_number":')
MALFORMED = _DELTA + b'9,"item_id":"msg_x","output_index":0,"content_index":0,"delta":"tru\n\n'
_NESTED = b"[" * NESTING_DEPTH + b"]" * NESTING_DEPTH
_BAD: dict[PayloadKind, bytes] = {
    "invalid_utf8": _DELTA + b'9,"item_id":"msg_x","output_index":0,"content_index":0,'
                    b'"delta":"caf\xc3 \xff\xfe","logprobs":[]}\n\n',
    "huge_int": _DELTA + b"1" + b"0" * (HUGE_INT_DIGITS - 1) + b',"item_id":"msg_x",'
                b'"output_index":0,"content_index":0,"delta":"big","logprobs":[]}\n\n',
    "deep_nesting": _DELTA + b'9,"item_id":"msg_x","output_index":0,"content_index":0,'
                    b'"delta":"deep","logprobs":[],"nest":' + _NESTED + b"}\n\n",
    "not_an_object": b'event: response.output_text.delta\ndata: ["response.output_text.delta",'
                     b'"listed"]\n\n',
    "mistyped_text": _DELTA + b'9,"item_id":"msg_x","output_index":0,"content_index":0,'
                     b'"delta":42,"logprobs":[]}\n\n',
}


def bad_event(payload: PayloadKind) -> bytes:
    return _BAD[payload]
