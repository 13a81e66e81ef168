"""A lagging subscriber's chunks, merged: whatever the interleaving of streams, kinds and other
events, and whenever the subscriber takes what is queued, it gets the same text in the same
order, and no chunk crosses another event."""

from __future__ import annotations

from itertools import groupby

import anyio
from hypothesis import given, settings
from hypothesis import strategies as st

from intermodel.engine.bus import EventBus
from intermodel.engine.events import Event, Paused, TextChunk, ThinkingChunk

# A step: publish a chunk (stream, kind, text), publish another event, take one queued event,
# or take everything queued.
chunk = st.tuples(st.just("chunk"), st.sampled_from([(1, "ada"), (1, "bo"), (2, "ada")]),
                  st.sampled_from([TextChunk, ThinkingChunk]), st.text("abc", min_size=1,
                                                                       max_size=3))
steps = st.lists(st.one_of(chunk, st.just(("other",)), st.just(("take",)),
                           st.just(("drain",))), max_size=80)


def runs_of(events: list[Event]) -> dict[tuple[int, str], list[tuple[type, str]]]:
    """Each stream's pieces, consecutive ones of a kind joined: what merging may not change."""
    pieces: dict[tuple[int, str], list[tuple[type, str]]] = {}
    for event in events:
        if isinstance(event, TextChunk | ThinkingChunk):
            pieces.setdefault((event.turn, event.agent), []).append((type(event), event.text))
    return {key: [(kind, "".join(t for _, t in run)) for kind, run in groupby(items,
                                                                              lambda p: p[0])]
            for key, items in pieces.items()}


def between_others(events: list[Event]) -> list[list[Event]]:
    """The events split at every event that is not a chunk."""
    parts: list[list[Event]] = [[]]
    for event in events:
        if isinstance(event, TextChunk | ThinkingChunk):
            parts[-1].append(event)
        else:
            parts.append([])
    return parts


async def delivered(plan: list[tuple[object, ...]]) -> tuple[list[Event], list[Event]]:
    bus = EventBus()
    subscription = bus.subscribe()
    published: list[Event] = []
    got: list[Event] = []
    for step in plan:
        if step[0] == "chunk":
            (turn, agent), kind, text = step[1], step[2], step[3]
            event: Event = kind(turn, agent, text)  # type: ignore[operator]
        elif step[0] == "other":
            event = Paused()
        elif step[0] == "take":
            if subscription._queue:
                got.append(await subscription.__anext__())
            continue
        else:
            got.extend(subscription.drain())
            continue
        published.append(event)
        bus.publish(event)
    bus.close()
    got.extend([event async for event in subscription])
    return published, got


@settings(max_examples=300, deadline=None)
@given(plan=steps)
def test_merging_keeps_every_streams_text_and_order(plan: list[tuple[object, ...]]) -> None:
    published, got = anyio.run(delivered, plan)
    sent_parts, got_parts = between_others(published), between_others(got)
    assert len(got_parts) == len(sent_parts)  # every other event, once, in order
    for sent, received in zip(sent_parts, got_parts, strict=True):
        assert runs_of(received) == runs_of(sent)


def test_a_chunk_after_its_merge_was_delivered_starts_a_new_one() -> None:
    """The merge a chunk last joined is delivered while another stream's is still queued: the
    next chunk of the first stream must not join the delivered one (its text would be lost)."""
    plan: list[tuple[object, ...]] = [
        ("other",), ("chunk", (1, "ada"), TextChunk, "a"), ("chunk", (1, "bo"), TextChunk, "b"),
        ("chunk", (1, "ada"), TextChunk, "c"), ("take",), ("take",),
        ("chunk", (1, "ada"), TextChunk, "d"),
    ]
    published, got = anyio.run(delivered, plan)
    assert runs_of(got) == runs_of(published) == {(1, "ada"): [(TextChunk, "acd")],
                                                  (1, "bo"): [(TextChunk, "b")]}
