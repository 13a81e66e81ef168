"""OpenAI's Responses API (`POST /v1/responses`): an `openai` agent with `api = "responses"`.

The only API in which OpenAI's reasoning models (the o-series, the GPT-5 family) return their
reasoning. Its stream names every event (`response.output_text.delta`, …); we read the raw events
(`create(stream=True)`), not the `responses.stream()` helper, which fails on servers that leave
out the events' indexes (llama.cpp's does).

- Thinking: reasoning summary deltas (OpenAI) and reasoning text deltas (servers that expose the
  whole reasoning, as llama.cpp's does) become ThinkingDelta; summary parts and reasoning items
  are separated by a blank line. Output text becomes the reply (`<think>` tags in it are split off,
  as on Chat Completions). `reasoning_tokens` come from `output_tokens_details`.
- Reasoning carried between turns: nothing is stored on the server (`store` is false). With
  `thinking.send_back`, the request asks for the reasoning encrypted
  (`include = ["reasoning.encrypted_content"]`), the reply's reasoning items end up in its turn
  record (`Finished.reasoning_items`), and the agent's view hands them back before its own
  earlier replies (`Message.reasoning_items`); its partner never gets them.
- The end: `response.completed` (stop reason "completed") or `response.incomplete` (its reason,
  e.g. "max_output_tokens"), each with the usage. `response.failed` and `error` events become the
  same errors as an HTTP failure of their kind would (`providers.errors`), so they are retried or
  not on the same terms. What follows the end is read for a short while only
  (`read_after_finish`).
"""

from __future__ import annotations

from collections.abc import AsyncGenerator, Iterable
from typing import Any

import openai

from intermodel.config.request import Request
from intermodel.errors import ProviderError, StreamInterrupted
from intermodel.providers.base import (
    HEARTBEAT,
    Finished,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
    UsageReport,
)
from intermodel.providers.errors import StreamPhase, error_for_stream_payload, translate
from intermodel.providers.http import read_after_finish
from intermodel.providers.openai import OpenAIClientProvider
from intermodel.providers.thinktags import ThinkTagParser
from intermodel.records import ReasoningItem

__all__ = ["INCLUDE_ENCRYPTED", "OpenAIResponsesProvider", "input_items", "reasoning_item_param"]

INCLUDE_ENCRYPTED = "reasoning.encrypted_content"
_FINAL = frozenset({"response.completed", "response.incomplete"})
_THINKING_DELTAS = frozenset({"response.reasoning_summary_text.delta",
                              "response.reasoning_text.delta"})
# Events that start a new stretch of thinking: a blank line goes before it when thinking came
# before (summary parts are paragraphs; so are separate reasoning items).
_NEW_THINKING = frozenset({"response.reasoning_summary_part.added", "response.output_item.added"})


def reasoning_item_param(item: ReasoningItem) -> dict[str, Any]:
    """A kept reasoning item as the Responses API takes it back in `input`."""
    param: dict[str, Any] = {
        "type": "reasoning", "id": item.id,
        "summary": [{"type": "summary_text", "text": text} for text in item.summary],
    }
    if item.encrypted_content is not None:
        param["encrypted_content"] = item.encrypted_content
    if item.content is not None:
        param["content"] = [{"type": "reasoning_text", "text": text} for text in item.content]
    return param


def input_items(request: Request) -> list[dict[str, Any]]:
    """The conversation as `input` items: each message typed (llama.cpp's server needs the type
    on an assistant message), an assistant message's reasoning items just before it."""
    items: list[dict[str, Any]] = []
    for message in request.messages:
        items.extend(reasoning_item_param(item) for item in message.reasoning_items)
        items.append({"type": "message", "role": message.role, "content": message.content})
    return items


