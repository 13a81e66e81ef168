"""Figures of finished (or unfinished) runs, read back from their transcripts.

`run_stats` turns one transcript into a `RunStats`: the run as a whole (turns, duration, how and by
whom it ended, detector flags, retries, trims, interjections, resumes, cost) and one `AgentStats`
per agent (tokens, reply length, latency, time to first token, stop reasons, cost). `collect` does
the same for a file or every `*.jsonl` under a folder, setting aside files that are not transcripts
instead of failing, so one damaged file never hides a night's worth of runs.

Everything is computed from the records, never from the `end` record's totals: a resumed run has
several `end` records, and a crashed one has none.

- Tokens are sums of what the servers reported; None when no turn of that agent reported any.
- Cost is `price.cost(input, output)` from the agent's `price` table in the stored config (thinking
  is billed as output, which the servers' output counts already include); None without a price or
  without reported tokens. A run's cost is None unless every agent has one, as for `max_cost`.
- A branch's file starts with the turns it inherited from its parent (made under the parent's
  settings, maybe by another model): `turns` counts them, as part of the conversation, but every
  per-agent figure and the cost count only the run's own turns (`inherited_turns` says how many
  were not).
- Duration adds up the processes that worked on the run: each `end` record's `duration`, and for a
  process that died without one, the time from its start (header or `resume`) to its last record.
  None while the last process has not ended (a crash, or a run still going).
"""

from __future__ import annotations

import os
import statistics
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from intermodel.config.model import Price
from intermodel.errors import TranscriptError
from intermodel.records import (
    Discard,
    Flag,
    Interjection,
    Resumption,
    Retry,
    RunEnd,
    Trim,
    Turn,
    Usage,
)
from intermodel.transcript.reader import Transcript, read_transcript

__all__ = ["AgentStats", "RunStats", "collect", "run_stats"]


@dataclass(frozen=True)
class AgentStats:
    """One agent's share of a run. Means and medians are None when the agent had no turn."""

    agent: str
    provider: str
    model: str  # as configured
    served_models: tuple[str, ...]  # as the server reported them, in order of first use
    turns: int
    input_tokens: int | None
    output_tokens: int | None
    reply_chars_mean: float | None
    reply_chars_median: float | None
    reply_words_mean: float | None
    latency_mean: float | None
    latency_median: float | None
    ttft_mean: float | None
    ttft_median: float | None
    thinking_chars: int
    retries: int
    cost: float | None
    stop_reasons: Mapping[str, int]  # the server's stop reason → how many turns


@dataclass(frozen=True)
class RunStats:
    """One run. `end_reason`, `ended_by` and `end_detail` are None unless it `finished`."""

    path: Path
    run_id: str
    pairing: str
    started_at: str
    experiment: Mapping[str, Any] | None
    parent: Mapping[str, Any] | None
    turns: int  # in the conversation, inherited ones included
    inherited_turns: int  # a branch's turns from its parent (0 for any other run)
    max_turns: int | None  # the turn budget in force at the end
    duration: float | None
    finished: bool
    end_reason: str | None
    ended_by: str | None
    end_detail: str | None
    flags: Mapping[str, int]  # detector → how many flags it raised
    retries: int
    discards: int
    trims: int
    interjections: int
    resumes: int
    torn: bool  # the file ends with an incomplete record
    cost: float | None
    agents: tuple[AgentStats, ...]
    is_panel: bool = False  # one message to several agents, each answering once
    prompt: str | None = None  # a panel's message; None for a pairing

    @property
    def opener(self) -> str | None:
        """The experiment's opener label, for runs of a batch."""
        return _label(self.experiment, "opener")

    @property
    def pairing_label(self) -> str:
        """The experiment's pairing label where there is one, else the pairing's name."""
        return _label(self.experiment, "pairing") or self.pairing


def run_stats(transcript: Transcript) -> RunStats:
    head = transcript.header
    config = _mapping(head.get("config"))
    records = transcript.records
    segments = _segments(transcript)
    last_end = segments[-1][1]
    parent = _optional_mapping(head.get("parent"))
    after = _after_turn(parent)
    own = [r for r in records if not (isinstance(r, Turn) and r.index <= after)]
    agents = tuple(_agent_stats(name, _mapping(table), own)
                   for name, table in _agent_tables(config, transcript.turns).items())
    costs = [a.cost for a in agents]
    return RunStats(
        path=transcript.path,
        run_id=transcript.run_id,
        pairing=str(head.get("pairing") or config.get("name") or ""),
        started_at=str(head.get("started_at") or ""),
        experiment=_optional_mapping(head.get("experiment")),
        parent=parent,
        turns=len(transcript.turns),
        inherited_turns=sum(1 for t in transcript.turns if t.index <= after),
        max_turns=_max_turns(transcript),
        duration=_duration(segments),
        finished=last_end is not None,
        end_reason=last_end.reason if last_end else None,
        ended_by=last_end.ended_by if last_end else None,
        end_detail=last_end.detail if last_end else None,
        flags=dict(Counter(r.detector for r in records if isinstance(r, Flag))),
        retries=_count(records, Retry),
        discards=_count(records, Discard),
        trims=_count(records, Trim),
        interjections=_count(records, Interjection),
        resumes=_count(records, Resumption),
        torn=transcript.torn is not None,
        cost=None if not costs or None in costs else sum(c for c in costs if c is not None),
        agents=agents,
        is_panel=transcript.is_panel,
        prompt=transcript.prompt,
    )


