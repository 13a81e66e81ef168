"""What the fake server answers: the `Reply` model, responders, and llama.cpp's static endpoints."""

from __future__ import annotations

import copy
import re
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from itertools import cycle, islice
from typing import TYPE_CHECKING, Any, Literal

if TYPE_CHECKING:
    from .server import RecordedRequest

ThinkingStyle = Literal["reasoning_content", "reasoning", "think_tags", "none"]

# GPT-2 style pre-tokenisation: a word keeps one leading space, punctuation and newlines stand
# alone, so the pieces look like the tokens a real server streams. Every character is matched.
_TOKEN = re.compile(r" ?[^\W\d_]+| ?\d+| ?[^\s\w]+| ?_+|\s+(?!\S)|\s+")


def split_tokens(text: str) -> list[str]:
    """Split text into token-like pieces that join back to exactly `text`."""
    return _TOKEN.findall(text)


@dataclass
class Reply:
    """One model reply; the server renders it in whichever protocol was asked for."""

    text: str
    thinking: str = ""
    # How thinking travels on the OpenAI protocol; Anthropic always uses a `thinking` block.
    thinking_style: ThinkingStyle = "reasoning_content"
    chunks: list[str] | None = None  # explicit pieces of `text`; default: token-like pieces
    model: str | None = None  # reported model id; default: the one requested
    # OpenAI finish_reason; mapped for Anthropic ("stop" -> "end_turn", "length" -> "max_tokens").
    stop_reason: str = "stop"
    usage: tuple[int, int] | None = None  # (input, output) tokens; default: an estimate
    # None honours the request's stream_options.include_usage; False imitates servers ignoring it.
    include_usage: bool | None = None
    # How thinking travels on the Responses API: as reasoning summaries (OpenAI's models; sent
    # only when the request asks for a summary, though the model reasons either way), or as the
    # full reasoning text (llama.cpp's server, vLLM).
    reasoning_output: Literal["summary", "text"] = "summary"
    # The summary's parts, which join with a blank line to `thinking`; default: one part.
    summary_parts: list[str] | None = None
    # Reasoning tokens reported in the Responses API's usage; default: one per thinking piece.
    reasoning_tokens: int | None = None

    def __post_init__(self) -> None:
        if self.chunks is not None and "".join(self.chunks) != self.text:
            raise ValueError("Reply.chunks must join to Reply.text")
        if self.summary_parts is not None and "\n\n".join(self.summary_parts) != self.thinking:
            raise ValueError("Reply.summary_parts must join with blank lines to Reply.thinking")

    def text_chunks(self) -> list[str]:
        return list(self.chunks) if self.chunks is not None else split_tokens(self.text)

    def thinking_chunks(self) -> list[str]:
        return split_tokens(self.thinking)


Responder = Callable[["RecordedRequest"], Reply]


def content_text(content: Any) -> str:
    """Text of a message's content, whether a string or a list of content parts."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


def input_items(body: dict[str, Any]) -> list[Any]:
    """A Responses API request's input as a list of items (a string is one user message)."""
    value = body.get("input")
    if isinstance(value, str):
        return [{"role": "user", "content": value}]
    return list(value) if isinstance(value, list) else []


def request_messages(body: dict[str, Any]) -> list[dict[str, Any]]:
    """The conversation a generation request carries: Chat Completions' and Messages' `messages`,
    or the message items of a Responses request's `input`."""
    messages = body.get("messages") if "messages" in body or "input" not in body \
        else input_items(body)
    if not isinstance(messages, list):
        return []
    return [m for m in messages if isinstance(m, dict) and "role" in m]


def estimate_input_tokens(body: Any) -> int:
    """Deterministic stand-in for a tokenizer: a quarter of the prompt's characters, plus one."""
    if not isinstance(body, dict):
        return 1
    chars = len(content_text(body.get("system"))) + len(content_text(body.get("instructions")))
    chars += sum(len(content_text(m.get("content"))) for m in request_messages(body))
    return chars // 4 + 1


class DefaultResponder:
    """Numbered replies that say what they were asked, so tests can check routing and history."""

    def __init__(self, chunks: int | None = None) -> None:
        self.chunks = chunks  # when set, every reply is exactly this many pieces long
        self._count = 0
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self._count += 1
            n = self._count
        body = request.json if isinstance(request.json, dict) else {}
        messages = request_messages(body)
        last_user = next(
            (content_text(m.get("content")) for m in reversed(messages) if m.get("role") == "user"),
            "",
        )
        text = (
            f"Reply {n} from {body.get('model', 'unknown')}: I read {len(messages)} messages; "
            f"the last one began '{last_user[:30]}'."
        )
        if self.chunks is None:
            return Reply(text)
        pieces = list(islice(cycle(split_tokens(text)), self.chunks))
        return Reply("".join(pieces), chunks=pieces)