class OpenAIResponsesProvider(OpenAIClientProvider):
    """OpenAI's Responses API (`api = "responses"`), for reasoning that can be carried on."""

    def _params(self, request: Request) -> dict[str, Any]:
        s = request.sampling
        params: dict[str, Any] = {
            "model": request.model,
            "input": input_items(request),
            "stream": True,
            "store": False,  # nothing depends on what the server keeps
            "max_output_tokens": s.max_tokens,
        }
        if request.system:
            params["instructions"] = request.system
        # No seed and no stop sequences: the Responses API has neither (the config check says
        # so); a compatible server that takes them gets them via extra_body.
        for key, value in (("temperature", s.temperature), ("top_p", s.top_p)):
            if value is not None:
                params[key] = value
        if request.reasoning:
            params["reasoning"] = dict(request.reasoning)
        if self.agent.send_thinking_back:
            params["include"] = [INCLUDE_ENCRYPTED]
        if request.extra_body:
            params["extra_body"] = dict(request.extra_body)
        return params

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        phase = StreamPhase()
        parser = ThinkTagParser()
        model = request.model
        stop_reason: str | None = None
        thought = False  # some thinking has been yielded
        paragraph = False  # the next thinking starts a new stretch
        streamed_items: list[Any] = []
        final_output: list[Any] | None = None
        with translate(openai, self.name, phase):
            stream = await self._client.responses.create(**self._params(request))
            async with stream:
                events = aiter(stream)
                async for event in events:
                    phase.streaming = True
                    kind = event.type
                    if kind == "response.output_text.delta":  # the most frequent first
                        if text := event.delta:
                            if parser.plain and "<" not in text:  # most tokens: no tag near
                                yield TextDelta(text)
                            else:
                                for piece in parser.feed(text):
                                    yield piece
                            continue
                    elif kind in _THINKING_DELTAS:
                        if event.delta:
                            if paragraph:
                                yield ThinkingDelta("\n\n")
                                paragraph = False
                            thought = True
                            yield ThinkingDelta(event.delta)
                            continue
                    elif kind in _NEW_THINKING:
                        paragraph = paragraph or thought
                    elif kind == "response.output_item.done":
                        if getattr(event.item, "type", None) == "reasoning":
                            streamed_items.append(event.item)
                    elif kind in _FINAL:
                        response = event.response
                        model = response.model or model
                        final_output = list(response.output or [])
                        stop_reason = _stop_reason(response)
                        yield _usage(response.usage)
                        break
                    elif kind == "response.failed":
                        raise _failure(getattr(event.response, "error", None), "the response "
                                       "failed", self.name)
                    elif kind == "error":  # the documented flat shape; the SDK raises the other
                        raise _failure(event, "the server reported an error", self.name)
                    elif kind == "response.created":
                        model = getattr(event.response, "model", None) or model
                    yield HEARTBEAT  # an item's or a part's start or end, an empty delta
                if stop_reason is not None:
                    await read_after_finish(events, lambda event: None, self.agent.timeout)
        for piece in parser.flush():
            yield piece
        if stop_reason is None:
            what = "sent no events" if not phase.streaming else "ended before the response did"
            raise StreamInterrupted(f"the stream {what}", provider=self.name)
        kept = self._kept_items(final_output, streamed_items)
        yield Finished(stop_reason, model, reasoning_items=kept)

    def _kept_items(self, final_output: list[Any] | None,
                    streamed: list[Any]) -> tuple[ReasoningItem, ...]:
        """The reply's reasoning items worth sending back: only when the agent sends its
        thinking back, and only those the server can read again without having stored them
        (encrypted, or with their reasoning text)."""
        if not self.agent.send_thinking_back:
            return ()
        finals = [item for item in final_output or () if getattr(item, "type", None) == "reasoning"]
        items = (_reasoning_item(item) for item in (finals or streamed))
        return tuple(item for item in items if item.encrypted_content or item.content is not None)


def _stop_reason(response: Any) -> str:
    """"completed", or why the response is incomplete ("max_output_tokens", "content_filter")."""
    status = getattr(response, "status", None)
    if status == "incomplete":
        details = getattr(response, "incomplete_details", None)
        return str(getattr(details, "reason", None) or "incomplete")
    return str(status or "completed")


def _failure(error: Any, fallback: str, provider: str) -> ProviderError:
    """The ProviderError for an error reported inside the stream: a failed response's `error`,
    or an `error` event (both carry `code` and `message`)."""
    code = getattr(error, "code", None)
    message = getattr(error, "message", None)
    body = {"error": {"code": code if isinstance(code, str) else "",
                      "message": message if isinstance(message, str) else ""}}
    return error_for_stream_payload(body, fallback, provider=provider)


def _reasoning_item(item: Any) -> ReasoningItem:
    # Read with getattr: the SDK builds events without validating them.
    def texts(parts: Iterable[Any] | None) -> tuple[str, ...]:
        return tuple(text for part in parts or () if isinstance(text := getattr(part, "text", ""),
                                                                    str))

    content = getattr(item, "content", None)
    encrypted = getattr(item, "encrypted_content", None)
    return ReasoningItem(id=str(getattr(item, "id", "") or ""),
                         encrypted_content=encrypted if isinstance(encrypted, str) else None,
                         summary=texts(getattr(item, "summary", None)),
                         content=None if content is None else texts(content))


def _usage(usage: Any) -> UsageReport:
    # Read with getattr, as above; the turn producer checks the counts themselves.
    details = getattr(usage, "output_tokens_details", None)
    return UsageReport(getattr(usage, "input_tokens", None), getattr(usage, "output_tokens", None),
                       getattr(details, "reasoning_tokens", None))
