"""A transcript as Markdown, for reading and sharing.

Everything in a transcript is untrusted: model text, server messages (an error's detail, a retry's
message), and the config itself (the pairing's name and description, agent names, model ids). So:

- Model text keeps its words and Markdown, but `<`, `>` and `&` are written as entities: Markdown
  viewers that pass raw HTML through would otherwise run whatever HTML a model wrote (they render
  the entities as the characters, so the text reads the same). Escape sequences and other control
  characters are shown as symbols (`␛`), so the file is safe to `cat`. Role prompts, the opener,
  the description, interjections and thinking are escaped the same way, inside block quotes.
- Every other value (names, model ids, reasons, details, messages, notes) is one line of inert
  text: HTML escaped, Markdown punctuation backslash-escaped (no links, images, code spans or
  emphasis can be made of it), line breaks and control characters shown as symbols, so it can
  neither forge the page's structure nor run anything.

Thinking sits in a collapsible <details> block, which Markdown viewers render folded.

A panel's answers are listed by agent, in the panel file's order (the transcript records them as
they complete), each with its agent's retries and discarded attempts after it.
"""

from __future__ import annotations

import html
import re
from collections.abc import Mapping
from typing import Any

from intermodel.config.model import Pairing, Panel
from intermodel.records import (
    Branch,
    BudgetChange,
    Discard,
    Flag,
    Interjection,
    Note,
    Record,
    Resumption,
    Retry,
    RunEnd,
    Trim,
    Turn,
)
from intermodel.security.text import terminal_safe
from intermodel.transcript.reader import Transcript

__all__ = ["to_markdown"]

# ASCII punctuation that means something inline in CommonMark (and GitHub's dialect). An
# underscore inside a word (`max_turns`) cannot start or end emphasis, so it stays as it is.
_PUNCTUATION = re.compile(r"([\\`*\[\]|~#!]|(?<![0-9A-Za-z])_|_(?![0-9A-Za-z]))")


def to_markdown(transcript: Transcript) -> str:
    head = transcript.header
    config = head["config"]
    agents = config["agents"]
    out: list[str] = [f"# {_inline(config['name'])}", ""]
    if config.get("description"):
        out += [_quote(str(config["description"])), ""]
    versions = head.get("versions")
    version = versions.get("intermodel", "?") if isinstance(versions, Mapping) else "?"
    out += [
        f"- run: {_inline(transcript.run_id)}, started {_inline(head.get('started_at', '?'))}",
        f"- intermodel {_inline(version)}, format {_inline(head.get('format'))}",
    ]
    for name, agent in agents.items():
        where = f" at {_inline(agent['base_url'])}" if agent.get("base_url") else ""
        out.append(f"- **{_inline(name)}**: {_inline(agent['provider'])} "
                   f"<code>{_inline(agent['model'])}</code>{where}")
    setting = transcript.config()
    out += ["", "## Role prompts", ""]
    for name in agents:
        out += [f"**{_inline(name)}**", "", _quote(setting.system_prompt(name) or "(none)"), ""]
    match setting:
        case Panel(prompt=prompt):
            out += ["## Message (to every agent)", "", _quote(prompt), "", "## Answers", ""]
        case Pairing(dialogue=dialogue):
            shared = "both agents" if dialogue.opener_shared else _inline(dialogue.opener_to)
            out += [f"## Opener (to {shared})", "", _quote(dialogue.opener), "",
                    "## Conversation", ""]
    if isinstance(setting, Panel):
        out += _answers(transcript, list(agents))
    else:
        for record in transcript.records:
            out += _record(record)
    if transcript.torn:
        out += ["", "> ⚠ the transcript ends with an incomplete record (the run was interrupted)"]
    if transcript.end is None:
        out += ["", "> ⚠ no final record: the run did not finish (crash or still running)"]
    return "\n".join(out).rstrip() + "\n"


def _answers(transcript: Transcript, names: list[str]) -> list[str]:
    """A panel's records: each agent's answer (or that it gave none) and its retries and
    discards, agent by agent; then the rest in the order they happened."""
    own: dict[str, list[Record]] = {name: [] for name in names}
    rest: list[Record] = []
    for record in transcript.records:
        match record:
            case Turn(agent=agent) | Retry(agent=agent) | Discard(agent=agent) if agent in own:
                own[agent].append(record)
            case _:
                rest.append(record)
    out: list[str] = []
    for name, records in own.items():
        answers = [r for r in records if isinstance(r, Turn)]
        if not answers:
            out += [f"### {_inline(name)}", "", "*(no answer)*", ""]
        for item in answers + [r for r in records if not isinstance(r, Turn)]:
            out += _record(item, noun="answer")
    for item in rest:
        out += _record(item, noun="answer")
    return out


