"""Hostile servers that stall, drip, never end or never close, through the real SDKs over real
loopback HTTP: each ends as a recorded retry or a kept, capped turn; none hangs a run or costs a
completed reply."""

from __future__ import annotations

import json
import time
from pathlib import Path

import anyio
import pytest

from intermodel.engine.events import TextChunk
from intermodel.engine.prepare import prepared_run
from intermodel.engine.turns import DISCARD_KEPT
from intermodel.records import Discard, Retry
from intermodel.transcript.schema import Run, read_record
from tests.fakeserver import FakeServer, Fault, Reply, ScriptedResponder
from tests.fakeserver.sse import ENDLESS_PIECE

from .server_pairings import (
    ENV,
    PROTOCOLS,
    notes,
    pairing_for,
    run_to_end,
    transcript_of,
)

pytestmark = pytest.mark.anyio


# -- stalls and deadlines ------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_dripping_stream_is_a_stall_and_is_retried(server: FakeServer, tmp_path: Path,
                                                           protocol: str) -> None:
    # A byte every 0.3 s: no read ever waits the 1 s timeout, but no event completes either.
    server.faults.push(Fault.drip(after_chunks=3, seconds=0.3))
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert (retry.error, retry.message) == ("timed_out",
                                            "no complete event for 1 s (the server stalled)")
    assert retry.partial_chars > 0
    [turn] = transcript.turns
    assert turn.attempts == 2 and turn.text.startswith("Reply 2")


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_reply_slower_than_its_deadline_is_retried(server: FakeServer, tmp_path: Path,
                                                           protocol: str) -> None:
    # Every event comes well within the stall timeout, but the whole reply would take 6 s.
    server.chunk_delay = 0.1
    server.responder = ScriptedResponder([Reply(" ".join(["word"] * 60)), Reply("Short.")])
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1,
                          extra_a="timeout = 2\nmax_reply_seconds = 1\n")
    started = time.perf_counter()
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    assert time.perf_counter() - started < 5
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert (retry.error, retry.message) == (
        "timed_out", "the reply took longer than 1 s (max_reply_seconds)")
    assert transcript.turns[0].text == "Short."


async def test_the_context_too_long_check_has_a_deadline_too(server: FakeServer,
                                                             tmp_path: Path) -> None:
    # An empty stream makes the provider ask again, unstreamed; that answer drips.
    server.faults.push(Fault.empty_stream(), Fault.drip(seconds=0.3))
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1)
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert retry.error == "timed_out"
    posts = [r for r in server.requests if r.method == "POST"]
    assert [r.stream for r in posts] == [True, False, True]


async def test_an_endless_unstreamed_answer_is_read_no_further_than_64_kib(
        server: FakeServer, tmp_path: Path) -> None:
    # The unstreamed request that explains an empty stream gets a body that never ends.
    server.faults.push(Fault.empty_stream(), Fault.endless())
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1, extra_a="timeout = 5\n")
    started = time.perf_counter()
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    assert time.perf_counter() - started < 4  # cut at 64 KiB, not by the 5 s stall watchdog
    [retry] = [r for r in transcript.records if isinstance(r, Retry)]
    assert retry.error == "stream_interrupted" and "malformed" in retry.message


# -- endless replies -----------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_an_endless_reply_is_cut_and_kept_as_a_length_stop(server: FakeServer,
                                                                 tmp_path: Path,
                                                                 protocol: str) -> None:
    server.faults.push(Fault.endless())
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1)  # max_tokens = 64
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    [turn] = transcript.turns
    assert (turn.stop_reason, turn.client_stop, turn.attempts) == ("length", True, 1)
    assert 4096 < len(turn.text) <= 4096 + len(ENDLESS_PIECE)  # the floor of the cap, 4096
    assert turn.text.startswith(ENDLESS_PIECE * 2)
    [note] = [n for n in notes(transcript.records) if "turn 1" in n]
    assert note == ("ada, turn 1: the reply passed 4,096 characters without finishing; "
                    "intermodel cut it there (stop_reason length, client_stop)")
    assert not any(isinstance(r, Retry) for r in transcript.records)


