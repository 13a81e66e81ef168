"""The turn producer's per-token path: keys removed from the stream wherever they are split, the
text subscribers see equal to the text recorded, and the first token let out at once."""

from __future__ import annotations

import math
from collections.abc import AsyncGenerator

import anyio
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from intermodel.config.model import RetryConfig
from intermodel.config.request import Message, Request
from intermodel.engine.bus import EventBus
from intermodel.engine.events import Event, TextChunk, ThinkingChunk
from intermodel.engine.retry import RetryPolicy
from intermodel.engine.turns import TurnProducer
from intermodel.providers.base import (
    Finished,
    ProviderBase,
    StreamEvent,
    TextDelta,
    ThinkingDelta,
)
from intermodel.records import Turn
from intermodel.security.secrets import MIN_FRAGMENT, Redactor, remember_secrets

Delta = TextDelta | ThinkingDelta


class Burst(ProviderBase):
    """A server that sends its whole reply at once: every delta without a pause, then the end.
    `sent` counts the deltas handed over so far."""

    name = "scripted"

    def __init__(self, deltas: list[Delta]) -> None:
        self.deltas = deltas
        self.sent = 0

    async def stream(self, request: Request) -> AsyncGenerator[StreamEvent, None]:
        for delta in self.deltas:
            self.sent += 1
            yield delta
        yield Finished("stop", "m")

    async def aclose(self) -> None:
        pass


async def produce(provider: Burst, redactor: Redactor, bus: EventBus) -> Turn:
    async def emit(event: Event) -> None:
        bus.publish(event)

    async def fit(refused: bool) -> Request:
        return Request(model="m", system="", messages=(Message("user", "Hi"),))

    producer = TurnProducer(emit=emit, publish=bus.publish, retry=RetryPolicy(RetryConfig()),
                            redact=redactor, deadline=lambda: math.inf,
                            stop_reason=lambda: None)
    turn, _ = await producer.produce(1, "ada", provider, fit, 1)
    return turn


async def shown(deltas: list[Delta], redactor: Redactor) -> tuple[str, str, Turn]:
    """The text and the thinking a subscriber was shown, and the turn recorded."""
    bus = EventBus(redactor)
    subscription = bus.subscribe()
    turn = await produce(Burst(deltas), redactor, bus)
    bus.close()
    text, thinking = [], []
    async for event in subscription:
        if isinstance(event, TextChunk):
            text.append(event.text)
        elif isinstance(event, ThinkingChunk):
            thinking.append(event.text)
    return "".join(text), "".join(thinking), turn


# -- a key split anywhere --------------------------------------------------------------------

# Keys from an alphabet the prose around them never uses, so that only the key itself can put
# its beginning in front of a subscriber.
keys = st.text("ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_", min_size=MIN_FRAGMENT + 1, max_size=48)
prose = st.text("abcdefghijklmnopqrstuvwxyz .,!?<>\n…", max_size=120)


def split(text: str, points: list[int]) -> list[str]:
    bounds = sorted({min(p, len(text)) for p in points})
    return [text[a:b] for a, b in zip([0, *bounds], [*bounds, len(text)], strict=True)]


@settings(max_examples=300, deadline=None)
@given(key_list=st.lists(keys, min_size=1, max_size=3), before=prose, after=prose,
       points=st.lists(st.integers(0, 250), max_size=40), end=st.integers(0, 300),
       thinking_until=st.integers(0, 300))
def test_a_key_split_across_any_chunks_never_reaches_a_subscriber(
        key_list: list[str], before: str, after: str, points: list[int], end: int,
        thinking_until: int) -> None:
    """A reply echoing each key, split into any number of chunks at any points, thinking first
    and text after (or either alone), the stream ending anywhere: neither stream a subscriber
    sees holds any key's first MIN_FRAGMENT characters, and what it sees is what is recorded."""
    # A key whose beginning recurs inside it ("000000000") cannot be told from its own tail,
    # which a thinking/text switch may leave at the start of a stream: real keys are random.
    assume(all(key[:MIN_FRAGMENT] not in key[1:] for key in key_list))
    reply = (before + "".join(key + after for key in key_list))[:end]
    pieces = [p for p in split(reply, points) if p]
    deltas: list[Delta] = []
    at = 0
    for piece in pieces:
        deltas.append(ThinkingDelta(piece) if at < thinking_until else TextDelta(piece))
        at += len(piece)
    text, thinking, turn = anyio.run(shown, deltas, Redactor(key_list))
    for key in key_list:
        assert key[:MIN_FRAGMENT] not in text
        assert key[:MIN_FRAGMENT] not in thinking
    assert (text, thinking) == (turn.text, turn.thinking)


