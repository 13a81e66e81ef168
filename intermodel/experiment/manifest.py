"""Where a batch stands: read from its transcripts, summarised in `manifest.json`.

The transcripts are the truth: each carries its entry id in its header (`experiment.entry`) and
ends (or not) with an `end` record. The manifest is rewritten atomically (see
`intermodel.security.files`) whenever an entry changes, for people and tools that want the whole
picture in one file. An entry of a panel counts answers where a pairing's counts turns
(`"answers": 4` in place of `"turns"`), and says which it is (`"kind"`).
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Literal

from intermodel.config.experiment import Experiment
from intermodel.errors import TranscriptError
from intermodel.experiment.plan import Entry
from intermodel.records import now_iso
from intermodel.security.files import write_private
from intermodel.transcript.reader import read_transcript

__all__ = ["MANIFEST", "EntryState", "Status", "scan", "status_for", "write_manifest"]

MANIFEST = "manifest.json"
Status = Literal["pending", "running", "retrying", "finished", "failed", "interrupted"]
Kind = Literal["pairing", "panel"]
# Endings that complete an entry; anything else (an error, a signal, a crash) is resumed.
COMPLETE = frozenset({"complete", "max_turns", "stop_phrase", "token_budget", "time_budget",
                      "context_full", "degenerate", "cost_budget"})


@dataclass
class EntryState:
    status: Status = "pending"
    kind: Kind = "pairing"
    transcript: str | None = None
    run_id: str | None = None
    turns: int = 0  # a pairing's completed turns; a panel's answers
    end_reason: str | None = None
    detail: str = ""
    attempts: int = 0  # processes that have worked on it (1 + resumes)
    waiting: str = ""  # while retrying: the provider and why (`openai: rate limited 429`)

    @property
    def done(self) -> str:
        """What the run has done, in its own unit: "7 turns", "4 answers", "1 answer"."""
        unit = "answer" if self.kind == "panel" else "turn"
        return f"{self.turns} {unit}{'' if self.turns == 1 else 's'}"

    def as_json(self) -> dict[str, Any]:
        data = asdict(self)
        if self.kind == "panel":
            data["answers"] = data.pop("turns")
        return data


def status_for(end_reason: str | None) -> Status:
    if end_reason in COMPLETE:
        return "finished"
    return "failed" if end_reason == "error" else "interrupted"


def scan(folder: Path) -> dict[str, EntryState]:
    """Entry id -> state, from the transcripts in `folder`."""
    states: dict[str, EntryState] = {}
    for path in sorted(folder.glob("*.jsonl")) if folder.is_dir() else []:
        try:
            transcript = read_transcript(path)
        except TranscriptError:
            continue  # killed while writing its header: nothing to resume; it starts anew
        entry = (transcript.header.get("experiment") or {}).get("entry")
        if not entry:
            continue
        end = transcript.end
        states[entry] = EntryState(
            status=status_for(end.reason if end else None),
            kind="panel" if transcript.is_panel else "pairing", transcript=str(path),
            run_id=transcript.run_id, turns=len(transcript.turns),
            end_reason=end.reason if end else None, detail=end.detail if end else "",
            attempts=1 + len(transcript.resumes),
        )
    return states


def write_manifest(experiment: Experiment, entries: Iterable[Entry],
                   states: dict[str, EntryState]) -> Path:
    path = experiment.out / MANIFEST
    data: dict[str, Any] = {
        "experiment": experiment.name,
        "description": experiment.description,
        "file": str(experiment.source),
        "updated_at": now_iso(),
        "settings": {k: v for k, v in experiment.resolved.items()
                     if k not in ("pairings", "openers")},
        "entries": {
            entry.id: {"pairing": entry.pairing_label, "opener": entry.opener_label,
                       "replicate": entry.replicate, "seed": entry.seed,
                       **states.get(entry.id, EntryState()).as_json()}
            for entry in entries
        },
    }
    return write_private(path, json.dumps(data, indent=1, ensure_ascii=False))
