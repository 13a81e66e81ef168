"""Anthropic Messages: system prompt, extended thinking with its signature, streamed usage.

We read the raw stream events (`create(stream=True)`), not the `messages.stream()` helper, which
would deliver every piece twice (raw deltas plus its own text events).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from typing import Any

import anthropic
import httpx2

from intermodel.config.model import AgentConfig
from intermodel.errors import StreamInterrupted
from intermodel.providers.base import (
    Finished,
    Request,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)
from intermodel.providers.errors import StreamPhase, translate
from intermodel.secrets import Credentials

__all__ = ["AnthropicProvider", "anthropic_messages"]


def anthropic_messages(request: Request) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    for message in request.messages:
        if message.role == "assistant" and message.thinking and message.signature:
            # Thinking goes back only with its signature; the API rejects unsigned thinking.
            content: Any = [
                {"type": "thinking", "thinking": message.thinking,
                 "signature": message.signature},
                {"type": "text", "text": message.content},
            ]
        else:
            content = message.content
        messages.append({"role": message.role, "content": content})
    return messages


class AnthropicProvider:
    name = "anthropic"

    def __init__(self, agent: AgentConfig, credentials: Credentials) -> None:
        self.agent = agent
        self._client = anthropic.AsyncAnthropic(
            api_key=credentials.api_key,
            base_url=agent.base_url,
            max_retries=0,  # the dialogue owns retries (and the SDK would honour any Retry-After)
            timeout=httpx2.Timeout(agent.timeout, connect=min(15.0, agent.timeout)),
            default_headers=dict(credentials.headers),
        )

    def _params(self, request: Request) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {
            "model": request.model,
            "max_tokens": s.max_tokens,
            "messages": anthropic_messages(request),
            "stream": True,
        }
        if request.system:
            params["system"] = request.system
        if request.thinking_budget:
            params["thinking"] = {"type": "enabled", "budget_tokens": request.thinking_budget}
        # No temperature or top_p: API version 2026-10-21 refuses every sampling setting (the
        # config check says so); compatible servers that take them get them via extra_body.
        if s.stop:
            params["stop_sequences"] = list(s.stop)
        if request.extra_body:
            params["extra_body"] = dict(request.extra_body)
        return params

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        phase = StreamPhase()
        model = request.model
        stop_reason: str | None = None
        input_tokens: int | None = None
        output_tokens: int | None = None
        signature = ""
        with translate(anthropic, self.name, phase):
            stream = await self._client.messages.create(**self._params(request))
            async with stream:
                async for event in stream:
                    phase.streaming = True
                    kind = event.type
                    if kind == "content_block_delta":
                        delta = event.delta
                        if delta.type == "text_delta":
                            yield TextDelta(delta.text)
                        elif delta.type == "thinking_delta":
                            yield ThinkingDelta(delta.thinking)
                        elif delta.type == "signature_delta":
                            signature += delta.signature
                    elif kind == "message_start":
                        model = event.message.model or model
                        usage = event.message.usage
                        input_tokens = (usage.input_tokens or 0) + (
                            usage.cache_creation_input_tokens or 0) + (
                            usage.cache_read_input_tokens or 0)
                    elif kind == "message_delta":
                        stop_reason = event.delta.stop_reason or stop_reason
                        output_tokens = event.usage.output_tokens
                    elif kind == "message_stop":
                        break
        if stop_reason is None:
            raise StreamInterrupted("the stream ended before message_delta", provider=self.name)
        yield UsageReport(input_tokens, output_tokens)
        yield Finished(stop_reason, model, signature)

    async def aclose(self) -> None:
        await self._client.close()
