from __future__ import annotations

import io
import re

import pytest

from intermodel.console.render import ConsoleRenderer, Style, use_color
from intermodel.engine.events import TextChunk, ThinkingChunk, TurnCompleted, TurnStarted
from intermodel.records import Turn
from intermodel.security.secrets import Redactor
from intermodel.security.text import terminal_safe
from tests.conftest import PairingFactory
from tests.fakes import run_dialogue

HOSTILE = "clear\x1b[2J title\x1b]0;pwned\x07 csi\x9b31m bell\x07 cr\rover bidi\u202eevil nul\x00"


def test_terminal_safe_leaves_nothing_a_terminal_would_interpret() -> None:
    safe = terminal_safe(HOSTILE)
    assert not re.search(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e\u2066-\u2069]", safe)
    assert "␛[2J" in safe  # visible, so a reader sees what the model emitted
    assert "pwned" in safe


def test_terminal_safe_keeps_ordinary_text_and_line_ends() -> None:
    text = "Hello,\tworld!\nÇa va? 日本語 🙂 [bold red]not markup[/]\r\n"
    assert terminal_safe(text) == text.replace("\r\n", "\n")


def renderer(color: bool = False) -> ConsoleRenderer:
    r = ConsoleRenderer(Style(color), width=60)
    r._slots = {"ada": 0, "bo": 1}
    return r


def test_model_text_and_thinking_are_rendered_inert() -> None:
    out = renderer(color=True).render([
        TurnStarted(1, "ada", 1, 4),
        ThinkingChunk(1, "ada", "plan\x1b[31m\nstep two"),
        TextChunk(1, "ada", HOSTILE),
    ])
    # The only escape sequences left are the renderer's own SGR colour codes.
    assert re.sub(r"\x1b\[[0-9;]*m", "", out).find("\x1b") == -1
    assert "\x9b" not in out and "\u202e" not in out and "\r" not in out


def test_thinking_is_set_apart_and_reply_follows_on_its_own_line() -> None:
    out = renderer().render([
        TurnStarted(1, "ada", 1, 4),
        ThinkingChunk(1, "ada", "first\nsecond"),
        TextChunk(1, "ada", "Reply."),
        TurnCompleted(Turn(1, "ada", "Reply.", latency=0.5, stop_reason="end_turn")),
    ])
    lines = out.splitlines()
    assert lines[0].startswith("── ada · turn 1/4 ")
    assert lines[1:4] == ["  ┆ first", "  ┆ second", "Reply."]
    assert lines[4].startswith("  ✓ ada turn 1 · 0.50 s")


def test_no_color_means_no_escape_sequences_at_all(monkeypatch: pytest.MonkeyPatch) -> None:
    class Tty(io.StringIO):
        def isatty(self) -> bool:
            return True

    assert use_color(Tty()) is True
    monkeypatch.setenv("NO_COLOR", "1")
    assert use_color(Tty()) is False
    assert use_color(io.StringIO()) is False
    assert use_color(io.StringIO(), "always") is True
    out = renderer(color=False).render([TurnStarted(1, "ada", 1, 4), TextChunk(1, "ada", "x")])
    assert "\x1b" not in out


@pytest.mark.anyio
async def test_a_whole_run_renders_with_a_summary_table(make_pairing: PairingFactory) -> None:
    _, events = await run_dialogue(make_pairing())
    r = ConsoleRenderer(Style(False), width=70)
    out = r.render(events)
    assert "intermodel · test-pair" in out
    assert "══ finished: max turns (4 turns) · 4 turns" in out
    table = out[out.index("══ finished"):].splitlines()[1:]
    assert table[0].split() == ["agent", "turns", "tokens", "in", "tokens", "out", "mean", "s",
                                "first", "tok", "s", "thinking"]
    assert table[1].split()[:2] == ["ada", "2"]
    assert table[2].split()[:2] == ["bo", "2"]


def test_redactor_removes_known_secrets_and_key_shapes() -> None:
    redact = Redactor(["my-very-secret-value"])
    assert redact("auth my-very-secret-value ok") == "auth [redacted] ok"
    key_shaped = "sk-" + "proj-abcdefghijklmnop1234"  # built here: no key-like literal in git
    assert redact(f"Incorrect API key provided: {key_shaped}") == \
        "Incorrect API key provided: [redacted]"
    # Model text keeps key-shaped strings (they are data) but never the real secret.
    invented = "sk-" + "abcdefghijklmnopqrstu"
    assert redact.known(f"{invented} my-very-secret-value") == f"{invented} [redacted]"