def _record(record: object, *, noun: str = "turn") -> list[str]:
    match record:
        case Turn():
            facts = [record.model or "?", f"{record.latency:.2f} s", record.stop_reason]
            if record.usage.output_tokens is not None:
                facts.insert(1, f"{record.usage.output_tokens} tokens")
            if record.attempts > 1:
                facts.append(f"{record.attempts} attempts")
            lines = [f"### {noun.capitalize()} {record.index} · {_inline(record.agent)}", "",
                     _small(" · ".join(_inline(f) for f in facts if f)), ""]
            if record.thinking:
                lines += ["<details><summary>thinking</summary>", "", _quote(record.thinking), "",
                          "</details>", ""]
            return [*lines, _text(record.text) or "*(empty reply)*", ""]
        case Interjection():
            return [f"> ✎ **Human → {' and '.join(_inline(n) for n in record.to)}** "
                    f"(before turn {record.before_turn}):", _quote(record.text), ""]
        case Retry():
            status = f" {_inline(record.status)}" if record.status else ""
            return [_small(f"↻ turn {record.turn} ({_inline(record.agent)}) attempt "
                           f"{record.attempt} failed: {_inline(record.error)}{status}: "
                           f"{_inline(record.message)}; retried after {record.wait:.1f} s"), ""]
        case Discard():
            return [_small(f"✗ turn {record.turn} ({_inline(record.agent)}) discarded: "
                           f"{_inline(record.reason)}"), ""]
        case Trim():
            return [_small(f"✂ {_inline(record.agent)}'s view from turn {record.turn} leaves "
                           f"out turns up to {record.dropped_through} (about "
                           f"{record.estimated_tokens} tokens for a window of {record.window}; "
                           f"{_inline(record.cause)})"), ""]
        case Flag():
            return [_small(f"⚑ {_inline(record.detector)} ({_inline(record.action)}): "
                           f"{_inline(record.detail)}"), ""]
        case Note():
            return [_small(f"ℹ {_inline(record.message)}"), ""]
        case Branch():
            return [_small(f"⑂ branched after turn {record.after_turn} into run "
                           f"{_inline(record.run_id)} ({_inline(record.transcript)})"), ""]
        case Resumption():
            torn = f"; an incomplete record ({record.torn_bytes} bytes) was set aside" \
                if record.torn_bytes else ""
            return [f"> ⟳ **resumed** after turn {record.after_turn} at "
                    f"{_inline(record.at)}{torn}", ""]
        case BudgetChange():
            return [_small(f"+ turn budget now {record.max_turns}"), ""]
        case RunEnd():
            by = f" by {_inline(record.ended_by)}" if record.ended_by else ""
            tokens = "; ".join(f"{_inline(name)} {u.input_tokens} in, {u.output_tokens} out"
                               for name, u in record.usage.items())
            return ["## End", "", f"- reason: **{_inline(record.reason)}**{by}"
                    + (f" ({_inline(record.detail)})" if record.detail else ""),
                    f"- {record.turns} {noun}s in {record.duration:.1f} s",
                    f"- tokens: {tokens or 'none recorded'}", ""]
        case _:
            return []


def _small(escaped: str) -> str:
    """A note in small print; `escaped` is already safe."""
    return f"<sub>{escaped}</sub>"


def _inline(value: Any) -> str:
    """A value from the transcript as one line of inert text (see the module docstring)."""
    text = terminal_safe(str(value)).replace("\n", "\u240a").replace("\t", " ")
    return _PUNCTUATION.sub(r"\\\1", html.escape(text, quote=False))


def _text(text: str) -> str:
    """Untrusted text: no raw HTML, no control characters (see the module docstring)."""
    return html.escape(terminal_safe(text), quote=False)


def _quote(text: str) -> str:
    lines = _text(text).splitlines() or [""]
    return "\n".join(f"> {line}" if line else ">" for line in lines)
