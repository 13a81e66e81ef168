"""An unattended night in miniature: a 300-turn run through both SDKs against a server that
fails about one request in ten, in every way the fake knows. Every turn must arrive, once, and
every retry must be on record."""

from __future__ import annotations

from pathlib import Path

import anyio
import pytest

from intermodel.config import parse_pairing
from intermodel.engine.prepare import prepared_run
from intermodel.lineage.audit import verify_transcript
from intermodel.records import Retry
from intermodel.transcript.reader import read_transcript
from tests.fakeserver import FakeServer, Fault

pytestmark = [pytest.mark.anyio, pytest.mark.slow]

TURNS = 300
KINDS = [
    Fault.status(429, retry_after="0.02"), Fault.status(500), Fault.status(502),
    Fault.status(503), Fault.status(529), Fault.reset(), Fault.refuse(seconds=0.1),
    Fault.cut_midway(after_chunks=2), Fault.stall(after_chunks=2, seconds=0.6),
    Fault.malformed_sse(after_chunks=2), Fault.stream_error(after_chunks=2),
]


def pairing(base_url: str):  # type: ignore[no-untyped-def]
    return parse_pairing(f"""
name = "night"
[dialogue]
opener = "Talk all night."
max_turns = {TURNS}
[retry]
backoff_initial = 0.005
backoff_max = 0.02
[agents.ada]
provider = "openai"
model = "m-openai"
base_url = "{base_url}/v1"
timeout = 0.3
max_tokens = 50
[agents.bo]
provider = "anthropic"
model = "m-anthropic"
base_url = "{base_url}"
api_key_env = "NIGHT_KEY"
timeout = 0.3
max_tokens = 50
""", source="night.toml")


async def test_a_300_turn_run_through_ten_percent_faults_loses_nothing(tmp_path: Path) -> None:
    with FakeServer() as srv:
        srv.fault_rate(0.1, seed=11, kinds=KINDS)
        async with prepared_run(pairing(srv.base_url), out_dir=tmp_path,
                                environ={"NIGHT_KEY": "k"}) as run:
            with anyio.fail_after(120):
                end = await run.session.run()
        faulted = [r for r in srv.requests if r.fault is not None]
        refusals = len(srv.refusals)
    assert end.reason == "max_turns", end.detail
    assert run.transcript is not None
    transcript = read_transcript(run.transcript)
    turns = transcript.turns
    assert [t.index for t in turns] == list(range(1, TURNS + 1))
    assert [t.agent for t in turns[:4]] == ["ada", "bo", "ada", "bo"]
    assert all(t.text.startswith("Reply ") for t in turns)
    retries = [r for r in transcript.records if isinstance(r, Retry)]
    # Every failed attempt is on record, with what failed and how long it waited.
    assert sum(t.attempts - 1 for t in turns) == len(retries)
    # Each faulted request failed one attempt. A refusal fails the attempts that connect while
    # the port is closed, if any do: one that comes after the window (a busy machine) succeeds.
    assert len(retries) >= len(faulted)
    assert len(faulted) + refusals > TURNS // 20
    assert all(r.wait > 0 and r.error and r.message for r in retries)
    kinds = {r.error for r in retries}
    assert {"rate_limited", "server_unavailable", "connection_failed", "stream_interrupted",
            "timed_out"} <= kinds
    assert all(r.matches for r in verify_transcript(transcript))
