"""Full garbage collections while the app runs: between turns, not in the middle of a stream.

Counted with the real collector: an object left in a reference cycle after it reached the oldest
generation is reclaimed only by a full collection, so whether it is still alive says whether one
ran."""

from __future__ import annotations

import gc
import weakref
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from intermodel.engine.events import RunStarted, TextChunk, TurnCompleted, TurnStarted
from intermodel.records import Turn, Usage, now_iso
from intermodel.tui.app import COLLECT_AFTER, IntermodelApp
from intermodel.tui.collector import LONGEST_GAP, SHORTEST_GAP, THAW_GAP, Collector
from tests.conftest import SCRIPTED, PairingFactory
from tests.tui_support import HandClock, IdleSource, until

pytestmark = pytest.mark.anyio


class _Cyclic:
    """Garbage only a full collection reclaims, once it is old: it refers to itself."""

    def __init__(self) -> None:
        self.me = self


def old_cyclic_garbage() -> weakref.ref[_Cyclic]:
    """A cycle that has outlived both younger generations, then was dropped."""
    thing = _Cyclic()
    gc.collect(1)  # survives the young generations (these collections are not full ones)
    gc.collect(1)
    return weakref.ref(thing)


@contextmanager
def counting_full_collections() -> Iterator[list[int]]:
    full: list[int] = []

    def seen(phase: str, info: dict[str, int]) -> None:
        if phase == "stop" and info["generation"] == 2:
            full.append(info["collected"])

    gc.callbacks.append(seen)
    try:
        yield full
    finally:
        gc.callbacks.remove(seen)


def turn(number: int, agent: str) -> Turn:
    return Turn(number, agent, "Done.", usage=Usage(10, 2), latency=1.0, ttft=0.1,
                stop_reason="end_turn", model="scripted", at=now_iso())


def test_the_collector_takes_full_collections_over_and_gives_them_back() -> None:
    before = gc.get_threshold()
    clock = HandClock()
    collector = Collector(clock)
    collector.start()
    try:
        assert gc.get_freeze_count() > 0  # what was alive is out of every walk
        assert gc.get_threshold()[:2] == before[:2]  # the young generations as before
        assert gc.get_threshold()[2] > 1_000_000  # Python starts no full collection itself
        assert not collector.due and not collector.overdue
        clock.now += SHORTEST_GAP
        assert collector.due and not collector.overdue
        clock.now += LONGEST_GAP
        assert collector.overdue
        garbage = old_cyclic_garbage()
        with counting_full_collections() as full:
            collector.collect()
        assert len(full) == 1 and garbage() is None
        assert not collector.due  # counted from the collection just made
    finally:
        collector.stop()
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0
    collector.collect()  # stopped: collects nothing, changes nothing
    assert not collector.due and not collector.overdue


async def test_a_turns_end_collects_what_the_stream_left(make_pairing: PairingFactory) -> None:
    before = gc.get_threshold()
    clock = HandClock()
    source = IdleSource()
    app = IntermodelApp(source, clock=clock, blink=False)
    async with app.run_test() as pilot:
        assert gc.get_threshold()[2] > 1_000_000
        app.apply([RunStarted("r", make_pairing(SCRIPTED), None, now_iso()),
                   TurnStarted(1, "ada", 1, 10)])
        with counting_full_collections() as full:
            garbage = old_cyclic_garbage()
            clock.now += LONGEST_GAP / 2
            for _ in range(3):  # the turn streams: nothing walks the whole heap meanwhile
                app.apply([TextChunk(1, "ada", "word " * 200)])
                await pilot.pause(COLLECT_AFTER * 2)
            assert full == [] and garbage() is not None
            app.apply([TurnCompleted(turn(1, "ada")), TurnStarted(2, "bo", 1, 10)])
            await until(pilot, lambda: garbage() is None)
            assert len(full) == 1

            # A turn that ends soon after the last collection does not pay for another walk.
            garbage = old_cyclic_garbage()
            clock.now += SHORTEST_GAP / 2
            app.apply([TextChunk(2, "bo", "Short."), TurnCompleted(turn(2, "bo"))])
            await pilot.pause(COLLECT_AFTER * 2)
            assert len(full) == 1 and garbage() is not None

            # A turn that never ends is not left to pile up garbage for ever.
            app.apply([TurnStarted(3, "ada", 1, 10)])
            clock.now += LONGEST_GAP
            app.apply([TextChunk(3, "ada", "Still going.")])
            await until(pilot, lambda: garbage() is None)
            assert len(full) == 2
        source.done.set()
        await until(pilot, app.served.is_set)
    assert gc.get_threshold() == before and gc.get_freeze_count() == 0


def test_what_survives_a_turns_end_is_left_out_of_later_walks_until_a_thaw() -> None:
    """The run's records outlive every collection: frozen after the one that found them alive,
    so later ones walk only what came since. Something frozen that later dies in a cycle is
    reclaimed once everything is walked again."""
    clock = HandClock()
    collector = Collector(clock)
    collector.start()
    try:
        thaws = collector.thaws
        thing = _Cyclic()
        garbage = weakref.ref(thing)
        collector.collect()  # a turn's end: `thing` is alive, and frozen
        del thing
        clock.now += THAW_GAP - 1
        with counting_full_collections() as full:
            collector.collect()
        assert len(full) == 1 and garbage() is not None  # the walk left the frozen out
        assert not collector.thaw_due and collector.thaws == thaws
        clock.now += 1
        assert collector.thaw_due
        collector.collect()  # walks everything
        assert collector.thaws == thaws + 1 and garbage() is None
        assert not collector.thaw_due
    finally:
        collector.stop()
    assert gc.get_freeze_count() == 0
