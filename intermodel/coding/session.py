"""A person's coding session: the targets in order, which this coder has coded, and each new
coding written to the sidecar beside its transcript before the session moves on.

    session = CodingSession.start(runs, scheme, Human("alice"), blind=True)
    unit = session.units[session.resume_at()]
    session.code(unit, ("engaged",), rationale="Answers the question head on.")

What counts as coded: a target whose label in force, by this coder under this scheme's name,
was made under this scheme's exact wording (its hash). A label made under an older wording is
shown as the coder's earlier label but the target counts as not yet coded.

The seed of a blind session lives in the label records (`seed`): a session started again by the
same coder under the same scheme wording takes the seed of that coder's latest blind record, so
the order is the one they left; the first blind session draws a new one at random.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from intermodel.coding.labels import Human, LabelFile, LabelRecord, LabelWriter, Target
from intermodel.coding.scheme import Scheme
from intermodel.coding.targets import CodingUnit, coding_units
from intermodel.errors import UsageError
from intermodel.transcript.reader import Transcript

__all__ = ["CodingSession", "RunLabels", "new_seed", "resumed_seed"]


@dataclass(frozen=True)
class RunLabels:
    """A transcript with the labels already beside it."""

    transcript: Transcript
    labels: LabelFile


def new_seed() -> int:
    """A fresh shuffle seed: a whole number that fits a label record's 64-bit `seed`."""
    return secrets.randbits(63)


def resumed_seed(runs: Iterable[RunLabels], scheme: Scheme, coder: Human) -> int | None:
    """The seed of `coder`'s latest blind record under `scheme`'s wording, if any (the latest by
    its time: sidecars of different runs have no common order)."""
    found: tuple[str, int] | None = None
    for run in runs:
        for record in run.labels.records:
            if (record.blind and record.seed is not None and record.coder == coder
                    and record.scheme == scheme.name and record.scheme_hash == scheme.digest
                    and (found is None or record.at >= found[0])):
                found = (record.at, record.seed)
    return None if found is None else found[1]


@dataclass
class CodingSession:
    """The targets of one scheme, in order, and what `coder` has said about each."""

    scheme: Scheme
    coder: Human
    units: list[CodingUnit]
    blind: bool = False
    seed: int | None = None
    coded_now: int = 0  # records written in this session
    _latest: dict[tuple[str, Target], LabelRecord] = field(default_factory=dict)
    _writers: dict[Path, LabelWriter] = field(default_factory=dict)

    @classmethod
    def start(cls, runs: Sequence[RunLabels], scheme: Scheme, coder: Human, *,
              blind: bool = False, seed: int | None = None) -> CodingSession:
        """The session over `runs`; UsageError when the scheme has no target in any of them.
        A blind session without `seed` resumes the coder's seed, or draws a new one."""
        if blind and seed is None:
            seed = resumed_seed(runs, scheme, coder)
            if seed is None:
                seed = new_seed()
        units = coding_units([run.transcript for run in runs], scheme, blind=blind,
                             seed=seed or 0)
        if not units:
            where = {"turn": "turns of a conversation (panels have none)",
                     "answer": "answers of a panel (conversations have none)",
                     "run": "runs"}[scheme.scope]
            read = (f"the {len(runs)} transcripts read hold none" if len(runs) != 1
                    else "the transcript read holds none")
            raise UsageError(f"nothing to code: scheme {scheme.name} codes {where}, and {read}")
        session = cls(scheme, coder, units, blind=blind, seed=seed if blind else None)
        for run in runs:
            for record in run.labels.current():
                if record.scheme == scheme.name and record.coder == coder:
                    session._latest[(record.run_id, record.target)] = record
        return session

    # -- reading --------------------------------------------------------------------------------

    def record_of(self, unit: CodingUnit) -> LabelRecord | None:
        """This coder's label in force for `unit` under the scheme's name (any wording)."""
        return self._latest.get((unit.run_id, unit.target))

    def is_coded(self, unit: CodingUnit) -> bool:
        record = self.record_of(unit)
        return record is not None and record.scheme_hash == self.scheme.digest

    @property
    def coded(self) -> int:
        return sum(self.is_coded(unit) for unit in self.units)

    def progress(self) -> str:
        return f"{self.coded} of {len(self.units)} coded"

    def next_uncoded(self, after: int = -1) -> int | None:
        """The first uncoded target after position `after`, wrapping round; None when every
        target is coded."""
        count = len(self.units)
        for step in range(1, count + 1):
            position = (after + step) % count
            if not self.is_coded(self.units[position]):
                return position
        return None

    def resume_at(self) -> int:
        """Where the coder stopped: the first target they have not coded, or the first."""
        found = self.next_uncoded()
        return 0 if found is None else found

    # -- writing --------------------------------------------------------------------------------

    def code(self, unit: CodingUnit, labels: Sequence[str], rationale: str = "") -> LabelRecord:
        """Record `labels` for `unit`, on disk (fsynced) before this returns. ValueError for
        labels that do not fit the scheme; TranscriptError when the sidecar cannot be written."""
        problem = self.scheme.check_labels(labels)
        if problem is not None:
            raise ValueError(problem)
        record = LabelRecord(unit.run_id, unit.target, self.scheme.name, self.scheme.digest,
                             tuple(labels), self.coder, rationale=rationale, blind=self.blind,
                             seed=self.seed if self.blind else None)
        self._writer(unit.transcript.path).append(record)
        self._latest[(unit.run_id, unit.target)] = record
        self.coded_now += 1
        return record

    def _writer(self, transcript: Path) -> LabelWriter:
        """The sidecar writer of `transcript`; one is kept open at a time (a folder may hold
        thousands of runs, and a coder works through them one by one)."""
        writer = self._writers.get(transcript)
        if writer is None:
            self.close()
            writer = self._writers[transcript] = LabelWriter.open(transcript)
        return writer

    def close(self) -> None:
        for writer in self._writers.values():
            writer.close()
        self._writers.clear()