def collect(path: str | Path) -> tuple[list[RunStats], list[str]]:
    """Stats of the transcript `path`, or of every `*.jsonl` under the folder `path`; the second
    list says which files were skipped and why (not a transcript, damaged, unreadable)."""
    path = Path(path)
    if path.is_dir():
        files = _jsonl_files(path)
    elif path.exists():
        files = [path]
    else:
        return [], [f"{path}: no such file or folder"]
    runs: list[RunStats] = []
    skipped: list[str] = []
    for file in files:
        try:
            runs.append(run_stats(read_transcript(file)))
        except TranscriptError as exc:
            skipped.append(str(exc))
    return runs, skipped


def _jsonl_files(folder: Path) -> list[Path]:
    # Imported here: the live detectors import this package, and a run should start fast.
    from intermodel.coding.labels import is_sidecar

    # os.walk does not follow symbolic links to folders, so a link loop cannot trap it.
    found = [Path(root) / name for root, _, names in os.walk(folder)
             for name in names if name.endswith(".jsonl") and not is_sidecar(name)]
    return sorted(found)


def _agent_tables(config: Mapping[str, Any], turns: Sequence[Turn]) -> dict[str, Any]:
    """The configured agents in pairing order, plus any agent that spoke without being configured
    (only in a damaged or hand-made file, but a reader should still see its turns)."""
    tables = dict(_mapping(config.get("agents")))
    for turn in turns:
        tables.setdefault(turn.agent, {})
    return tables


def _agent_stats(name: str, table: Mapping[str, Any], records: Sequence[object]) -> AgentStats:
    turns = [r for r in records if isinstance(r, Turn) and r.agent == name]
    usage = Usage.summed(t.usage for t in turns)
    inputs, outputs = usage.input_tokens, usage.output_tokens
    chars = [len(t.text) for t in turns]
    latencies = [t.latency for t in turns]
    ttfts = [t.ttft for t in turns if t.ttft is not None]
    price = _price(table.get("price"))
    known = inputs is not None or outputs is not None
    return AgentStats(
        agent=name,
        provider=str(table.get("provider") or ""),
        model=str(table.get("model") or ""),
        served_models=tuple(dict.fromkeys(t.model for t in turns if t.model)),
        turns=len(turns),
        input_tokens=inputs,
        output_tokens=outputs,
        reply_chars_mean=_mean(chars),
        reply_chars_median=_median(chars),
        reply_words_mean=_mean([len(t.text.split()) for t in turns]),
        latency_mean=_mean(latencies),
        latency_median=_median(latencies),
        ttft_mean=_mean(ttfts),
        ttft_median=_median(ttfts),
        thinking_chars=sum(len(t.thinking) for t in turns),
        retries=sum(1 for r in records if isinstance(r, Retry) and r.agent == name),
        cost=price.cost(inputs, outputs) if price is not None and known else None,
        stop_reasons=dict(Counter(t.stop_reason or "?" for t in turns)),
    )


Segment = tuple[str, RunEnd | None, str]  # (started at, its end record, its last record's time)


def _segments(transcript: Transcript) -> list[Segment]:
    """The run split at its `resume` records: one segment per process that worked on it."""
    started = str(transcript.header.get("started_at") or "")
    segments: list[Segment] = []
    end: RunEnd | None = None
    last = started
    for record in transcript.records:
        if isinstance(record, Resumption):
            segments.append((started, end, last))
            started, end, last = record.at, None, record.at
            continue
        if isinstance(record, RunEnd):
            end = record
        last = str(getattr(record, "at", "") or last)
    segments.append((started, end, last))
    return segments


def _duration(segments: Sequence[Segment]) -> float | None:
    if segments[-1][1] is None:
        return None
    total = 0.0
    for started, end, last in segments:
        total += end.duration if end is not None else _seconds_between(started, last)
    return total


def _seconds_between(start: str, stop: str) -> float:
    try:
        first = datetime.fromisoformat(start.replace("Z", "+00:00"))
        second = datetime.fromisoformat(stop.replace("Z", "+00:00"))
    except ValueError:
        return 0.0  # no usable timestamps: count the crashed process as nothing
    return max(0.0, (second - first).total_seconds())


def _after_turn(parent: Mapping[str, Any] | None) -> int:
    """The turn a branch starts after: turns up to it came from the parent."""
    try:
        return max(0, int((parent or {}).get("after_turn") or 0))
    except (TypeError, ValueError):
        return 0


def _max_turns(transcript: Transcript) -> int | None:
    try:
        return transcript.max_turns
    except (KeyError, TypeError, ValueError):
        return None


def _price(table: object) -> Price | None:
    if not isinstance(table, Mapping):
        return None
    try:
        return Price(float(table["input"]), float(table["output"]))
    except (KeyError, TypeError, ValueError):
        return None


def _label(experiment: Mapping[str, Any] | None, key: str) -> str | None:
    value = experiment.get(key) if experiment else None
    return None if value is None else str(value)


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _optional_mapping(value: object) -> dict[str, Any] | None:
    return dict(value) if isinstance(value, Mapping) else None


def _count(records: Iterable[object], kind: type) -> int:
    return sum(1 for r in records if isinstance(r, kind))


def _mean(values: Sequence[float]) -> float | None:
    return statistics.fmean(values) if values else None


def _median(values: Sequence[float]) -> float | None:
    return float(statistics.median(values)) if values else None
