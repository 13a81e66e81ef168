"""The sources the screen watches, steered through the `Source` protocol alone."""

from __future__ import annotations

from functools import partial
from pathlib import Path

import anyio
import pytest

from intermodel.engine.bus import Subscription
from intermodel.engine.events import TextChunk
from intermodel.engine.prepare import prepared_run
from intermodel.transcript.reader import read_transcript
from intermodel.tui.sources import Capability, LiveSource, ReplaySource, Source
from tests.conftest import PairingFactory
from tests.fakes import Gate, gated_scripted
from tests.transcripts import finished, turn, write_transcript

pytestmark = pytest.mark.anyio


async def test_closing_a_live_source_cancels_its_run_and_the_transcript_still_ends(
        make_pairing: PairingFactory, tmp_path: Path) -> None:
    gate = Gate()  # never opened: ada's first turn streams until the source is closed
    source: Source = LiveSource(partial(prepared_run, make_pairing(), out_dir=tmp_path,
                                        provider_factory=gated_scripted(gate)))
    out_dir = anyio.Path(tmp_path)
    streaming = anyio.Event()

    async def pump(subscription: Subscription) -> None:
        while await subscription.wait():
            if any(isinstance(e, TextChunk) for e in subscription.drain()):
                streaming.set()

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(source.serve, pump)
            await streaming.wait()
            source.close()
    [path] = [p async for p in out_dir.glob("*.jsonl")]
    transcript = read_transcript(Path(path))
    assert transcript.end is not None and transcript.end.reason == "stopped"
    assert transcript.turns == []  # the turn under way was cut off, not recorded as complete


async def test_a_live_source_drops_commands_until_its_run_is_prepared(
        make_pairing: PairingFactory) -> None:
    source = LiveSource(partial(prepared_run, make_pairing(), record=False))
    assert Capability.INTERJECT in source.capabilities
    source.pause()
    source.step()
    source.stop(now=True)
    assert source.interject("hello", "both") is False  # so the screen can say it was not sent


async def test_a_replay_ignores_what_it_cannot_do(make_pairing: PairingFactory,
                                                  tmp_path: Path) -> None:
    records = [turn(1, "ada", "ada says hello.", done_at=1.0)]
    path = write_transcript(tmp_path / "run.jsonl", make_pairing(), [*records, finished(records)])
    source = ReplaySource(read_transcript(path), speed=2)
    assert source.capabilities == {Capability.SEEK, Capability.SPEED}
    assert source.interject("hello", "both") is False
    source.step()
    source.extend(2)
    source.scale_speed(4)
    assert source.playback.speed == 8 and source.playback.total_turns == 1
