"""The scripted provider's `when` replies: chosen by what the agent was last sent, so one scripted
agent answers different messages differently (a judge that reads what it codes)."""

from __future__ import annotations

import anyio
import pytest

from intermodel.config import parse_pairing
from intermodel.config.request import Message, Request
from intermodel.errors import BadRequest, ConfigError
from intermodel.providers.base import TextDelta
from intermodel.providers.scripted import Pacer, ScriptedProvider

PAIRING = """
[dialogue]
opener = "Hello."
max_turns = 2
[agents.ada]
provider = "scripted"
[agents.ada.script]
replies = ["Fallback {reply}."]
[agents.ada.script.when]
"tides" = "The sea, {partner}."
"As an AI" = "Deflecting."
"the" = "Only when nothing before it is found."
[agents.bo]
provider = "scripted"
script = { rule = "count" }
"""


def reply_to(provider: ScriptedProvider, *messages: Message) -> str:
    async def go() -> str:
        request = Request("scripted", "", messages)
        return "".join([e.text async for e in provider.stream(request)
                        if isinstance(e, TextDelta)])

    return anyio.run(go)


def agent_of(text: str) -> ScriptedProvider:
    pairing = parse_pairing(text, source="p.toml")
    return ScriptedProvider(pairing.agent("ada"), "bo")


def test_the_first_text_found_in_the_last_message_picks_the_reply() -> None:
    ada = agent_of(PAIRING)
    assert reply_to(ada, Message("user", "I think of tides.")) == "The sea, bo."
    # In the file's order: "As an AI" comes before "the", which this message also holds.
    assert reply_to(ada, Message("user", "As an AI, the answer is no.")) == "Deflecting."
    assert reply_to(ada, Message("user", "Tell the truth.")) == \
        "Only when nothing before it is found."
    # Only the last message counts, and without a match the list answers as before.
    assert reply_to(ada, Message("user", "tides"), Message("assistant", "x"),
                    Message("user", "Something else.")) == "Fallback 2."


def test_when_alone_is_a_script_and_a_message_it_does_not_know_is_an_error() -> None:
    only = PAIRING.replace('replies = ["Fallback {reply}."]\n', "").replace(
        '"the" = "Only when nothing before it is found."\n', "")
    ada = agent_of(only)
    assert reply_to(ada, Message("user", "tides")) == "The sea, bo."
    with pytest.raises(BadRequest, match="no `when` text is in the message"):
        reply_to(ada, Message("user", "Something else."))


@pytest.mark.parametrize(("when", "expected"), [
    ('"tides" = 3', "a table of strings"),
    ('"tides" = "The {sea}."', "unknown placeholder {sea}"),
])
def test_a_wrong_when_table_is_a_config_error(when: str, expected: str) -> None:
    text = PAIRING.replace('"tides" = "The sea, {partner}."', when)
    with pytest.raises(ConfigError, match=r"agents\.ada\.script\.when") as caught:
        parse_pairing(text, source="p.toml")
    assert expected in str(caught.value)


def test_a_script_without_when_resolves_as_it_always_has() -> None:
    """Transcripts store the resolved config and hash it: no `when` key appears unless given."""
    pairing = parse_pairing(PAIRING.split("[agents.ada.script.when]")[0]
                            + '[agents.bo]\nprovider = "scripted"\nscript = { rule = "count" }\n',
                            source="p.toml")
    assert "when" not in pairing.resolved["agents"]["ada"]["script"]


class FakeTime:
    """A clock that moves only when slept on, or when the test says the reader was busy."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_a_scripted_stream_keeps_its_rate_when_the_reader_is_late() -> None:
    """Like a model on a server: a reader that is busy for a while gets the pieces that fell due
    meanwhile at once, and the rest on their schedule; it does not slow the stream down."""
    time = FakeTime()
    pace = Pacer(0.01, clock=time.clock, sleep=time.sleep)

    async def read() -> None:
        await pace.next()
        await pace.next()
        time.now += 0.035  # the reader is busy for three and a half pieces
        for _ in range(5):
            await pace.next()

    anyio.run(read)
    assert time.slept == [0.01, 0.01, 0.0, 0.0, 0.0, 0.005, 0.01]
    assert time.now == pytest.approx(100.07)  # seven pieces at 10 ms: the reader cost nothing


def test_without_a_delay_every_piece_still_lets_other_tasks_run() -> None:
    time = FakeTime()
    pace = Pacer(0.0, clock=time.clock, sleep=time.sleep)

    async def read() -> None:
        for _ in range(3):
            await pace.next()

    anyio.run(read)
    assert time.slept == [0.0, 0.0, 0.0]  # anyio.sleep(0) is a checkpoint
