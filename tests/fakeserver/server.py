"""A loopback HTTP/1.1 server speaking OpenAI Chat Completions and Responses and Anthropic
Messages, with faults.

Each connection gets a thread; streamed replies go out as one chunked-encoding chunk per SSE
event, written straight to the socket (see `handler`). One more thread runs the accept loop and,
for a refusal, closes the listening socket and later binds a new one to the same port.
"""

from __future__ import annotations

import contextlib
import itertools
import socket
import socketserver
import sys
import threading
from collections.abc import Sequence
from http.server import ThreadingHTTPServer
from typing import Any, Literal

from .faults import (
    Fault,
    FaultQueue,
)
from .handler import Handler, RecordedRequest
from .replies import (
    DefaultResponder,
    Responder,
)
from .responses import reasoning_inputs, unseal


def _shutdown(sock: socket.socket) -> None:
    with contextlib.suppress(OSError):  # already gone
        sock.shutdown(socket.SHUT_RDWR)


class _HTTPServer(ThreadingHTTPServer):
    # Handler threads are daemons, so a server never stopped cannot hang interpreter exit. The
    # mixin joins only non-daemon threads, so this class keeps its own list for stop() to join.
    daemon_threads = True
    block_on_close = False

    def __init__(self, fake: FakeServer, address: tuple[str, int]) -> None:
        self.fake = fake
        self.handler_threads: list[threading.Thread] = []  # touched only by the accept loop
        super().__init__(address, Handler)

    def process_request(self, request: Any, client_address: Any) -> None:
        thread = threading.Thread(
            target=self.process_request_thread, args=(request, client_address),
            name="fakeserver-connection", daemon=True,
        )
        self.handler_threads = [t for t in self.handler_threads if t.is_alive()]
        self.handler_threads.append(thread)
        thread.start()

    def server_bind(self) -> None:
        # Skip HTTPServer's reverse DNS lookup of the host name: nothing uses it.
        socketserver.TCPServer.server_bind(self)

    def reopen(self) -> None:
        """Listen again on the same address after the listening socket was closed."""
        self.socket = socket.socket(self.address_family, self.socket_type)
        self.server_bind()
        self.server_activate()

    def handle_error(self, request: Any, client_address: Any) -> None:
        if isinstance(sys.exc_info()[1], OSError):
            return  # a client that went away is not an error worth a traceback
        super().handle_error(request, client_address)


