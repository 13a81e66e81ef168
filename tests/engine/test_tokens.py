"""One estimate of tokens from text, shared by the context fitter and the scripted provider."""

from __future__ import annotations

import anyio
import pytest

from intermodel.config.model import AgentConfig, ScriptConfig
from intermodel.config.request import Message, Request, estimate_text_tokens
from intermodel.engine.tokens import MESSAGE_OVERHEAD, estimate_tokens
from intermodel.providers.base import UsageReport
from intermodel.providers.scripted import ScriptedProvider


def test_text_is_four_characters_a_token_rounded_up() -> None:
    assert [estimate_text_tokens(n) for n in (0, 1, 4, 5, 8, 9)] == [0, 1, 1, 2, 2, 3]


def test_a_request_estimate_never_rounds_down() -> None:
    # 5 + 2 characters: 7 / 4 rounds up to 2 tokens, and each message (and the system prompt)
    # adds its framing. An estimate that rounds down undercounts a request near the window.
    request = Request("m", "abcde", (Message("user", "fg"),))
    assert estimate_tokens(request) == 2 + 2 * MESSAGE_OVERHEAD


def test_the_scripted_provider_reports_the_same_estimate() -> None:
    agent = AgentConfig(name="ada", provider="scripted", model="m", prompt="",
                        script=ScriptConfig(replies=("twelve chars",)))
    provider = ScriptedProvider(agent, "bo")
    request = Request("m", "abcde", (Message("user", "fg"),))

    async def usage() -> UsageReport:
        async for event in provider.stream(request):
            if isinstance(event, UsageReport):
                return event
        pytest.fail("no usage reported")

    report = anyio.run(usage)
    assert (report.input_tokens, report.output_tokens) == (estimate_text_tokens(7),
                                                          estimate_text_tokens(12))
