"""Anthropic Messages: system prompt, extended thinking with its signature, streamed usage.

We read the raw event stream (`with_streaming_response`, decoded by `wire`), neither the
`messages.stream()` helper, which would deliver every piece twice (raw deltas plus its own text
events), nor `create(stream=True)`, which builds a model for every event. A reply is complete with
the `message_delta` that carries its stop reason and output usage; what follows is read for a
short while only (`read_after_finish`), so a server that keeps the connection open after its
reply costs neither the reply nor the time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Self

import anthropic
import httpx2

from intermodel.config.capabilities import PROVIDERS
from intermodel.config.model import AgentConfig
from intermodel.config.request import Request
from intermodel.errors import StreamInterrupted
from intermodel.providers.base import (
    HEARTBEAT,
    ConfiguredProvider,
    Finished,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)
from intermodel.providers.errors import StreamPhase, error_for_stream_payload, translate
from intermodel.providers.http import read_after_finish, sdk_http_client
from intermodel.providers.wire import (
    json_object,
    loose_text,
    member,
    server_events,
    text_member,
)
from intermodel.security.secrets import Credentials

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


class AnthropicProvider(ConfiguredProvider):
    name = "anthropic"
    capabilities = PROVIDERS["anthropic"]

    @classmethod
    def for_agent(cls, agent: AgentConfig, partner: str, credentials: Credentials) -> Self:
        return cls(agent, credentials)

    def __init__(self, agent: AgentConfig, credentials: Credentials) -> None:
        self.agent = agent
        timeout = httpx2.Timeout(agent.timeout, connect=min(15.0, agent.timeout))
        self._client = anthropic.AsyncAnthropic(
            api_key=credentials.api_key,
            base_url=agent.base_url,
            max_retries=0,  # the dialogue owns retries (and the SDK would honour any Retry-After)
            timeout=timeout,
            default_headers=dict(credentials.headers),
            http_client=sdk_http_client(anthropic, timeout),
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
        input_tokens: Any = None  # as the server sent them: the turn producer judges them
        output_tokens: Any = None
        signature = ""
        with translate(anthropic, self.name, phase):
            async with self._client.messages.with_streaming_response.create(
                    **self._params(request)) as response, \
                    aclosing(server_events(response.http_response.aiter_bytes())) as events:
                async for name, data in events:
                    # As the SDK's own stream does: pings are no sign of progress, and an
                    # event with no name is none of the protocol's.
                    if name == "ping" or not name:
                        continue
                    phase.streaming = True
                    if name == "error":
                        raise error_for_stream_payload(data, "the server reported an error",
                                                       provider=self.name)
                    event = json_object(data)
                    kind = event.get("type")
                    if kind == "content_block_delta":
                        delta = event.get("delta")
                        kind = member(delta, "type")
                        if kind == "text_delta":
                            if text := text_member(delta, "text"):
                                yield TextDelta(text)
                                continue
                        elif kind == "thinking_delta":
                            if thinking := text_member(delta, "thinking"):
                                yield ThinkingDelta(thinking)
                                continue
                        elif kind == "signature_delta":
                            signature += text_member(delta, "signature") or ""
                    elif kind == "message_start":
                        message = event.get("message")
                        model = loose_text(message, "model") or model
                        input_tokens = _input_tokens(member(message, "usage"))
                    elif kind == "message_delta":
                        stop_reason = text_member(event.get("delta"), "stop_reason") \
                            or stop_reason
                        output_tokens = member(event.get("usage"), "output_tokens")
                        if stop_reason is not None:
                            break  # the reply is whole; message_stop adds nothing
                    elif kind == "message_stop":
                        break
                    elif kind == "error":  # an error event under another name
                        raise error_for_stream_payload(event, "the server reported an error",
                                                       provider=self.name)
                    yield HEARTBEAT  # a block's start or end, the message's start
                if stop_reason is not None:
                    await read_after_finish(events, lambda event: None, self.agent.timeout)
        if stop_reason is None:
            raise StreamInterrupted("the stream ended before message_delta", provider=self.name)
        yield UsageReport(input_tokens, output_tokens)
        yield Finished(stop_reason, model, signature)

    async def aclose(self) -> None:
        await self._client.close()


def _input_tokens(usage: object) -> Any:
    """Input tokens, cached ones included. A count that is not a whole number is passed on as it
    came, for the turn producer to judge."""
    parts = [member(usage, name) for name in
             ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")]
    odd = [p for p in parts if p is not None and type(p) is not int]
    return odd[0] if odd else sum(p or 0 for p in parts)
