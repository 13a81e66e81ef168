"""Asking an OpenAI-compatible local server how large its context really is.

Each server family says it in its own place: llama.cpp's `/props` (the context it was started
with), vLLM's `/v1/models` (`max_model_len`), llama.cpp's `/v1/models` (`meta.n_ctx`), Ollama's
`/api/show` (the model's `num_ctx` parameter; without one Ollama uses 4096 tokens and silently cuts
longer prompts, whatever the model was trained for). Anything unexpected means "unknown".

The probes are a courtesy, never a reason to wait: all of them together get `seconds` (a server
that accepts and then answers a byte at a time cannot hold the run), follow no redirect, and read
at most MAX_BODY bytes of an answer. A server that cannot be reached, or does not answer in time,
raises `ProbeFailed`, whose message says why.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from typing import Any

import anyio
import httpx2

from intermodel.providers.base import ProbeFailed

__all__ = ["MAX_BODY", "OLLAMA_DEFAULT_NUM_CTX", "PROBE_SECONDS", "ProbeFailed", "server_context"]

OLLAMA_DEFAULT_NUM_CTX = 4096
PROBE_SECONDS = 5.0  # all the probes of one server together, at most
MAX_BODY = 1 << 20  # the answers are a few kilobytes; more than this is not one
_LARGEST_CONTEXT = 2**53  # a context size beyond this is not a context size
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d{1,18})\b", re.MULTILINE)


async def server_context(base_url: str, model: str, *, headers: Mapping[str, str] | None = None,
                         extra_body: Mapping[str, Any] | None = None,
                         seconds: float = PROBE_SECONDS) -> int | None:
    """The context size the server will use for `model`, or None if it does not say."""
    base = base_url.rstrip("/")
    root = base[:-3] if base.endswith("/v1") else base
    extra = extra_body or {}
    with anyio.move_on_after(seconds):
        try:
            async with httpx2.AsyncClient(timeout=seconds, headers=dict(headers or {}),
                                         follow_redirects=False) as client:
                for ask in (_llamacpp_props, _models_list, _ollama_show):
                    found = await ask(client, root, base, model, extra)
                    if found:
                        return found
        except httpx2.TimeoutException:
            pass  # said below, as for the deadline
        except httpx2.HTTPError as exc:
            detail = " ".join(str(exc).split()) or type(exc).__name__
            raise ProbeFailed(f"the probe failed: {detail[:200]}") from None
        else:
            return None
    raise ProbeFailed(f"the server did not answer the probe in {seconds:g} s")


async def _answer(client: httpx2.AsyncClient, method: str, url: str, **kwargs: Any) -> Any:
    """The JSON of a 200 answer, or None for any other answer (another status, a body that is
    too large or not JSON)."""
    async with client.stream(method, url, **kwargs) as response:
        if response.status_code != 200:
            return None
        body = bytearray()
        async for piece in response.aiter_bytes():
            body += piece
            if len(body) > MAX_BODY:
                return None
    try:
        return json.loads(body)
    except (ValueError, RecursionError):  # not JSON, not UTF-8, nested or numbered absurdly
        return None


def _dig(data: Any, *keys: str) -> Any:
    for key in keys:
        if not isinstance(data, dict):
            return None
        data = data.get(key)
    return data


def _size(value: Any) -> int | None:
    ok = type(value) is int and 0 < value <= _LARGEST_CONTEXT
    return value if ok else None


async def _llamacpp_props(client: httpx2.AsyncClient, root: str, base: str, model: str,
                          extra: Mapping[str, Any]) -> int | None:
    data = await _answer(client, "GET", f"{root}/props")
    return _size(_dig(data, "default_generation_settings", "n_ctx"))


async def _models_list(client: httpx2.AsyncClient, root: str, base: str, model: str,
                       extra: Mapping[str, Any]) -> int | None:
    entries = _dig(await _answer(client, "GET", f"{base}/models"), "data")
    if not isinstance(entries, list):
        return None
    chosen = [e for e in entries if isinstance(e, dict) and e.get("id") == model]
    if not chosen and len(entries) == 1:  # single-model servers answer to any name
        chosen = entries
    for entry in chosen:
        for value in (_dig(entry, "max_model_len"), _dig(entry, "meta", "n_ctx")):
            if _size(value):
                return _size(value)
    return None


async def _ollama_show(client: httpx2.AsyncClient, root: str, base: str, model: str,
                       extra: Mapping[str, Any]) -> int | None:
    data = await _answer(client, "POST", f"{root}/api/show", json={"model": model})
    if not isinstance(data, dict):
        return None
    options = extra.get("options") if isinstance(extra.get("options"), dict) else {}
    requested = _size(options.get("num_ctx")) if options else None
    match = _NUM_CTX.search(str(data.get("parameters") or ""))
    num_ctx = requested or (int(match.group(1)) if match else OLLAMA_DEFAULT_NUM_CTX)
    info = data.get("model_info")
    trained = [v for k, v in (info.items() if isinstance(info, dict) else ())
               if str(k).endswith(".context_length") and _size(v)]
    return _size(min([num_ctx, *trained]))
