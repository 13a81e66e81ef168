"""Transcripts written from fixed records, so replays (and screenshots of them) are repeatable."""

from __future__ import annotations

import json
from collections.abc import Iterable
from datetime import UTC, datetime, timedelta
from pathlib import Path

from intermodel.config.model import Pairing
from intermodel.records import Header, Interjection, Record, RunEnd, Turn, Usage
from intermodel.transcript.writer import to_json

START = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)


def at(seconds: float) -> str:
    """A record timestamp `seconds` after the run started."""
    return (START + timedelta(seconds=seconds)).isoformat(timespec="milliseconds").replace(
        "+00:00", "Z")


def turn(index: int, agent: str, text: str, *, done_at: float, latency: float = 1.0,
         ttft: float = 0.1, thinking: str = "") -> Turn:
    tokens = max(1, len(text + thinking) // 4)
    return Turn(index, agent, text, thinking, usage=Usage(50 * index, tokens), latency=latency,
                ttft=ttft, stop_reason="end_turn", model="scripted", at=at(done_at))


def interjection(before_turn: int, to: tuple[str, ...], text: str, *, sent_at: float
                 ) -> Interjection:
    return Interjection(before_turn, to, text, at(sent_at))


def finished(records: Iterable[Record], reason: str = "max_turns", detail: str = "") -> RunEnd:
    turns = [r for r in records if isinstance(r, Turn)]
    usage: dict[str, Usage] = {}
    for t in turns:
        usage[t.agent] = usage.get(t.agent, Usage()) + t.usage
    last = max((t.at for t in turns), default=at(0))
    return RunEnd(reason, detail, turns=len(turns), usage=usage, duration=10.0, at=last)


def write_transcript(path: Path, pairing: Pairing, records: Iterable[Record], *,
                     torn: str = "") -> Path:
    start = Header("feedc0ffee00", at(0), pairing.name, pairing.source, pairing.resolved)
    lines = [to_json(start), *(to_json(r) for r in records)]
    text = "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)
    path.write_text(text + torn, encoding="utf-8")
    return path
