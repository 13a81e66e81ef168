"""A study as the findings commands see it: transcripts, each with the labels beside it.

    runs, skipped = read_study("experiments/demo")
    codings, set_aside = scheme_codings(runs, "engagement")

`read_study` reads a transcript, or every transcript under a folder (`*.jsonl`, but not the
`*.labels.jsonl` sidecars), with its labels. Like the other folder commands it sets aside what it
cannot read instead of failing: a file that is not a transcript, a damaged one, and a sidecar that
does not fit the labels format (its run is kept, without labels). Each line of `skipped` starts
with the file's path and says why.

`scheme_codings` gives the labels in force under one scheme, each tied to its run and to the agent
whose text was coded. A record is set aside (and counted, by reason) when its target is not in its
transcript (a turn the run never had, an agent that is not one of the panel's), when its target's
scope is not the scheme's, or, when the scheme itself is at hand, when its labels are not the
scheme's.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from intermodel.coding.labels import (
    SUFFIX,
    LabelFile,
    LabelRecord,
    Target,
    is_sidecar,
    read_sidecar,
    sidecar_path,
)
from intermodel.coding.scheme import Scheme
from intermodel.errors import TranscriptError, UsageError
from intermodel.transcript.reader import Transcript, read_transcript

__all__ = [
    "Coding",
    "SetAside",
    "StudyRun",
    "agent_models",
    "hashes",
    "is_sidecar",
    "read_study",
    "run_model",
    "scheme_codings",
    "scheme_names",
    "target_agent",
    "transcript_files",
]


@dataclass
class StudyRun:
    transcript: Transcript
    labels: LabelFile

    @property
    def run_id(self) -> str:
        return self.transcript.run_id

    @property
    def path(self) -> Path:
        return self.transcript.path


@dataclass(frozen=True)
class Coding:
    """One label record in force, with the run it is about and the agent whose text was coded
    (None for a whole run)."""

    run: StudyRun
    record: LabelRecord
    agent: str | None

    @property
    def unit(self) -> tuple[str, Target]:
        return (self.record.run_id, self.record.target)


def transcript_files(folder: Path) -> list[Path]:
    """Every `*.jsonl` under `folder` that is not a labels sidecar, sorted. Symbolic links to
    folders are not followed (os.walk), so a link loop cannot trap the walk."""
    found = [Path(root) / name for root, _, names in os.walk(folder)
             for name in names if name.endswith(".jsonl") and not is_sidecar(name)]
    return sorted(found)


def read_study(path: str | Path) -> tuple[list[StudyRun], list[str]]:
    """The runs of the transcript `path` or of the folder `path`, and the files set aside. A
    single file must be readable (TranscriptInvalid otherwise); a sidecar named as `path` stands
    for the transcript beside it."""
    path = Path(path)
    if not path.exists() and not path.is_symlink():
        raise UsageError(f"{path}: no such file or folder")
    if not path.is_dir():
        if is_sidecar(path.name):
            path = path.with_name(path.name[: -len(SUFFIX)] + ".jsonl")
        transcript = read_transcript(path)
        return [StudyRun(transcript, read_sidecar(path, run_id=transcript.run_id))], []
    runs: list[StudyRun] = []
    skipped: list[str] = []
    for file in transcript_files(path):
        try:
            transcript = read_transcript(file)
        except TranscriptError as exc:
            skipped.append(str(exc))
            continue
        try:
            labels = read_sidecar(file, run_id=transcript.run_id)
        except TranscriptError as exc:
            skipped.append(str(exc))
            labels = LabelFile(sidecar_path(file))
        runs.append(StudyRun(transcript, labels))
    return runs, skipped


def agent_models(transcript: Transcript) -> dict[str, str]:
    """Each configured agent's model as `provider:model`."""
    agents = _mapping(_mapping(transcript.header.get("config")).get("agents"))
    return {str(name): f"{_mapping(table).get('provider')}:{_mapping(table).get('model')}"
            for name, table in agents.items()}


def run_model(transcript: Transcript) -> str:
    """The models of a run as one name: `provider:model` for a self-dialogue or a panel of one
    model, else the distinct models in pairing order joined by ` + `."""
    return " + ".join(dict.fromkeys(agent_models(transcript).values()))


def target_agent(transcript: Transcript, target: Target) -> tuple[bool, str | None]:
    """Whether `target` is in the transcript, and whose text it is (None for the run)."""
    if target.scope == "run":
        return True, None
    if target.scope == "turn":
        for turn in transcript.turns:
            if turn.index == target.turn:
                return not transcript.is_panel, turn.agent
        return False, None
    answered = {turn.agent for turn in transcript.turns}
    return transcript.is_panel and target.agent in answered, target.agent


@dataclass
class SetAside:
    """Label records left out of a scheme's codings, counted by reason."""

    reasons: Counter[str] = field(default_factory=Counter)

    def add(self, reason: str) -> None:
        self.reasons[reason] += 1

    def lines(self) -> list[str]:
        return [f"{count} label record{'s' if count != 1 else ''} set aside: {reason}"
                for reason, count in sorted(self.reasons.items())]


def scheme_codings(runs: Iterable[StudyRun], name: str, *, scheme: Scheme | None = None
                   ) -> tuple[list[Coding], SetAside]:
    """The records in force under the scheme `name` (with `scheme` given: only those made under
    its exact wording, its hash), checked against their transcripts."""
    found: list[Coding] = []
    aside = SetAside()
    for run in runs:
        for record in run.labels.current():
            if record.scheme != name:
                continue
            if scheme is not None and record.scheme_hash != scheme.digest:
                aside.add("made under another wording of the scheme (another hash)")
                continue
            if scheme is not None and record.target.scope != scheme.scope:
                aside.add(f"a {record.target.scope} target, but the scheme codes "
                          f"{scheme.scope}s")
                continue
            exists, agent = target_agent(run.transcript, record.target)
            if not exists:
                aside.add("its target is not in its transcript")
                continue
            if scheme is not None and record.labels:
                problem = scheme.check_labels(record.labels)
                if problem is not None:
                    aside.add(f"labels that do not fit the scheme ({problem})")
                    continue
            found.append(Coding(run, record, agent))
    return found, aside


def hashes(runs: Iterable[StudyRun], name: str) -> Counter[str]:
    """How many records in force under the scheme `name` were made under each of its hashes."""
    return Counter(record.scheme_hash for run in runs for record in run.labels.current()
                   if record.scheme == name)


def scheme_names(runs: Sequence[StudyRun]) -> list[str]:
    """Every scheme some record in force names, alphabetically."""
    return sorted({record.scheme for run in runs for record in run.labels.current()})


def _mapping(value: object) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
