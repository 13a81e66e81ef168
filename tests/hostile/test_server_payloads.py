"""Hostile servers that send data no honest server sends, through the real SDKs over real
loopback HTTP: malformed payloads are classified errors, and absurd usage counts are dropped
with a note rather than kept or trusted."""

from __future__ import annotations

from collections.abc import AsyncGenerator
from pathlib import Path

import pytest

from intermodel.config.request import Request
from intermodel.engine.events import Notice
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.turns import TurnProducer
from intermodel.errors import ProviderError
from intermodel.providers.base import Finished, ProviderBase, StreamEvent, TextDelta, UsageReport
from intermodel.security.secrets import Redactor
from tests.fakeserver import FakeServer, Fault

from .server_pairings import (
    PROTOCOLS,
    collect,
    notes,
    pairing_for,
    provider_for,
    request,
    run_to_end,
)

pytestmark = pytest.mark.anyio


PAYLOADS = [("invalid_utf8", "stream_interrupted", True),
            ("huge_int", "provider_broken", False),
            ("deep_nesting", "provider_broken", False),
            ("not_an_object", "provider_broken", False),
            ("mistyped_text", "provider_broken", False)]


@pytest.mark.parametrize(("payload", "kind", "transient"), PAYLOADS,
                         ids=[p[0] for p in PAYLOADS])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_malformed_payload_is_a_classified_error(server: FakeServer, protocol: str,
                                                         payload: str, kind: str,
                                                         transient: bool) -> None:
    server.faults.push(Fault.bad_payload(payload, 4))  # type: ignore[arg-type]
    with pytest.raises(ProviderError) as caught:
        await collect(provider_for(protocol, server))
    error = caught.value
    assert (error.kind, error.transient, error.provider) == (kind, transient, protocol)
    line = error.describe()
    assert "\n" not in line and len(line) < 500 and "Traceback" not in line


async def test_a_run_ends_on_a_hostile_payload_with_one_line(server: FakeServer,
                                                             tmp_path: Path) -> None:
    server.faults.push(Fault.ok(), Fault.bad_payload("deep_nesting", 4))
    pairing = pairing_for(server.base_url, turns=2)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "error"
    assert end.detail == ("bo: anthropic provider broken: the server sent JSON nested too "
                          "deeply to read")
    assert len(transcript.turns) == 1


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_absurd_usage_costs_the_counts_not_the_reply(server: FakeServer, tmp_path: Path,
                                                           protocol: str) -> None:
    server.faults.push(Fault.bad_payload("absurd_usage"))
    pairing = pairing_for(server.base_url, protocol, protocol, turns=2)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    first, second = transcript.turns
    assert first.text.startswith("Reply 1") and first.attempts == 1
    assert (first.usage.input_tokens, first.usage.output_tokens) == (None, None)
    assert second.usage.output_tokens is not None  # an honest reply keeps its counts
    found = [n for n in notes(transcript.records) if "turn 1" in n]
    assert len(found) == 2 and all("turn 1: the server reported" in n for n in found)
    assert f"output_tokens = 1{'0' * 19}… (401 characters); recorded as unknown" in found[1]
    assert transcript.end is not None and transcript.end.usage["bo"].output_tokens is not None


class _Reports(ProviderBase):
    """A provider that reports the given usage with an otherwise ordinary reply."""

    name = "reports"

    def __init__(self, usage: UsageReport) -> None:
        self.usage = usage

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        yield TextDelta("fine")
        yield self.usage
        yield Finished("stop", "m")

    async def aclose(self) -> None:
        pass


@pytest.mark.parametrize(("reported", "kept"), [
    ((12, 34, 5), (12, 34, 5)),
    ((12.0, 1e400, -1), (12, None, None)),
    ((True, "34", 2**53 + 1), (None, None, None)),
    ((None, 2**53, None), (None, 2**53, None)),
])
async def test_only_plausible_counts_are_kept(reported: tuple[object, object, object],
                                              kept: tuple[object, object, object]) -> None:
    emitted: list[object] = []

    async def emit(event: object) -> None:
        emitted.append(event)

    producer = TurnProducer(emit=emit, publish=lambda event: None,  # type: ignore[arg-type]
                            retry=RetryPolicy(pairing_for("http://x").retry), redact=Redactor(),
                            deadline=lambda: float("inf"), stop_reason=lambda: None)

    async def fit(refused: bool) -> Request:
        return request()

    turn, _ = await producer.produce(1, "ada", _Reports(UsageReport(*reported)),  # type: ignore[arg-type]
                                     fit, 1)
    usage = turn.usage
    assert (usage.input_tokens, usage.output_tokens, usage.reasoning_tokens) == kept
    dropped = sum(1 for r, k in zip(reported, kept, strict=True) if r is not None and k is None)
    assert len([e for e in emitted if isinstance(e, Notice)]) == dropped
