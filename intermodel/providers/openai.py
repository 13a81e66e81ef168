"""OpenAI Chat Completions, and every server that speaks it (Ollama, vLLM, llama.cpp, LM Studio,
OpenRouter, DeepSeek).

Reasoning arrives three ways depending on the server: a `reasoning_content` field (DeepSeek,
llama.cpp), a `reasoning` field (Ollama, vLLM, OpenRouter), or `<think>` tags inside the content;
all three become ThinkingDelta. Servers that ignore `stream_options` send no usage; then the turn
has no token counts rather than invented ones.

A reply is complete with its finish reason. The usage chunk follows it (when the server sends
one) and is read with the rest of the stream for a short while only (`read_after_finish`): a
server that keeps the connection open after its reply costs neither the reply nor the time.
"""

from __future__ import annotations

from collections.abc import AsyncGenerator
from contextlib import aclosing
from typing import Any, Self

import httpx2
import openai

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
from intermodel.providers.errors import StreamPhase, translate
from intermodel.providers.http import read_after_finish, sdk_http_client
from intermodel.providers.probe import PROBE_SECONDS, server_context
from intermodel.providers.thinktags import ThinkTagParser
from intermodel.providers.wire import json_payloads, loose_text, member, text_member
from intermodel.security.secrets import Credentials

__all__ = ["OpenAIProvider", "chat_messages"]

_OFFICIAL_HOST = "api.openai.com"


def chat_messages(request: Request) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    if request.system:
        messages.append({"role": "system", "content": request.system})
    for message in request.messages:
        item: dict[str, Any] = {"role": message.role, "content": message.content}
        if message.role == "assistant" and message.thinking:
            # DeepSeek's convention for handing reasoning back; other servers ignore the field.
            item["reasoning_content"] = message.thinking
        messages.append(item)
    return messages


def is_official(agent: AgentConfig) -> bool:
    """Whether the agent talks to OpenAI's own API (whose models differ from compatible
    servers' in the parameters they take)."""
    return agent.base_url is None or _OFFICIAL_HOST in agent.base_url


def sdk_client(agent: AgentConfig, credentials: Credentials) -> openai.AsyncOpenAI:
    """The openai SDK client of one agent, for either of its APIs."""
    timeout = httpx2.Timeout(agent.timeout, connect=min(15.0, agent.timeout))
    return openai.AsyncOpenAI(
        api_key=credentials.api_key,
        base_url=agent.base_url,
        max_retries=0,  # the dialogue owns retries, so every one is recorded
        timeout=timeout,
        default_headers=dict(credentials.headers),
        http_client=sdk_http_client(openai, timeout),
    )


class OpenAIClientProvider(ConfiguredProvider):
    """What both of an `openai` agent's APIs share: the SDK client, the probe of a local
    server's context, and closing."""

    name = "openai"
    capabilities = PROVIDERS["openai"]

    @classmethod
    def for_agent(cls, agent: AgentConfig, partner: str, credentials: Credentials) -> Self:
        return cls(agent, credentials)

    def __init__(self, agent: AgentConfig, credentials: Credentials) -> None:
        self.agent = agent
        self._official = is_official(agent)
        self._headers = dict(credentials.headers)
        self._client = sdk_client(agent, credentials)

    async def context_limit(self) -> int | None:
        """The context a local server really uses (None for OpenAI itself, or if the server does
        not say); raises ProbeFailed if it cannot be asked within a few seconds."""
        if self._official or self.agent.base_url is None:
            return None
        auth = {"Authorization": f"Bearer {self._client.api_key}"}
        return await server_context(self.agent.base_url, self.agent.model,
                                    headers={**self._headers, **auth},
                                    extra_body=self.agent.extra_body,
                                    seconds=min(PROBE_SECONDS, self.agent.timeout))

    async def aclose(self) -> None:
        await self._client.close()


class OpenAIProvider(OpenAIClientProvider):
    """Chat Completions, the default API."""

    def _params(self, request: Request) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {
            "model": request.model,
            "messages": chat_messages(request),
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        # OpenAI's own reasoning models refuse max_tokens; compatible servers know only it.
        params["max_completion_tokens" if self._official else "max_tokens"] = s.max_tokens
        for key, value in (("temperature", s.temperature), ("top_p", s.top_p), ("seed", s.seed)):
            if value is not None:
                params[key] = value
        if s.stop:
            params["stop"] = list(s.stop)
        if request.extra_body:
            params["extra_body"] = dict(request.extra_body)
        return params

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        phase = StreamPhase()
        parser = ThinkTagParser()
        finish: str | None = None
        usage: UsageReport | None = None
        model = request.model
        params = self._params(request)
        with translate(openai, self.name, phase):
            async with self._client.chat.completions.with_streaming_response.create(
                    **params) as response, \
                    aclosing(json_payloads(response.http_response.aiter_bytes())) as chunks:
                async for chunk in chunks:
                    phase.streaming = True
                    model = loose_text(chunk, "model") or model
                    if (counts := chunk.get("usage")) is not None:
                        usage = _usage(counts)
                        yield usage
                    choices = chunk.get("choices")
                    if not choices or type(choices) is not list:
                        if counts is None:
                            yield HEARTBEAT
                        continue
                    choice = choices[0]
                    delta = member(choice, "delta")
                    # Not OpenAI's own fields, and unspecified: taken only when they are text.
                    reasoning = loose_text(delta, "reasoning_content") \
                        or loose_text(delta, "reasoning")
                    if reasoning:
                        yield ThinkingDelta(reasoning)
                    if content := text_member(delta, "content"):
                        if parser.plain and "<" not in content:  # most tokens: no tag near
                            yield TextDelta(content)
                        else:
                            for piece in parser.feed(content):
                                yield piece
                    elif not reasoning:
                        yield HEARTBEAT  # the role chunk, an empty delta, the finish
                    if reason := text_member(choice, "finish_reason"):
                        finish = reason
                        break
                if finish is not None:
                    trailing: list[UsageReport] = []

                    def take(chunk: dict[str, Any]) -> None:
                        if (counts := chunk.get("usage")) is not None:
                            trailing.append(_usage(counts))

                    await read_after_finish(chunks, take, self.agent.timeout)
                    if trailing and usage is None:
                        yield trailing[-1]
        for piece in parser.flush():
            yield piece
        if not phase.streaming:
            await self._explain_empty_stream(params)
        if finish is None:
            # A server that ends a stream with no finish reason (llama.cpp's python server does
            # when another request interrupts it) has not given us a whole reply.
            raise StreamInterrupted("the stream ended without a finish reason", provider=self.name)
        yield Finished(finish, model)

    async def _explain_empty_stream(self, params: dict[str, Any]) -> None:
        """A 200 with an empty stream is how llama-cpp-python's server answers a prompt longer
        than its context (it only logs the reason). The same request unstreamed, for one token,
        gets a proper error status, translated as usual (e.g. into ContextTooLong)."""
        probe = {**params, "stream": False}
        probe.pop("stream_options", None)
        probe["max_completion_tokens" if self._official else "max_tokens"] = 1
        with translate(openai, self.name, StreamPhase()):
            await self._client.chat.completions.create(**probe)
        raise StreamInterrupted("the server sent an empty stream", provider=self.name)

def _usage(usage: object) -> UsageReport:
    # The turn producer checks the counts themselves.
    return UsageReport(member(usage, "prompt_tokens"), member(usage, "completion_tokens"),
                       member(member(usage, "completion_tokens_details"), "reasoning_tokens"))
