"""Fixtures for the fake server's own tests: a running server and real SDK clients."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import httpx2
import openai
import pytest

from tests.fakeserver import (
    FakeServer,
)

ROOT = Path(__file__).resolve().parents[2]  # the repository
MESSAGES: list[Any] = [{"role": "user", "content": "Tell me about the sea, please."}]
DEFAULT_TEXT = (
    "Reply 1 from m: I read 1 messages; the last one began 'Tell me about the sea, please.'."
)
SHORT_READ = httpx2.Timeout(5.0, read=0.2)  # well under every stall below


@pytest.fixture
def srv() -> Iterator[FakeServer]:
    with FakeServer() as server:
        yield server


def openai_client(
    srv: FakeServer, key: str = "test-key", timeout: float | httpx2.Timeout = 5.0
) -> openai.AsyncOpenAI:
    return openai.AsyncOpenAI(
        base_url=srv.base_url + "/v1", api_key=key, max_retries=0, timeout=timeout
    )


def anthropic_client(srv: FakeServer, key: str = "test-key") -> anthropic.AsyncAnthropic:
    return anthropic.AsyncAnthropic(base_url=srv.base_url, api_key=key, max_retries=0, timeout=5.0)


@pytest.fixture
async def oai(srv: FakeServer) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai_client(srv) as client:
        yield client


@pytest.fixture
async def ant(srv: FakeServer) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic_client(srv) as client:
        yield client


async def openai_text(client: openai.AsyncOpenAI, received: list[str], **kwargs: Any) -> str:
    """Stream a reply, appending content pieces to `received` as they arrive."""
    stream = await client.chat.completions.create(
        model="m", messages=MESSAGES, stream=True, **kwargs
    )
    async for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            received.append(chunk.choices[0].delta.content)
    return "".join(received)


async def responses_text(client: openai.AsyncOpenAI, received: list[str], **kwargs: Any) -> str:
    """Stream a reply over the Responses API, appending output text pieces to `received`."""
    stream = await client.responses.create(model="m", input=MESSAGES, stream=True, **kwargs)
    async for event in stream:
        if event.type == "response.output_text.delta":
            received.append(event.delta)
    return "".join(received)


async def anthropic_text(
    client: anthropic.AsyncAnthropic, received: list[str], **kwargs: Any
) -> str:
    stream = await client.messages.create(
        model="m", max_tokens=1024, messages=MESSAGES, stream=True, **kwargs
    )
    async for event in stream:
        if event.type == "content_block_delta" and event.delta.type == "text_delta":
            received.append(event.delta.text)
    return "".join(received)