async def test_the_cap_follows_max_tokens_and_max_reply_chars(server: FakeServer,
                                                              tmp_path: Path) -> None:
    server.faults.push(Fault.endless(), Fault.endless())
    server.n_ctx = 1_000_000  # room for long replies in the agents' views
    pairing = pairing_for(server.base_url, "openai", "openai", turns=2,
                          extra_a="max_tokens = 500\n",  # 32 x 500 = 16,000 characters
                          extra_b="max_tokens = 500\nmax_reply_chars = 2000\n")
    _, transcript = await run_to_end(pairing, tmp_path)
    first, second = transcript.turns
    assert 16_000 < len(first.text) <= 16_000 + len(ENDLESS_PIECE)
    assert 2_000 < len(second.text) <= 2_000 + len(ENDLESS_PIECE)
    assert first.client_stop and second.client_stop


async def test_a_server_length_stop_is_not_a_client_stop(server: FakeServer,
                                                         tmp_path: Path) -> None:
    server.responder = ScriptedResponder([Reply("Cut short", stop_reason="length")])
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1)
    _, transcript = await run_to_end(pairing, tmp_path)
    [turn] = transcript.turns
    assert (turn.stop_reason, turn.client_stop) == ("length", False)
    records = [json.loads(line) for line in transcript.path.read_text().splitlines()]
    assert [r["client_stop"] for r in records if r["kind"] == "turn"] == [False]


async def test_a_discarded_reply_keeps_a_bounded_prefix_and_its_length(server: FakeServer,
                                                                       tmp_path: Path) -> None:
    server.faults.push(Fault.endless())
    server.n_ctx = 1_000_000
    pairing = pairing_for(server.base_url, "openai", "openai", turns=1,
                          extra_a="max_tokens = 100000\n")  # a cap far away: 3.2 M characters
    async with prepared_run(pairing, out_dir=tmp_path, environ=ENV) as run:
        subscription = run.session.subscribe()

        async def stop_past(chars: int) -> None:
            seen = 0
            while await subscription.wait():
                for event in subscription.drain():
                    if isinstance(event, TextChunk):
                        seen += len(event.text)
                if seen > chars:
                    run.session.controls.stop(now=True)
                    return

        async with anyio.create_task_group() as tg:
            tg.start_soon(stop_past, 3 * DISCARD_KEPT)
            with anyio.fail_after(15):
                end = await run.session.run()
    assert end.reason == "stopped"
    [discard] = [r for r in transcript_of(run.transcript).records if isinstance(r, Discard)]
    assert len(discard.text) == DISCARD_KEPT
    assert discard.text_chars is not None and discard.text_chars > 3 * DISCARD_KEPT
    assert (discard.thinking, discard.thinking_chars) == ("", 0)


def test_a_discard_written_before_lengths_were_kept_still_reads() -> None:
    old = {"kind": "discard", "turn": 3, "agent": "bo", "reason": "interrupted",
           "text": "half a rep", "thinking": "", "at": "2026-11-26T19:30:55.647Z"}
    discard = read_record(old, Run(agents=("ada", "bo")))
    assert isinstance(discard, Discard)
    assert (discard.text, discard.text_chars, discard.thinking_chars) == ("half a rep", None, None)


# -- a finished reply on a connection that stays open ---------------------------------------------


@pytest.mark.parametrize("usage", [True, False], ids=["with-usage", "no-usage"])
@pytest.mark.parametrize("protocol", PROTOCOLS)
async def test_a_finished_reply_is_complete_though_the_connection_stays_open(
        server: FakeServer, tmp_path: Path, protocol: str, usage: bool) -> None:
    server.faults.push(Fault.linger(usage=usage))
    pairing = pairing_for(server.base_url, protocol, protocol, turns=1,
                          extra_a="timeout = 10\n")
    started = time.perf_counter()
    end, transcript = await run_to_end(pairing, tmp_path)
    assert end.reason == "max_turns"
    assert time.perf_counter() - started < 4  # not the 10 s read timeout
    [turn] = transcript.turns
    assert turn.attempts == 1 and turn.text.startswith("Reply 1")
    assert not any(isinstance(r, Retry) for r in transcript.records)
    has_counts = usage or protocol == "anthropic"  # Anthropic's usage comes with the stop
    assert (turn.usage.output_tokens is not None) == has_counts
