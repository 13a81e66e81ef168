"""The event-stream reader under the SDK providers (`providers.wire`): the SSE specification's
rules for whatever bytes a server sends, however they are split between reads; the same events as
the SDKs' own decoder on the streams both read; bounded memory for a line that never ends."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from itertools import pairwise

import anyio
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from openai._streaming import SSEDecoder

from intermodel.errors import ProviderBroken
from intermodel.providers.wire import (
    MAX_EVENT,
    ServerEvent,
    json_object,
    loose_text,
    member,
    server_events,
    text_member,
)


async def _body(chunks: list[bytes]) -> AsyncIterator[bytes]:
    for chunk in chunks:
        yield chunk


def read(chunks: list[bytes]) -> list[ServerEvent]:
    async def main() -> list[ServerEvent]:
        return [event async for event in server_events(_body(chunks))]

    return anyio.run(main)


def split(data: bytes, cuts: list[int]) -> list[bytes]:
    """`data` cut at the given offsets (any, in any order, repeated)."""
    points = sorted({0, len(data), *(c % (len(data) + 1) for c in cuts)})
    return [data[a:b] for a, b in pairwise(points)] or [b""]


def reference(text: str) -> list[ServerEvent]:
    """The WHATWG "interpreting an event stream" algorithm, line by line over the whole text,
    written for clarity: what the reader must agree with."""
    text = text.removeprefix("\ufeff")
    lines = re.split(r"\r\n|\r|\n", text)
    lines.pop()  # after the last line ending: an incomplete line, never processed
    events: list[ServerEvent] = []
    name, data = "", ""
    for line in lines:
        if line == "":
            if data:
                events.append((name, data.removesuffix("\n")))
            name, data = "", ""
            continue
        if line.startswith(":"):
            continue
        field, colon, value = line.partition(":")
        if colon and value.startswith(" "):
            value = value[1:]
        if field == "data":
            data += value + "\n"
        elif field == "event":
            name = value
    return events


# Line content: any text without a line ending; colons and leading spaces are the interesting part.
_VALUE = st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\r\n"),
                 max_size=12) | st.sampled_from(["", " ", ":", " x", "  two", "[DONE]", "{}"])
_LINE = st.one_of(
    st.builds(lambda v: "data:" + v, _VALUE),
    st.builds(lambda v: "data: " + v, _VALUE),
    st.builds(lambda v: "event:" + v, _VALUE),
    st.builds(lambda v: "event: " + v, _VALUE),
    st.builds(lambda v: ":" + v, _VALUE),  # a comment
    st.sampled_from(["", "", "", "data", "event", "id: 7", "retry: 10", "retry: x", "id",
                     "unknown: field", "Data: case matters", " data: leading space"]),
)
_ENDING = st.sampled_from(["\n", "\r\n", "\r"])


@st.composite
def streams(draw: st.DrawFn) -> str:
    lines = draw(st.lists(st.tuples(_LINE, _ENDING), max_size=30))
    text = "".join(line + ending for line, ending in lines)
    if draw(st.booleans()):
        text += draw(_LINE)  # an unfinished last line
    return ("\ufeff" if draw(st.booleans()) else "") + text


@settings(max_examples=400, deadline=None)
@given(streams(), st.lists(st.integers(min_value=0), max_size=12))
def test_the_reader_follows_the_specification_however_the_bytes_are_split(
        text: str, cuts: list[int]) -> None:
    assert read(split(text.encode(), cuts)) == reference(text)


@st.composite
def well_formed(draw: st.DrawFn) -> str:
    """What a real server sends: events of a name and one or more data lines, comments between
    them, one kind of line ending throughout."""
    ending = draw(_ENDING)
    out = []
    for _ in range(draw(st.integers(0, 8))):
        lines = []
        if draw(st.booleans()):
            lines.append("event: " + draw(st.text(st.characters(
                blacklist_categories=("Cs", "Zl", "Zp", "Cc")), max_size=8)))
        lines += ["data: " + v for v in draw(st.lists(_VALUE, min_size=1, max_size=3))]
        if draw(st.booleans()):
            lines.insert(draw(st.integers(0, len(lines))), ": keep-alive")
        out.append(ending.join(lines) + ending + ending)
    return "".join(out)


@settings(max_examples=200, deadline=None)
@given(well_formed(), st.lists(st.integers(min_value=0), max_size=8))
def test_the_reader_gives_what_the_sdks_decoder_gives(text: str, cuts: list[int]) -> None:
    async def sdk() -> list[ServerEvent]:
        return [(sse.event or "", sse.data)
                async for sse in SSEDecoder().aiter_bytes(_body(split(text.encode(), cuts)))]

    # Values with the characters Python's str.splitlines breaks at (which the SDK's line
    # decoder may) are compared through the specification only.
    if re.search(r"[\x0b\x0c\x1c-\x1e\x85\u2028\u2029]", text):
        return
    assert read(split(text.encode(), cuts)) == anyio.run(sdk)


def test_a_crlf_split_between_reads_is_one_line_ending() -> None:
    # Were the LF taken for a line of its own, the blank line would end the event early.
    assert read([b"data: a\r", b"\ndata: b\r\n\r\n"]) == [("", "a\nb")]
    assert read([b"data: a\r", b"\r", b"\n"]) == [("", "a")]


def test_an_event_is_given_as_soon_as_its_blank_line_arrives() -> None:
    async def main() -> list[str]:
        seen: list[str] = []
        sent = anyio.Event()

        async def body() -> AsyncIterator[bytes]:
            yield b"event: a\ndata: 1\n\n"
            await sent.wait()  # the reader must not need this read to give the first event
            yield b"data: 2\r"

        async for _, data in server_events(body()):
            seen.append(data)
            sent.set()
        return seen

    assert anyio.run(main) == ["1"]  # a CR-ended stream too: "2" ends with the body (no blank)


def test_a_character_split_between_reads_arrives_whole() -> None:
    text = "data: café ☕\n\n".encode()
    cut = text.index("☕".encode()) + 1
    assert read([text[:cut], text[cut:]]) == [("", "café ☕")]


@pytest.mark.parametrize("chunks", [[b"data: caf\xc3 \xff\n\n"], [b"data: caf\xc3", b"(\n\n"]])
def test_bytes_that_are_not_utf8_are_refused(chunks: list[bytes]) -> None:
    with pytest.raises(UnicodeDecodeError):
        read(chunks)


def test_a_line_that_never_ends_is_refused_before_it_fills_memory() -> None:
    piece = b"x" * 2**20
    with pytest.raises(ProviderBroken, match="more than 16 MiB"):
        read([b"data: ", *[piece] * (MAX_EVENT // len(piece) + 1), b"\n\n"])


def test_an_event_of_endless_data_lines_is_refused() -> None:
    line = b"data: " + b"y" * 2**20 + b"\n"
    with pytest.raises(ProviderBroken, match="more than 16 MiB"):
        read([line] * (MAX_EVENT // 2**20 + 1) + [b"\n"])


def test_payloads_must_be_objects_and_text_must_be_text() -> None:
    assert json_object('{"a": [1]}') == {"a": [1]}
    for data in ("[1]", '"text"', "3", "null"):
        with pytest.raises(ProviderBroken, match="not a JSON object"):
            json_object(data)
    assert member({"a": 1}, "a") == 1
    assert member([1], "a") is None and member(None, "a") is None
    assert text_member({"t": "x"}, "t") == "x"
    assert text_member({"t": None}, "t") is None and text_member("t", "t") is None
    with pytest.raises(ProviderBroken, match="int where the text of 't' belongs"):
        text_member({"t": 4}, "t")
    assert loose_text({"m": "x"}, "m") == "x"
    assert loose_text({"m": 4}, "m") is None and loose_text([1], "m") is None
