"""Asking an OpenAI-compatible local server how large its context really is.

Each server family says it in its own place: llama.cpp's `/props` (the context it was started
with), vLLM's `/v1/models` (`max_model_len`), llama.cpp's `/v1/models` (`meta.n_ctx`), Ollama's
`/api/show` (the model's `num_ctx` parameter; without one Ollama uses 4096 tokens and silently cuts
longer prompts, whatever the model was trained for). Anything unexpected means "unknown".
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

import httpx

__all__ = ["OLLAMA_DEFAULT_NUM_CTX", "server_context"]

OLLAMA_DEFAULT_NUM_CTX = 4096
_NUM_CTX = re.compile(r"^\s*num_ctx\s+(\d+)", re.MULTILINE)


async def server_context(base_url: str, model: str, *, headers: Mapping[str, str] | None = None,
                         extra_body: Mapping[str, Any] | None = None,
                         seconds: float = 3.0) -> int | None:
    """The context size the server will use for `model`, or None if it does not say."""
    base = base_url.rstrip("/")
    root = base[:-3] if base.endswith("/v1") else base
    try:
        async with httpx.AsyncClient(timeout=seconds, headers=dict(headers or {})) as client:
            for ask in (_llamacpp_props, _models_list, _ollama_show):
                found = await ask(client, root, base, model, extra_body or {})
                if found:
                    return found
    except (httpx.HTTPError, ValueError, KeyError, TypeError):
        return None
    return None


async def _llamacpp_props(client: httpx.AsyncClient, root: str, base: str, model: str,
                          extra: Mapping[str, Any]) -> int | None:
    response = await client.get(f"{root}/props")
    if response.status_code != 200:
        return None
    value = response.json().get("default_generation_settings", {}).get("n_ctx")
    return value if isinstance(value, int) else None


async def _models_list(client: httpx.AsyncClient, root: str, base: str, model: str,
                       extra: Mapping[str, Any]) -> int | None:
    response = await client.get(f"{base}/models")
    if response.status_code != 200:
        return None
    entries = response.json().get("data") or []
    chosen = [e for e in entries if isinstance(e, dict) and e.get("id") == model]
    if not chosen and len(entries) == 1:  # single-model servers answer to any name
        chosen = entries
    for entry in chosen:
        for value in (entry.get("max_model_len"), (entry.get("meta") or {}).get("n_ctx")):
            if isinstance(value, int):
                return value
    return None


async def _ollama_show(client: httpx.AsyncClient, root: str, base: str, model: str,
                       extra: Mapping[str, Any]) -> int | None:
    response = await client.post(f"{root}/api/show", json={"model": model})
    if response.status_code != 200:
        return None
    data = response.json()
    options = extra.get("options") if isinstance(extra.get("options"), dict) else {}
    requested = options.get("num_ctx") if options else None
    match = _NUM_CTX.search(str(data.get("parameters") or ""))
    num_ctx = requested or (int(match.group(1)) if match else OLLAMA_DEFAULT_NUM_CTX)
    trained = [v for k, v in (data.get("model_info") or {}).items()
               if k.endswith(".context_length") and isinstance(v, int)]
    return min([int(num_ctx), *trained])