@settings(max_examples=200, deadline=None)
@given(text=prose, points=st.lists(st.integers(0, 150), max_size=30), key=keys)
def test_text_without_a_key_comes_through_unchanged(text: str, points: list[int],
                                                    key: str) -> None:
    deltas: list[Delta] = [TextDelta(p) for p in split(text, points) if p]
    shown_text, _, turn = anyio.run(shown, deltas, Redactor([key]))
    assert shown_text == turn.text == text


# -- the stream redactor, against its definition -----------------------------------------------

def longest_pending(text: str, secrets: tuple[str, ...]) -> int:
    """The longest end of `text` that is a proper beginning of a secret (by brute force)."""
    return max((n for secret in secrets for n in range(1, min(len(secret), len(text) + 1))
                if text.endswith(secret[:n])), default=0)


def by_definition(redactor: Redactor, pieces: list[str]) -> list[str]:
    """What a stream redactor gives for each piece, then for the end: every whole secret
    replaced (longest first), the longest pending beginning of one held back, what is held at
    the end redacted as a possibly cut-off key."""
    secrets = redactor.secrets
    out, held = [], ""
    for piece in pieces:
        text = held + piece
        for secret in secrets:
            text = text.replace(secret, Redactor.MARK)
        hold = longest_pending(text, secrets)
        held = text[len(text) - hold:] if hold else ""
        out.append(text[:len(text) - hold])
    out.append(redactor.known(held) if held else "")
    return out


# Small alphabets: secrets that overlap each other and themselves ("abab", "aab"...), and text
# full of their beginnings.
overlapping = st.text("ab-", min_size=6, max_size=12)
noisy = st.text("ab-c", max_size=60)


@settings(max_examples=500, deadline=None)
@given(secrets=st.lists(overlapping, min_size=1, max_size=4), text=noisy,
       points=st.lists(st.integers(0, 60), max_size=20))
def test_the_stream_redactor_does_what_its_definition_says(secrets: list[str], text: str,
                                                           points: list[int]) -> None:
    redactor = Redactor(secrets)
    pieces = split(text, points)
    scrub = redactor.stream()
    got = [scrub.feed(piece) for piece in pieces] + [scrub.flush()]
    assert got == by_definition(redactor, pieces)


def test_a_key_resolved_while_a_reply_streams_is_removed_from_the_rest() -> None:
    scrub = Redactor().stream()
    key = "sk-" + "resolved-mid-stream-0a1b2c3d4e5f"  # built here: no key-shaped literal in git
    assert scrub.feed("before ") == "before "
    remember_secrets([key])  # another run of the process resolves its key
    assert scrub.feed(f"and {key[:10]}") == "and "
    assert scrub.feed(f"{key[10:]} after") == f"{Redactor.MARK} after"


# -- the first token ---------------------------------------------------------------------------

@pytest.mark.anyio
@pytest.mark.parametrize("kind", [TextDelta, ThinkingDelta])
async def test_a_subscriber_gets_the_first_token_before_the_rest_of_a_burst(
        kind: type[Delta]) -> None:
    """A reply that arrives all at once: a subscriber that keeps up is shown its first piece
    while the provider has handed over that piece alone, not once the burst is parsed whole."""
    provider = Burst([kind(f"piece {n} ") for n in range(50)])
    bus = EventBus()
    subscription = bus.subscribe()
    sent_at_first: list[int] = []

    async def watch() -> None:
        async for event in subscription:
            if isinstance(event, TextChunk | ThinkingChunk):
                sent_at_first.append(provider.sent)
                return

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        turn = await produce(provider, Redactor(), bus)
    assert sent_at_first == [1]
    assert (turn.text or turn.thinking) == "".join(f"piece {n} " for n in range(50))
