"""OpenAI's Responses API (`POST /v1/responses`): an `openai` agent with `api = "responses"`.

The only API in which OpenAI's reasoning models (the o-series, the GPT-5 family) return their
reasoning. Its stream names every event (`response.output_text.delta`, …); we read the raw event
stream (`with_streaming_response`, decoded by `wire`), neither the `responses.stream()` helper,
which fails on servers that leave out the events' indexes (llama.cpp's does), nor
`create(stream=True)`, which builds a model for every event.

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

from collections.abc import AsyncGenerator
from contextlib import aclosing
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
from intermodel.providers.wire import json_payloads, loose_text, member, text_member
from intermodel.records import ReasoningItem

__all__ = ["INCLUDE_ENCRYPTED", "OpenAIResponsesProvider", "input_items",
           "reasoning_item_param"]

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
            async with self._client.responses.with_streaming_response.create(
                    **self._params(request)) as response, \
                    aclosing(json_payloads(response.http_response.aiter_bytes())) as events:
                async for event in events:
                    phase.streaming = True
                    kind = event.get("type")
                    if kind == "response.output_text.delta":  # the most frequent first
                        if text := text_member(event, "delta"):
                            if parser.plain and "<" not in text:  # most tokens: no tag near
                                yield TextDelta(text)
                            else:
                                for piece in parser.feed(text):
                                    yield piece
                            continue
                    elif kind in _THINKING_DELTAS:
                        if thinking := text_member(event, "delta"):
                            if paragraph:
                                yield ThinkingDelta("\n\n")
                                paragraph = False
                            thought = True
                            yield ThinkingDelta(thinking)
                            continue
                    elif kind in _NEW_THINKING:
                        paragraph = paragraph or thought
                    elif kind == "response.output_item.done":
                        item = event.get("item")
                        if member(item, "type") == "reasoning":
                            streamed_items.append(item)
                    elif kind in _FINAL:
                        final = event.get("response")
                        model = loose_text(final, "model") or model
                        output = member(final, "output")
                        final_output = output if type(output) is list else []
                        stop_reason = _stop_reason(final)
                        yield _usage(member(final, "usage"))
                        break
                    elif kind == "response.failed":
                        raise _failure(member(event.get("response"), "error"), "the response "
                                       "failed", self.name)
                    elif kind == "error":  # the documented flat shape; the other raises earlier
                        raise _failure(event, "the server reported an error", self.name)
                    elif kind == "response.created":
                        model = loose_text(event.get("response"), "model") or model
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
        finals = [item for item in final_output or () if member(item, "type") == "reasoning"]
        items = (_reasoning_item(item) for item in (finals or streamed))
        return tuple(item for item in items if item.encrypted_content or item.content is not None)


def _stop_reason(response: object) -> str:
    """"completed", or why the response is incomplete ("max_output_tokens", "content_filter")."""
    status = loose_text(response, "status")
    if status == "incomplete":
        return loose_text(member(response, "incomplete_details"), "reason") or "incomplete"
    return status or "completed"


def _failure(error: object, fallback: str, provider: str) -> ProviderError:
    """The ProviderError for an error reported inside the stream: a failed response's `error`,
    or an `error` event (both carry `code` and `message`)."""
    body = {"error": {"code": loose_text(error, "code") or "",
                      "message": loose_text(error, "message") or ""}}
    return error_for_stream_payload(body, fallback, provider=provider)


def _reasoning_item(item: object) -> ReasoningItem:
    def texts(parts: object) -> tuple[str, ...]:
        if type(parts) is not list:
            return ()
        return tuple(text for part in parts if type(text := member(part, "text")) is str)

    content = member(item, "content")
    return ReasoningItem(id=loose_text(item, "id") or "",
                         encrypted_content=loose_text(item, "encrypted_content"),
                         summary=texts(member(item, "summary")),
                         content=None if content is None else texts(content))


def _usage(usage: object) -> UsageReport:
    # The turn producer checks the counts themselves.
    return UsageReport(member(usage, "input_tokens"), member(usage, "output_tokens"),
                       member(member(usage, "output_tokens_details"), "reasoning_tokens"))
