"""Markers (a human's message, a pause, a notice) never split a streaming reply mid-line: each
goes on its own line, and the reply resumes under a continuation mark. Checked on a real run of
the scripted provider, rendered by the real console as a pipe sees it (no colour)."""

from __future__ import annotations

import io

import anyio
import pytest

from intermodel.console.render import ConsoleRenderer, Style, run_console
from intermodel.engine.dialogue import Dialogue
from intermodel.engine.events import (
    Event,
    Interjected,
    Notice,
    Paused,
    Resumed,
    TextChunk,
    ThinkingChunk,
    TurnCompleted,
    TurnStarted,
)
from intermodel.providers.base import Provider
from intermodel.providers.scripted import ScriptedProvider
from intermodel.records import Interjection, Turn
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import Gate, GatedProvider

SPLIT_REPLY = SCRIPTED.replace("max_turns = 4", "max_turns = 2").replace(
    '["ada one", "ada two", "ada three"]',
    '["The first half of a sentence, then the rest."]\nthinking = ["I will think it over."]')


async def _console_text(make_pairing: PairingFactory) -> str:
    """ada's first reply is held at a gate after three words; meanwhile a person writes to bo,
    pauses, makes a mistake (a notice) and resumes; then the gate opens."""
    pairing = make_pairing(SPLIT_REPLY)
    gate = Gate()
    ada = pairing.agent("ada")
    providers: dict[str, Provider] = {
        # thinking: 5 words, then 3 of the reply before the gate
        "ada": GatedProvider(ScriptedProvider(ada, "bo"), gate, opening=8),
        "bo": ScriptedProvider(pairing.agent("bo"), "ada"),
    }
    dialogue = Dialogue(pairing, providers)
    shown: list[str] = []
    console = dialogue.subscribe()
    watched = dialogue.subscribe()

    async def steer() -> None:
        said = ""
        async for event in watched:
            match event:
                case TextChunk(turn=1, text=text):
                    said += text
                    if said == "The first half ":
                        dialogue.controls.interject("Keep it short.", to="bo")
                        dialogue.controls.pause()
                        dialogue.controls.interject("hello?", to="nobody")  # a notice
                case Notice():
                    dialogue.controls.resume()
                case Resumed():
                    gate.open()

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(steer)
            tg.start_soon(lambda: run_console(console, io.StringIO(), color=False, width=40,
                                              write=shown.append))
            await dialogue.run()
    return "".join(shown)


@pytest.mark.anyio
async def test_markers_end_the_line_and_the_reply_resumes_under_a_continuation_mark(
        make_pairing: PairingFactory) -> None:
    out = await _console_text(make_pairing)
    lines = out.splitlines()
    start = lines.index("── ada · turn 1/2 " + "─" * 22)
    assert lines[start + 1:start + 9] == [
        "  ┆ I will think it over.",
        "The first half",
        "  ✎ human → bo (from turn 2): Keep it short.",
        "  ‖ paused",
        "  ! no such addressee: use a, b, both, ada or bo",
        "  ▸ resumed",
        "… of a sentence, then the rest.",
        lines[start + 8],
    ]
    assert lines[start + 8].startswith("  ✓ ada turn 1 · ")


def _render(events: list[Event]) -> str:
    renderer = ConsoleRenderer(Style(False), width=40)
    renderer._slots = {"ada": 0, "bo": 1}
    return renderer.render(events)


def test_thinking_cut_by_a_marker_resumes_in_its_own_column() -> None:
    out = _render([
        TurnStarted(1, "ada", 1, 4),
        ThinkingChunk(1, "ada", "weighing "),
        Paused(),
        ThinkingChunk(1, "ada", "the options"),
        TextChunk(1, "ada", "Done."),
    ])
    assert out.splitlines()[1:] == ["  ┆ weighing", "  ‖ paused", "  ┆ … the options", "Done."]


def test_a_marker_after_a_whole_line_adds_no_blank_line_and_a_finished_turn_no_mark() -> None:
    out = _render([
        TurnStarted(1, "ada", 1, 4),
        TextChunk(1, "ada", "One line.\n"),
        Interjected(Interjection(2, ("bo",), "Two lines\nfor you.\n")),
        TextChunk(1, "ada", "Two."),
        TurnCompleted(Turn(1, "ada", "One line.\nTwo.", latency=0.5)),
        Notice("a note after the turn"),
        TurnStarted(2, "bo", 1, 4),
        TextChunk(2, "bo", "Hi."),
    ])
    lines = out.splitlines()
    assert lines[1:5] == ["One line.", "  ✎ human → bo (from turn 2): Two lines", "    for you.",
                          "… Two."]
    assert lines[6] == "  ! a note after the turn"
    assert lines[7].startswith("── bo · turn 2/4 ") and lines[8] == "Hi."