class ScriptedResponder:
    """Hands out the given replies in order, starting again after the last."""

    def __init__(self, replies: Sequence[Reply | str]) -> None:
        if not replies:
            raise ValueError("ScriptedResponder needs at least one reply")
        self._replies = cycle([r if isinstance(r, Reply) else Reply(r) for r in replies])
        self._lock = threading.Lock()

    def __call__(self, request: RecordedRequest) -> Reply:
        with self._lock:
            return next(self._replies)


# Captured from llama.cpp's server (GET /v1/models and GET /props); only n_ctx is varied.
_LLAMACPP_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"
_LLAMACPP_BUILD = "b1-0c1e570"
_MODELS: dict[str, Any] = {
    "models": [
        {
            "name": _LLAMACPP_MODEL, "model": _LLAMACPP_MODEL, "modified_at": "", "size": "",
            "digest": "", "type": "model", "description": "", "tags": [""],
            "capabilities": ["completion"], "parameters": "",
            "details": {
                "parent_model": "", "format": "gguf", "family": "", "families": [""],
                "parameter_size": "", "quantization_level": "",
            },
        }
    ],
    "object": "list",
    "data": [
        {
            "id": _LLAMACPP_MODEL, "aliases": [_LLAMACPP_MODEL], "tags": [], "object": "model",
            "created": 1795720447, "owned_by": "llamacpp",
            "meta": {
                "vocab_type": 2, "n_vocab": 49152, "n_ctx": 4096, "n_ctx_train": 8192,
                "n_embd": 576, "n_params": 134515008, "size": 96576768, "ftype": "Q4_1",
            },
        }
    ],
}
_PROPS: dict[str, Any] = {
    "default_generation_settings": {
        "params": {
            "seed": 7, "temperature": 0.800000011920929, "dynatemp_range": 0.0,
            "dynatemp_exponent": 1.0, "top_k": 40, "top_p": 0.949999988079071,
            "min_p": 0.05000000074505806, "top_n_sigma": -1.0, "xtc_probability": 0.0,
            "xtc_threshold": 0.10000000149011612, "typical_p": 1.0, "repeat_last_n": 64,
            "repeat_penalty": 1.0, "presence_penalty": 0.0, "frequency_penalty": 0.0,
            "dry_multiplier": 0.0, "dry_base": 1.75, "dry_allowed_length": 2,
            "dry_penalty_last_n": 64, "mirostat": 0, "mirostat_tau": 5.0,
            "mirostat_eta": 0.10000000149011612, "adaptive_target": -1.0,
            "adaptive_decay": 0.8999999761581421, "max_tokens": -1, "n_predict": -1, "n_keep": 0,
            "n_discard": 0, "ignore_eos": False, "stream": False, "n_probs": 0, "min_keep": 0,
            "chat_format": "Content-only", "reasoning_format": "none",
            "reasoning_in_content": False, "generation_prompt": "",
            "samplers": [
                "penalties", "dry", "top_n_sigma", "top_k", "typ_p", "top_p", "min_p", "xtc",
                "temperature",
            ],
            "speculative.types": "none", "timings_per_token": False,
            "post_sampling_probs": False, "backend_sampling": False, "lora": [],
        },
        "n_ctx": 4096,
    },
    "total_slots": 2,
    "model_path": _LLAMACPP_MODEL,
    "build_info": _LLAMACPP_BUILD,
}


def models_payload(n_ctx: int) -> dict[str, Any]:
    payload = copy.deepcopy(_MODELS)
    payload["data"][0]["meta"]["n_ctx"] = n_ctx
    return payload


def props_payload(n_ctx: int) -> dict[str, Any]:
    payload = copy.deepcopy(_PROPS)
    payload["default_generation_settings"]["n_ctx"] = n_ctx
    return payload


# Other servers' shapes of the same facts, reduced to the fields that carry them.
def vllm_models_payload(n_ctx: int) -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "served-model", "object": "model",
                                        "owned_by": "vllm", "max_model_len": n_ctx}]}


def ollama_models_payload() -> dict[str, Any]:
    return {"object": "list", "data": [{"id": "gemma3:4b", "object": "model",
                                        "owned_by": "library"}]}


def ollama_show_payload(num_ctx: int | None, trained: int = 131072) -> dict[str, Any]:
    parameters = 'stop "<end_of_turn>"\ntemperature 1'
    if num_ctx is not None:
        parameters = f"num_ctx {num_ctx}\n{parameters}"
    return {"parameters": parameters, "model_info": {"gemma3.context_length": trained}}
