"""Answering one request: routing, replies in each protocol's wire format, and faults."""

from __future__ import annotations

import itertools
import json
import os
import socket
import struct
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import TYPE_CHECKING, Any

from . import responses, responses_llamacpp, sse
from .echo import send_key_in_invalid_utf8
from .faults import (
    ABSURD_USAGE,
    STREAM_ERROR_STATUS,
    Fault,
    context_error_body,
    error_body,
    http_date,
)
from .replies import (
    Reply,
    estimate_input_tokens,
    models_payload,
    ollama_models_payload,
    ollama_show_payload,
    props_payload,
    vllm_models_payload,
)

if TYPE_CHECKING:
    from .server import FakeServer, _HTTPServer

GENERATION_PATHS = {"/v1/chat/completions": "openai", "/v1/messages": "anthropic",
                    "/v1/responses": "responses"}


@dataclass
class RecordedRequest:
    """A request as the server received it, and the fault (if any) it was given."""

    method: str
    path: str
    headers: dict[str, str]  # names in lower case
    body: bytes
    json: Any  # the parsed body, or None
    protocol: str  # "openai", "anthropic", "responses", "llamacpp" or "unknown"
    fault: Fault | None = None
    # The id of the response that answered a Responses API request, so that reasoning items
    # sent back later can be traced to it (see FakeServer.reasoning_origins).
    response_id: str | None = None
    # The client's port: requests with the same one came over the same (reused) connection.
    port: int = 0

    @property
    def stream(self) -> bool:
        return isinstance(self.json, dict) and bool(self.json.get("stream"))


