"""A transcript as Markdown, for reading and sharing.

Model text keeps its words and Markdown, but `<`, `>` and `&` are written as entities: Markdown
viewers that pass raw HTML through would otherwise run whatever HTML a model wrote (they render
the entities as the characters, so the text reads the same). Thinking sits in a collapsible
<details> block, which Markdown viewers render folded.
"""

from __future__ import annotations

import html
import json

from intermodel.config.model import Panel
from intermodel.records import BudgetChange, Discard, Interjection, Resumption, Retry, RunEnd, Turn
from intermodel.transcript.reader import Transcript

__all__ = ["to_markdown"]


def to_markdown(transcript: Transcript) -> str:
    head = transcript.header
    config = head["config"]
    agents = config["agents"]
    out: list[str] = [f"# {config['name']}", ""]
    if config.get("description"):
        out += [config["description"], ""]
    out += [
        f"- run: `{transcript.run_id}`, started {head.get('started_at', '?')}",
        f"- intermodel {head.get('versions', {}).get('intermodel', '?')}, "
        f"format {head.get('format')}",
    ]
    for name, agent in agents.items():
        where = f" at {agent['base_url']}" if agent.get("base_url") else ""
        out.append(f"- **{name}**: {agent['provider']} `{agent['model']}`{where}")
    setting = transcript.config()
    out += ["", "## Role prompts", ""]
    for name in agents:
        out += [f"**{name}**", "", _quote(setting.system_prompt(name) or "(none)"), ""]
    if isinstance(setting, Panel):
        out += ["## Message (to every agent)", "", _quote(setting.prompt), "", "## Answers", ""]
    else:
        dialogue = setting.dialogue
        shared = "both agents" if dialogue.opener_shared else dialogue.opener_to
        out += [f"## Opener (to {shared})", "", _quote(dialogue.opener), "",
                "## Conversation", ""]
    for record in transcript.records:
        out += _record(record)
    if transcript.torn:
        out += ["", "> ⚠ the transcript ends with an incomplete record (the run was interrupted)"]
    if transcript.end is None:
        out += ["", "> ⚠ no final record: the run did not finish (crash or still running)"]
    return "\n".join(out).rstrip() + "\n"


def _record(record: object) -> list[str]:
    if isinstance(record, Turn):
        facts = [record.model or "?", f"{record.latency:.2f} s", record.stop_reason]
        if record.usage.output_tokens is not None:
            facts.insert(1, f"{record.usage.output_tokens} tokens")
        if record.attempts > 1:
            facts.append(f"{record.attempts} attempts")
        lines = [f"### Turn {record.index} · {record.agent}", "",
                 f"<sub>{html.escape(' · '.join(f for f in facts if f))}</sub>", ""]
        if record.thinking:
            lines += ["<details><summary>thinking</summary>", "", _quote(record.thinking), "",
                      "</details>", ""]
        return [*lines, _text(record.text) or "*(empty reply)*", ""]
    if isinstance(record, Interjection):
        return [f"> ✎ **Human → {' and '.join(record.to)}** (before turn {record.before_turn}):",
                _quote(record.text), ""]
    if isinstance(record, Retry):
        status = f" {record.status}" if record.status else ""
        return [f"<sub>↻ turn {record.turn} ({record.agent}) attempt {record.attempt} failed: "
                f"{html.escape(record.error)}{status}; retried after {record.wait:.1f} s</sub>", ""]
    if isinstance(record, Discard):
        return [f"<sub>✗ turn {record.turn} ({record.agent}) discarded: "
                f"{html.escape(record.reason)}</sub>", ""]
    if isinstance(record, Resumption):
        torn = f"; an incomplete record ({record.torn_bytes} bytes) was set aside" \
            if record.torn_bytes else ""
        return [f"> ⟳ **resumed** after turn {record.after_turn} at {record.at}{torn}", ""]
    if isinstance(record, BudgetChange):
        return [f"<sub>+ turn budget now {record.max_turns}</sub>", ""]
    if isinstance(record, RunEnd):
        by = f" by {record.ended_by}" if record.ended_by else ""
        usage = {name: {"in": u.input_tokens, "out": u.output_tokens}
                 for name, u in record.usage.items()}
        return ["## End", "", f"- reason: **{record.reason}**{by}"
                + (f" ({record.detail})" if record.detail else ""),
                f"- {record.turns} turns in {record.duration:.1f} s",
                f"- tokens: `{json.dumps(usage)}`", ""]
    return []


def _text(text: str) -> str:
    """Untrusted text: no raw HTML (see the module docstring)."""
    return html.escape(text, quote=False)


def _quote(text: str) -> str:
    lines = _text(text).splitlines() or [""]
    return "\n".join(f"> {line}" if line else ">" for line in lines)
