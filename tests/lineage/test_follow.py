"""Following a transcript as it is written: the growing reader, and the events a `Follow`
publishes while a real transcript writer appends records in another task."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from itertools import pairwise
from pathlib import Path

import anyio
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from intermodel.config import Pairing, Panel, load_config, parse_pairing
from intermodel.engine.events import (
    Event,
    Interjected,
    Notice,
    RunFinished,
    RunStarted,
    TextChunk,
    TurnCompleted,
    TurnStarted,
)
from intermodel.errors import TranscriptInvalid
from intermodel.lineage.follow import Follow, quiet_for
from intermodel.records import Resumption
from intermodel.transcript.reader import GrowingTranscript, read_transcript
from intermodel.transcript.writer import TranscriptWriter
from tests.conftest import SCRIPTED, PairingFactory
from tests.lineage.follow_support import Appender, header_of, line_of, turns_of
from tests.transcripts import at, finished, interjection, turn, write_transcript

pytestmark = pytest.mark.anyio

FAST = {"poll_min": 0.01, "poll_max": 0.05, "pace": 0.05}


def growing_file(tmp_path: Path, make_pairing: PairingFactory, turns: int = 2) -> Path:
    return write_transcript(tmp_path / "run.jsonl", make_pairing(), turns_of(turns))


# -- the growing reader -----------------------------------------------------------------------


def test_complete_lines_are_read_once_and_a_torn_one_waits(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    growing = GrowingTranscript(path)
    assert [r.index for r in growing.poll()] == [1, 2]  # type: ignore[union-attr]
    assert growing.poll() == []
    line = line_of(turns_of(1, first=3)[0])
    with path.open("ab") as file:
        file.write(line[:10])
    assert growing.poll() == [] and growing.pending == line[:10]
    with path.open("ab") as file:
        file.write(line[10:])
    assert [r.index for r in growing.poll()] == [3]  # type: ignore[union-attr]
    assert growing.pending == b""
    assert growing.transcript is not None and len(growing.transcript.turns) == 3


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(cuts=st.lists(st.integers(min_value=0, max_value=10_000), max_size=4))
def test_a_line_written_in_pieces_is_read_whole_whatever_the_cuts(cuts: list[int]) -> None:
    pairing = load_pairing()
    records = [*turns_of(2), interjection(3, ("ada",), "wait ✎ — ünïcode", sent_at=4.5)]
    data = line_of(header_of(pairing)) + b"".join(line_of(r) for r in records)
    bounds = sorted({0, len(data), *(cut % (len(data) + 1) for cut in cuts)})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "run.jsonl"
        path.write_bytes(b"")
        growing = GrowingTranscript(path)
        seen = []
        for start, end in pairwise(bounds):
            with path.open("ab") as file:
                file.write(data[start:end])
            seen += growing.poll()
            written = data[:end]
            assert growing.pending == written[written.rfind(b"\n") + 1:]
        assert seen == records
        assert growing.transcript is not None
        assert growing.transcript.records == read_transcript(path).records


def test_a_line_torn_at_every_byte_offset_is_waited_for(tmp_path: Path) -> None:
    pairing = load_pairing()
    header = line_of(header_of(pairing))
    record = line_of(turn(1, "ada", "zwei Wörter — ✎ and an emoji 🙂", done_at=1.0))
    for data, expected in ((header, []), (record, [turn(1, "ada", "zwei Wörter — ✎ and an "
                                                         "emoji 🙂", done_at=1.0)])):
        for offset in range(len(data)):  # the writer's single write, seen half done
            path = tmp_path / f"torn-{len(data)}-{offset}.jsonl"
            path.write_bytes(b"" if data is header else header)
            growing = GrowingTranscript(path)
            assert growing.poll() == []
            with path.open("ab") as file:
                file.write(data[:offset])
            assert growing.poll() == [] and growing.pending == data[:offset]
            with path.open("ab") as file:
                file.write(data[offset:])
            assert growing.poll() == expected and growing.transcript is not None


def load_pairing() -> Pairing:
    return parse_pairing(SCRIPTED, source="test.toml")


def test_a_garbage_line_is_reported_as_the_whole_file_reader_reports_it(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    growing = GrowingTranscript(path)
    growing.poll()
    with path.open("ab") as file:
        file.write(b'{"kind": "turn", "index": \x01}\n')
    with pytest.raises(TranscriptInvalid) as raised:
        growing.poll()
    with pytest.raises(TranscriptInvalid) as whole:
        read_transcript(path)
    assert str(raised.value) == str(whole.value)
    assert str(raised.value).startswith(f"{path}:4: not valid JSON")
    with pytest.raises(TranscriptInvalid):  # and it stays refused: what follows is not trusted
        growing.poll()


def test_a_turn_recorded_twice_is_refused_across_polls(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    growing = GrowingTranscript(path)
    growing.poll()
    with path.open("ab") as file:
        file.write(line_of(turns_of(1, first=2)[0]))
    with pytest.raises(TranscriptInvalid, match=r":4: turn.index: turn 2 is recorded twice"):
        growing.poll()


def test_a_file_cut_short_is_an_error(tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    growing = GrowingTranscript(path)
    growing.poll()
    os.truncate(path, path.stat().st_size - 5)
    with pytest.raises(TranscriptInvalid, match="cut short while being followed"):
        growing.poll()


async def test_a_resume_that_cuts_off_a_torn_line_is_followed(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    with path.open("ab") as file:
        file.write(b'{"kind":"turn","index":3,"agent":"ada","te')  # the writer died here
    growing = GrowingTranscript(path)
    growing.poll()
    assert growing.pending.startswith(b'{"kind":"turn"')
    writer, cut = TranscriptWriter.reopen(path)  # a later process continues the run
    assert cut == len(growing.pending)
    resumed = Resumption("feedc0ffee00", after_turn=2, max_turns=4, at=at(100))
    await writer.record(resumed)
    writer.close()
    assert growing.poll() == [resumed]


def test_a_grown_copy_put_in_its_place_is_followed_another_file_is_refused(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    growing = GrowingTranscript(path)
    growing.poll()
    copy = tmp_path / "copy.jsonl"  # as rsync or scp brings a newer copy: renamed over it
    copy.write_bytes(path.read_bytes() + line_of(turns_of(1, first=3)[0]))
    copy.replace(path)
    assert [r.index for r in growing.poll()] == [3]  # type: ignore[union-attr]
    other = write_transcript(tmp_path / "other.jsonl", make_pairing(), turns_of(4)[::-1])
    other.replace(path)
    with pytest.raises(TranscriptInvalid, match="replaced by a different file"):
        growing.poll()


def test_only_a_regular_file_is_followed_a_link_to_one_is_one(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    link = tmp_path / "link.jsonl"
    link.symlink_to(growing_file(tmp_path, make_pairing))
    assert len(GrowingTranscript(link).poll()) == 2
    fifo = tmp_path / "fifo.jsonl"
    os.mkfifo(fifo)
    with pytest.raises(TranscriptInvalid, match=r"not a regular file \(it is a FIFO"):
        GrowingTranscript(fifo).poll()
    with pytest.raises(TranscriptInvalid, match="cannot read it"):
        GrowingTranscript(tmp_path / "missing.jsonl").poll()


def test_quiet_spells_in_words() -> None:
    assert [quiet_for(s) for s in (-1, 8, 600, 3600, 3900)] == \
        ["0 s", "8 s", "10 min", "1 h", "1 h 5 min"]


# -- following --------------------------------------------------------------------------------


async def follow_while(follow: Follow, write: Callable[[], object], *,
                       timeout: float = 20) -> list[Event]:
    """Run `follow` while `write` (a coroutine function) appends; every event it published."""
    subscription = follow.subscribe()
    seen: list[Event] = []
    with anyio.fail_after(timeout):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow.run)
            tg.start_soon(write)  # type: ignore[arg-type]
            async for event in subscription:
                seen.append(event)
    return seen


def completed(events: list[Event]) -> list[int]:
    return [e.turn.index for e in events if isinstance(e, TurnCompleted)]


async def test_history_at_once_then_each_new_turn_then_the_end(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED.replace("max_turns = 4", "max_turns = 6"))
    path = tmp_path / "run.jsonl"
    appender = Appender(path, pairing)
    await appender.header()
    await appender.add(*turns_of(2))
    follow = Follow(GrowingTranscript(path), until_end=True, **FAST)
    history_published = anyio.Event()
    shown: list[int] = []

    async def write() -> None:
        await history_published.wait()
        for record in turns_of(4, first=3):
            await appender.add(record)
            with anyio.fail_after(10):
                while follow.last_turn < record.index:  # noqa: ASYNC110 - watching a counter
                    await anyio.sleep(0.005)
            shown.append(follow.last_turn)
        await appender.add(finished(turns_of(6)))
        appender.close()

    subscription = follow.subscribe()
    seen: list[Event] = []
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(follow.run)
            tg.start_soon(write)
            async for event in subscription:
                seen.append(event)
                if completed(seen) == [1, 2]:
                    history_published.set()
    assert isinstance(seen[0], RunStarted) and seen[0].transcript == str(path)
    assert completed(seen) == [1, 2, 3, 4, 5, 6]
    assert shown == [3, 4, 5, 6]  # each turn published as it was written, not all at the end
    for index in range(1, 7):  # every turn's text, whole, between its start and its completion
        text = "".join(e.text for e in seen if isinstance(e, TextChunk) and e.turn == index)
        assert text == f"{'ada' if index % 2 else 'bo'} says line {index}."
    assert [e.max_turns for e in seen if isinstance(e, TurnStarted)] == [6] * 6
    assert isinstance(seen[-1], RunFinished) and seen[-1].end.reason == "max_turns"
    assert follow.end is not None and follow.turns == 6


async def test_a_header_not_yet_written_is_waited_for(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = tmp_path / "run.jsonl"
    appender = Appender(path, make_pairing())
    follow = Follow(GrowingTranscript(path), until_end=True, **FAST)
    assert "waiting for the transcript's first record" in follow.status()

    async def write() -> None:
        header = line_of(header_of(make_pairing()))
        appender.raw(header[:20])  # a run just starting: its header half written
        await anyio.sleep(0.1)
        appender.raw(header[20:])
        await appender.add(*turns_of(1))
        await appender.add(finished(turns_of(1)))

    events = await follow_while(follow, write)
    assert isinstance(events[0], RunStarted) and completed(events) == [1]


async def test_an_interjection_typed_during_a_turn_appears_inside_it(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = tmp_path / "run.jsonl"
    appender = Appender(path, make_pairing())
    await appender.header()
    await appender.add(*turns_of(1))
    follow = Follow(GrowingTranscript(path), until_end=True, **FAST)

    async def write() -> None:
        # Typed while turn 2 streamed: addressed from turn 3, written before turn 2's record.
        await appender.add(interjection(3, ("ada",), "slower", sent_at=3.0))
        await anyio.sleep(0.1)
        await appender.add(*turns_of(2, first=2))
        await appender.add(finished(turns_of(3)))

    events = await follow_while(follow, write)
    kinds = [(type(e).__name__, getattr(e, "turn", None)) for e in events
             if isinstance(e, TurnStarted | TurnCompleted | Interjected)]
    position = kinds.index(("Interjected", None))
    assert kinds[position - 1] == ("TurnStarted", 2)
    assert kinds[position + 1][0] == "TurnCompleted"


async def test_a_resume_after_the_end_continues_the_run(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    with path.open("a") as file:  # the first process stopped: its end is written
        file.write(line_of(finished(turns_of(2), reason="interrupted")).decode())
    follow = Follow(GrowingTranscript(path), **FAST)  # the UI's kind: on after an end

    async def write() -> None:
        with anyio.fail_after(10):
            while follow.end is None:  # noqa: ASYNC110 - watching the follower
                await anyio.sleep(0.005)
        writer, _ = TranscriptWriter.reopen(path)
        await writer.record(Resumption("feedc0ffee00", after_turn=2, max_turns=4, at=at(50)))
        for record in turns_of(2, first=3):
            await writer.record(record)
        await writer.record(finished(turns_of(4)))
        writer.close()
        with anyio.fail_after(10):
            while follow.turns < 4 or follow.end is None:  # noqa: ASYNC110
                await anyio.sleep(0.005)
        follow.close()

    events = await follow_while(follow, write)
    ends = [e.end.reason for e in events if isinstance(e, RunFinished)]
    assert ends == ["interrupted", "max_turns"]
    resumed = [e for e in events if isinstance(e, RunStarted) and e.resumed]
    assert len(resumed) == 1 and resumed[0].transcript is None  # the history is not read again
    assert completed(events) == [1, 2, 3, 4]


async def test_a_garbage_line_stops_following_after_what_came_before(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    follow = Follow(GrowingTranscript(path), **FAST)
    seen: list[Event] = []
    failures: list[TranscriptInvalid] = []

    async def run() -> None:
        try:
            await follow.run()
        except TranscriptInvalid as exc:
            failures.append(exc)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(run)
            async for event in follow.subscribe():
                seen.append(event)
                if completed(seen) == [1, 2]:
                    with path.open("ab") as file:
                        file.write(b"not json at all\n")
    assert [str(f) for f in failures] == [f"{path}:4: not valid JSON (Expecting value at "
                                          "column 1)"]
    assert completed(seen) == [1, 2]
    notice = seen[-1]
    assert isinstance(notice, Notice) and notice.message.startswith("following stopped: ")
    assert follow.status().startswith(f"following stopped: {path}:4: not valid JSON")


async def test_a_quiet_writer_is_described_not_given_up_on(
        tmp_path: Path, make_pairing: PairingFactory) -> None:
    path = growing_file(tmp_path, make_pairing)
    now = [1000.0]
    follow = Follow(GrowingTranscript(path), clock=lambda: now[0], stale=600, **FAST)
    seen: list[Event] = []

    async def watch() -> None:
        async for event in follow.subscribe():
            seen.append(event)

    with anyio.fail_after(10):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            tg.start_soon(follow.run)
            while follow.turns < 2:  # noqa: ASYNC110 - watching the follower
                await anyio.sleep(0.005)
            os.utime(path)  # written just now, as far as the follower can tell
            now[0] += 12
            assert "waiting for turn 3 · last record" in follow.status()
            now[0] += 700
            while not any(isinstance(e, Notice) for e in seen):  # noqa: ASYNC110
                await anyio.sleep(0.01)
            assert "no new record for" in follow.status()
            assert follow.end is None  # still following
            follow.close()
    notice = next(e for e in seen if isinstance(e, Notice))
    assert notice.message.startswith("no new record for 1") and "still following" in notice.message


async def test_a_panel_is_followed_answer_by_answer(tmp_path: Path) -> None:
    config = tmp_path / "panel.toml"
    config.write_text('name = "voices"\n[panel]\nprompt = "What now?"\n'
                      '[agents.ann]\nprovider = "scripted"\n[agents.ann.script]\nreplies = ["a"]\n'
                      '[agents.ben]\nprovider = "scripted"\n[agents.ben.script]\nreplies = ["b"]\n')
    panel = load_config(config)
    assert isinstance(panel, Panel)
    path = tmp_path / "panel.jsonl"
    appender = Appender(path, panel)
    await appender.header()
    answers = [turn(2, "ben", "ben answers.", done_at=3.0), turn(1, "ann", "ann answers.",
                                                                  done_at=4.0)]
    await appender.add(answers[0])
    follow = Follow(GrowingTranscript(path), until_end=True, **FAST)
    assert follow.growing.poll() is not None

    async def write() -> None:
        await anyio.sleep(0.1)
        await appender.add(answers[1])
        await appender.add(finished(answers, reason="complete"))

    events = await follow_while(follow, write)
    assert isinstance(events[0], RunStarted) and events[0].spec.kind == "panel"
    assert [(e.turn.agent, e.turn.text) for e in events if isinstance(e, TurnCompleted)] == \
        [("ben", "ben answers."), ("ann", "ann answers.")]
    assert [e.max_turns for e in events if isinstance(e, TurnStarted)] == [2, 2]
    assert isinstance(events[-1], RunFinished) and events[-1].end.reason == "complete"