def _protocol(route: str, headers: dict[str, str]) -> str:
    if route in GENERATION_PATHS:
        return GENERATION_PATHS[route]
    if route == "/props":
        return "llamacpp"
    if route.startswith("/v1/"):
        return "anthropic" if "anthropic-version" in headers else "openai"
    return "unknown"


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "fakeserver"
    disable_nagle_algorithm = True  # each event is a small write: send it now, not batched
    server: _HTTPServer
    busy = False
    api = "unknown"  # protocol of the request being answered
    request_id = ""
    answer: responses.Answer | None = None  # the Responses API answer being sent

    def log_message(self, format: str, *args: Any) -> None:
        pass  # keep test output clean

    def handle(self) -> None:
        fake = self.server.fake
        if not fake._track(self):
            return
        try:
            super().handle()
        finally:
            fake._untrack(self)

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _dispatch(self) -> None:
        fake = self.server.fake
        self.busy = True
        try:
            self._respond(fake)
        except OSError:
            self.close_connection = True  # the client hung up mid-response
        finally:
            self.busy = False
        fake._arm_refusal()  # a refusal drawn for the next request strikes before it connects
        if fake.refusing:
            self.close_connection = True

    def _respond(self, fake: FakeServer) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        headers = {k.lower(): v for k, v in self.headers.items()}
        route = self.path.split("?", 1)[0]
        try:
            parsed = json.loads(body) if body else None
        except ValueError:
            parsed = None
        self.api = _protocol(route, headers)
        self.answer = None
        self.request_id = f"req_fake{fake._next_id():06d}"
        record = RecordedRequest(self.command, self.path, headers, body, parsed, self.api,
                                 port=self.client_address[1])
        fake._record(record)

        hostile = fake.every_request
        if hostile is not None:
            record.fault = hostile
            self._hostile_answer(hostile)
        elif not self._authorized(fake.require_key, record):
            self._send_json(401, error_body(self.api, 401))
        elif route in fake.answers and route not in GENERATION_PATHS:
            self._send_answer(fake.answers[route])
        elif self.command == "POST" and route in GENERATION_PATHS:
            if isinstance(parsed, dict):
                self._generate(fake, record, parsed)
            else:
                self._send_json(400, error_body(self.api, 400, "Body must be a JSON object."))
        elif self.command == "GET" and route == "/v1/models" and fake.flavor != "plain":
            self._send_json(200, {"llamacpp": lambda: models_payload(fake.n_ctx),
                                  "vllm": lambda: vllm_models_payload(fake.n_ctx),
                                  "ollama": ollama_models_payload}[fake.flavor]())
        elif self.command == "GET" and route == "/props" and fake.flavor == "llamacpp":
            self._send_json(200, props_payload(fake.n_ctx))
        elif self.command == "POST" and route == "/api/show" and fake.flavor == "ollama":
            self._send_json(200, ollama_show_payload(fake.ollama_num_ctx))
        else:
            self._send_json(404, error_body(self.api, 404, f"Not found: {route}"))

    def _authorized(self, key: str | None, record: RecordedRequest) -> bool:
        if key is None:
            return True
        # Both SDKs send "Authorization: Bearer"; Anthropic's API proper also takes x-api-key.
        if record.headers.get("authorization") == f"Bearer {key}":
            return True
        return record.protocol == "anthropic" and record.headers.get("x-api-key") == key

    def _generate(self, fake: FakeServer, record: RecordedRequest, body: dict[str, Any]) -> None:
        if fake.echo_key_invalid_utf8:
            send_key_in_invalid_utf8(self, record)
            return
        fault = record.fault = fake.faults.take()
        if fault is not None and not fault.mid_stream:
            self._fail_request(fake, fault, body)
            return
        if self.api == "responses":  # what the API refuses never reaches the model
            rejected = (responses_llamacpp.check_inputs(body)
                        if fake.responses_dialect == "llamacpp"
                        else responses.check_reasoning_inputs(body))
            if rejected is not None:
                self._send_json(*rejected)
                return
        reply = fake.responder(record)
        model = reply.model or str(body.get("model") or "unknown")
        n = fake._next_id()
        stream = bool(body.get("stream"))
        absurd = fault is not None and fault.kind == "bad_payload" \
            and fault.payload == "absurd_usage"
        endless = stream and fault is not None and fault.kind == "endless"
        if self.api == "responses":
            # A reasoning model reasons whether or not a summary is asked for.
            usage = (ABSURD_USAGE, ABSURD_USAGE) if absurd else (
                reply.usage or _usage(body, reply, bool(reply.thinking)))
            answer = self.answer = responses.Answer(
                id=f"resp_fake{n:06d}", model=model, created_at=int(time.time()), body=body,
                reply=reply, usage=usage,
                reasoning_tokens=(ABSURD_USAGE if absurd else reply.reasoning_tokens
                                  if reply.reasoning_tokens is not None
                                  else len(reply.thinking_chunks())),
                reasoning_id=f"rs_fake{n:06d}", message_id=f"msg_fake{n:06d}")
            record.response_id = answer.id
            dialect = responses_llamacpp if fake.responses_dialect == "llamacpp" else responses
            if endless:
                self._stream(responses.endless(answer), None)
            elif stream:
                self._stream(dialect.stream(answer), fault)
            else:
                self._send_body(dialect.body(answer), fault)
            return
        if self.api == "anthropic":
            # "adaptive" leaves thinking to the model; this one thinks whenever the reply has any.
            thinking = (body.get("thinking") or {}).get("type") in ("enabled", "adaptive")
            thinking = thinking and bool(reply.thinking)
            usage = (ABSURD_USAGE, ABSURD_USAGE) if absurd else (
                reply.usage or _usage(body, reply, thinking))
            msg = {"id": f"msg_fake{n:06d}", "model": model, "thinking": thinking, "usage": usage}
            if endless:
                self._stream(sse.anthropic_endless(id=msg["id"], model=model), None)
            elif stream:
                self._stream(sse.anthropic_stream(reply, **msg), fault)
            else:
                self._send_body(sse.anthropic_message(reply, **msg), fault)
            return

        thinking = reply.thinking_style != "none" and bool(reply.thinking)
        usage = (ABSURD_USAGE, ABSURD_USAGE) if absurd else (
            reply.usage or _usage(body, reply, thinking))
        chat = {"id": f"chatcmpl-fake{n:06d}", "created": int(time.time()), "model": model}
        if endless:
            self._stream(sse.openai_endless(**chat), None)
        elif not stream:
            self._send_body(sse.openai_completion(reply, **chat, usage=usage), fault)
        else:
            include = reply.include_usage
            if include is None:
                include = bool((body.get("stream_options") or {}).get("include_usage"))
            self._stream(sse.openai_stream(reply, **chat, usage=usage if include else None),
                         fault)

    def _hostile_answer(self, fault: Fault) -> None:
        """`FakeServer.every_request`: the same hostile answer to every request, probes too."""
        if fault.kind == "redirect":
            self._redirect(fault)
        elif fault.kind == "silent":
            self._go_silent(None)
        else:  # drip: a response that never completes, from its status line on
            self._drip(itertools.chain([b"HTTP/1.1 200 OK\r\nx-drip: "],
                                       itertools.repeat(b".")), fault.seconds, raw=True)

    def _fail_request(self, fake: FakeServer, fault: Fault, body: dict[str, Any]) -> None:
        """Apply a fault that replaces the whole response."""
        if fault.kind == "reset":
            self._abort()
        elif fault.kind == "redirect":
            self._redirect(fault)
        elif fault.kind == "silent":
            self._go_silent(None)
        elif fault.kind == "empty_stream":
            self._stream(iter(()), None)
        elif fault.kind == "context_too_long":
            n_prompt = max(estimate_input_tokens(body), fake.n_ctx + 1)
            self._send_json(
                400, context_error_body(self.api, fault.context_variant, n_prompt, fake.n_ctx)
            )
        else:
            extra = []
            if fault.retry_after is not None:
                extra.append(("Retry-After", fault.retry_after))
            if fault.retry_at is not None:
                extra.append(("Retry-After", http_date(fault.retry_at)))
            if fault.retry_after_ms is not None:
                extra.append(("retry-after-ms", fault.retry_after_ms))
            payload = fault.body if fault.body is not None else error_body(self.api, fault.code)
            self._send_json(fault.code, payload, extra)

    # Responses

    def _start(self, status: int, content_type: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        rid = "request-id" if self.api == "anthropic" else "x-request-id"
        self.send_header(rid, self.request_id)

    def _send_json(
        self, status: int, payload: dict[str, Any] | str, extra: Iterable[tuple[str, str]] = ()
    ) -> None:
        if isinstance(payload, str):
            data, content_type = payload.encode(), "text/plain; charset=utf-8"
        else:
            data, content_type = json.dumps(payload).encode(), "application/json"
        self._start(status, content_type)
        for name, value in extra:
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _send_answer(self, answer: Any) -> None:
        """A fixed answer: JSON, or a string sent as raw JSON text (which need not parse)."""
        data = answer.encode() if isinstance(answer, str) else json.dumps(answer).encode()
        self._start(200, "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def _abort(self) -> None:
        """Close with SO_LINGER 0, so the peer gets a TCP RST rather than a FIN."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        # Close the descriptor now: the socket's file objects would otherwise keep it open, and
        # closing them instead would break the flush BaseHTTPRequestHandler does afterwards.
        os.close(self.connection.detach())
        self.close_connection = True

    def _go_silent(self, seconds: float | None) -> None:
        """Say nothing for `seconds` (None: until the server stops), then hang up."""
        self.server.fake._stopped.wait(seconds)
        self.close_connection = True

    def _redirect(self, fault: Fault) -> None:
        self._send_json(fault.code, {"error": {"message": f"moved to {fault.location}"}},
                        [("Location", fault.location)])

    def _drip(self, pieces: Iterable[bytes], seconds: float, *, raw: bool = False) -> None:
        """Send `pieces` one byte every `seconds`, each byte its own chunk (or, `raw`, straight
        onto the connection), until they run out or the server stops."""
        stopped = self.server.fake._stopped
        for piece in pieces:
            for i in range(len(piece)):
                one = piece[i:i + 1]
                self.wfile.write(one if raw else b"1\r\n" + one + b"\r\n")
                if stopped.wait(seconds):
                    self.close_connection = True
                    return
        if not raw:
            self.wfile.write(b"0\r\n\r\n")

    def _send_body(self, data: bytes, fault: Fault | None) -> None:
        """A non-streamed reply; a mid-stream fault strikes halfway through the body (a drip
        sends it one byte at a time from there, an endless body never ends; the other hostile
        kinds leave it whole)."""
        if fault is not None and fault.kind in ("linger", "bad_payload"):
            fault = None
        if fault is not None and fault.kind == "endless":
            self._start(200, "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            padding = b" " * 65536  # JSON allows any amount of whitespace: this never ends
            if self._write_events(itertools.chain([data[:-1]], itertools.repeat(padding))):
                self.wfile.write(b"0\r\n\r\n")
            return
        if fault is not None and fault.kind == "drip":
            self._start(200, "application/json")
            self.send_header("Transfer-Encoding", "chunked")
            self.end_headers()
            self._drip([data], fault.seconds)
            return
        if fault is not None and fault.kind == "stream_error":
            status = STREAM_ERROR_STATUS[fault.stream_error_kind]
            self._send_json(status, error_body(self.api, status))
            return
        if fault is not None and fault.kind == "malformed_sse":
            data = data[: len(data) // 2]  # truncated JSON, honestly framed
        self._start(200, "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        if fault is None or fault.kind == "malformed_sse":
            self.wfile.write(data)
            return
        self.wfile.write(data[: len(data) // 2])
        if fault.kind == "stall":
            self._go_silent(fault.seconds)
        self.close_connection = True

    def _stream(self, events: Iterator[bytes], fault: Fault | None) -> None:
        anthropic = self.api == "anthropic"
        charset = self.api in ("anthropic", "responses")
        self._start(200, "text/event-stream; charset=utf-8" if charset else "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Transfer-Encoding", "chunked")
        self.end_headers()
        if fault is None:
            if self._write_events(events):
                self.wfile.write(b"0\r\n\r\n")
            return

        planned = list(events)
        if fault.kind == "linger":
            if self.api == "responses":  # the last event is both the end and the usage
                kept = [e for e in planned if fault.usage or not responses.is_final(e)]
            else:
                end = sse.terminator(self.api)
                kept = [e for e in planned
                        if e != end and (fault.usage or not sse.is_openai_usage(e))]
            if self._write_events(kept):
                self._go_silent(None)
            return
        if fault.kind == "bad_payload" and fault.payload == "absurd_usage":
            if self._write_events(planned):  # the counts are in the events already
                self.wfile.write(b"0\r\n\r\n")
            return
        strike = _strike_index(planned, fault.after_chunks)
        if not self._write_events(planned[:strike]):
            return
        if fault.kind == "drip":
            self._drip(planned[strike:], fault.seconds)
        elif fault.kind == "bad_payload":
            bad = (responses.bad_event(fault.payload) if self.api == "responses"
                   else sse.bad_event(self.api, fault.payload))
            if self._write_events([bad, *planned[strike:]]):
                self.wfile.write(b"0\r\n\r\n")
        elif fault.kind == "cut_midway":
            self.close_connection = True  # FIN without the terminating zero-length chunk
        elif fault.kind == "stall":
            self._go_silent(fault.seconds)
        elif fault.kind == "malformed_sse":
            bad = {"anthropic": sse.ANTHROPIC_MALFORMED,
                   "responses": responses.MALFORMED}.get(self.api, sse.OPENAI_MALFORMED)
            if self._write_events([bad, *planned[strike:]]):
                self.wfile.write(b"0\r\n\r\n")
        else:
            status = STREAM_ERROR_STATUS[fault.stream_error_kind]
            payload = fault.body if isinstance(fault.body, dict) else error_body(self.api, status)
            if self.api == "responses" and self.answer is not None:
                # Events so far were numbered 0 to strike - 1 (a Responses stream has no
                # heartbeats), so the error is number `strike`.
                event = responses.error_event(self.answer, payload, fault.responses_error,
                                              strike)
            else:
                encode = sse.anthropic_error_event if anthropic else sse.openai_error_event
                event = encode(payload)
            if self._write_events([event]):
                self.wfile.write(b"0\r\n\r\n")

    def _write_events(self, events: Iterable[bytes]) -> bool:
        """Send each event as its own chunk; False if the server stopped meanwhile."""
        write = self.wfile.write  # unbuffered: every write goes straight to the socket
        delay = self.server.fake.chunk_delay
        stopped = self.server.fake._stopped
        for event in events:
            write(b"%x\r\n%b\r\n" % (len(event), event))
            if delay and stopped.wait(delay):
                self.close_connection = True
                return False
        return True


def _usage(body: dict[str, Any], reply: Reply, thinking: bool) -> tuple[int, int]:
    output = len(reply.text_chunks()) + (len(reply.thinking_chunks()) if thinking else 0)
    return estimate_input_tokens(body), output


def _strike_index(events: list[bytes], after_chunks: int) -> int:
    """Index of the event a fault replaces: after `after_chunks` data events, or the last one."""
    seen = 0
    for i, event in enumerate(events):
        if event in sse.HEARTBEATS:
            continue
        if seen == after_chunks:
            return i
        seen += 1
    return len(events) - 1