class FakeServer:
    """Serves on 127.0.0.1 from a background thread; use as a context manager or start()/stop().

    Set or read while it runs: `responder` (request -> Reply), `faults` (push Fault specs; see
    also `fault_rate`), `chunk_delay` (seconds between streamed events), `n_ctx` (reported by
    /v1/models and /props, and used in context errors), `require_key` (None accepts any key),
    `every_request` (a redirect, silent or drip Fault given to every request, the context probes
    included, instead of an answer; None answers normally), `answers` (route -> a fixed 200
    answer, JSON or raw JSON text, for any request to that path, generation requests aside);
    `echo_key_invalid_utf8` (a hostile mode, see `echo`).
    It records `requests` (every request, with the fault it got) and `refusals`. Requests with a
    wrong key are answered 401 and consume no fault; only generation requests consume faults.
    `responses_dialect` picks OpenAI's Responses API or llama.cpp's dialect of it;
    `reasoning_origins` traces reasoning items sent back on the Responses API.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self.requests: list[RecordedRequest] = []
        self.refusals: list[Fault] = []  # refusal faults applied, in order
        self.faults = FaultQueue()
        self.faults.on_push = self._arm_refusal
        self.responder: Responder = DefaultResponder()
        self.chunk_delay = 0.0
        self.n_ctx = 4096
        # Which server family's context endpoints to imitate: "llamacpp" (/props and
        # /v1/models meta), "vllm" (max_model_len), "ollama" (/api/show; n_ctx None = no
        # num_ctx parameter, so Ollama's default applies), or "plain" (none at all).
        self.flavor: Literal["llamacpp", "vllm", "ollama", "plain"] = "llamacpp"
        self.ollama_num_ctx: int | None = None
        # Which Responses API to speak on /v1/responses: OpenAI's, or llama.cpp's reduced
        # dialect (see `responses_llamacpp`).
        self.responses_dialect: Literal["openai", "llamacpp"] = "openai"
        self.require_key: str | None = None
        # A hostile mode (see `echo`): answer every generation request with its own key inside
        # bytes that are not UTF-8.
        self.echo_key_invalid_utf8 = False
        self.every_request: Fault | None = None
        self.answers: dict[str, Any] = {}
        self._address = (host, port)
        self._httpd: _HTTPServer | None = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        self._lock = threading.Lock()
        self._handlers: set[Handler] = set()
        self._refusal: Fault | None = None
        self._listener_closed = threading.Event()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("FakeServer is not running")
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> FakeServer:
        if self._httpd is not None or self._stopped.is_set():
            raise RuntimeError("a FakeServer starts once")
        self._httpd = _HTTPServer(self, self._address)
        self._thread = threading.Thread(target=self._serve, name="fakeserver", daemon=True)
        self._thread.start()
        self._arm_refusal()  # a refusal queued before start
        return self

    def stop(self) -> None:
        """Stop serving, drop open connections and join every thread the server started."""
        if self._httpd is None or self._thread is None or self._stopped.is_set():
            return
        self._stopped.set()  # also wakes stalls, chunk delays and refusal windows
        self._httpd.shutdown()
        self._thread.join()
        with self._lock:
            handlers = list(self._handlers)
        for handler in handlers:
            _shutdown(handler.connection)
        self._httpd.server_close()
        for thread in self._httpd.handler_threads:
            thread.join()

    def __enter__(self) -> FakeServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def fault_rate(
        self, rate: float, seed: int | None = None, kinds: Sequence[Fault] | None = None
    ) -> None:
        """Fault about `rate` of generation requests at random, drawn from `kinds`.

        Defaults to a mix of every transient kind. Queued faults come first.
        """
        self.faults.set_rate(rate, seed, kinds)
        self._arm_refusal()

    def reset(self) -> None:
        """Forget recorded requests, queued faults and the fault rate."""
        self.faults.clear()
        with self._lock:
            self.requests.clear()
            self.refusals.clear()

    def reasoning_origins(self, request: RecordedRequest) -> list[RecordedRequest | None]:
        """For each reasoning item in a Responses API request's input, in order, the earlier
        request whose response issued it; None for an item whose encrypted_content this server
        did not issue (or that has none)."""
        body = request.json if isinstance(request.json, dict) else {}
        with self._lock:
            answered = {r.response_id: r for r in self.requests if r.response_id}
        origins: list[RecordedRequest | None] = []
        for item in reasoning_inputs(body):
            sealed = unseal(item.get("encrypted_content"))
            origin = answered.get(sealed["response"]) if sealed else None
            same_item = sealed is not None and sealed.get("item") == item.get("id")
            origins.append(origin if same_item else None)
        return origins

    def _next_id(self) -> int:
        return next(self._ids)

    def _record(self, request: RecordedRequest) -> None:
        with self._lock:
            self.requests.append(request)

    def _track(self, handler: Handler) -> bool:
        with self._lock:
            if self._stopped.is_set():
                return False
            self._handlers.add(handler)
            return True

    def _untrack(self, handler: Handler) -> None:
        with self._lock:
            self._handlers.discard(handler)

    @property
    def refusing(self) -> bool:
        return self._refusal is not None

    def _serve(self) -> None:
        httpd = self._httpd
        assert httpd is not None
        while True:
            httpd.serve_forever(poll_interval=0.01)
            if self._stopped.is_set():
                return
            # serve_forever returned for a refusal: close the port for its window (and for any
            # refusal queued right behind it), then listen again on the same port.
            httpd.socket.close()
            self._listener_closed.set()
            while (fault := self._refusal) is not None:
                with self._lock:
                    self.refusals.append(fault)
                if self._stopped.wait(fault.seconds):
                    return
                with self._lock:
                    self._refusal = self.faults.take_refusal()
            httpd.reopen()

    def _arm_refusal(self) -> None:
        """If the next fault is a refusal, close the port now, before the next connection."""
        with self._lock:
            if self._httpd is None or self._refusal is not None or self._stopped.is_set():
                return
            self._refusal = self.faults.take_refusal()
            if self._refusal is None:
                return
            self._listener_closed.clear()
        self._httpd.shutdown()
        while not self._listener_closed.wait(0.05):
            if self._stopped.is_set():
                return
        # Pooled keep-alive connections would let a client skip connecting; close the idle ones
        # (busy ones close after their response).
        with self._lock:
            idle = [h.connection for h in self._handlers if not h.busy]
        for sock in idle:
            _shutdown(sock)




class Backlogged:
    """A loopback port that listens but never accepts, its backlog already full: a connection
    attempt hangs (the kernel drops its SYN and the client keeps retrying) rather than being
    refused or answered. Use as a context manager; `base_url` points at it."""

    def __init__(self) -> None:
        self._listener = socket.socket()
        self._listener.bind(("127.0.0.1", 0))
        self._listener.listen(0)  # room for one connection, which `_filler` takes
        self._filler = socket.create_connection(self._listener.getsockname()[:2])

    @property
    def base_url(self) -> str:
        host, port = self._listener.getsockname()[:2]
        return f"http://{host}:{port}"

    def close(self) -> None:
        self._filler.close()
        self._listener.close()

    def __enter__(self) -> Backlogged:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()
