"""The scripted provider's `when` replies: chosen by what the agent was last sent, so one scripted
agent answers different messages differently (a judge that reads what it codes)."""

from __future__ import annotations

import anyio
import pytest

from intermodel.config import parse_pairing
from intermodel.config.request import Message, Request
from intermodel.errors import BadRequest, ConfigError
from intermodel.providers.base import TextDelta
from intermodel.providers.scripted import ScriptedProvider

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
