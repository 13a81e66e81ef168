"""What if, at turn N? A new run that starts from another run's state after turn N.

The new run (the branch) inherits the conversation up to turn N — turns, interjections that came
before them, trims — and may change what happens next: a human message for the next turn, another
opener, or another agent (or just another model) in one seat. Its transcript is complete on its
own: the inherited records are written into it, and its header names the parent and keeps the
parent's config, so `inspect` can check the inherited requests too. The parent's transcript gets a
`branch` record pointing to the child.
"""

from __future__ import annotations

import copy
import os
from collections.abc import AsyncIterator, Iterable, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from intermodel.config import load_pairing
from intermodel.config.model import Pairing
from intermodel.config.variants import vary
from intermodel.engine.dialogue import DialogueState
from intermodel.engine.prepare import Run, prepared_run
from intermodel.errors import UsageError
from intermodel.lineage.trust import (
    Approval,
    Assessment,
    assess,
    ensure_trusted,
    refuse,
    vouchers_of_transcript,
)
from intermodel.records import Branch, HistoryEntry, Interjection, Trim, Turn, Usage, now_iso
from intermodel.transcript.reader import Transcript, read_transcript
from intermodel.transcript.writer import TranscriptWriter

__all__ = ["BranchPlan", "assess_branch", "plan_branch", "prepared_branch"]


@dataclass(frozen=True)
class BranchPlan:
    pairing: Pairing
    state: DialogueState
    origin: dict[str, Any]


def plan_branch(
    parent: Transcript,
    after_turn: int,
    *,
    say: str | None = None,
    to: str = "both",
    opener: str | None = None,
    swap: Mapping[str, str] | None = None,
    models: Mapping[str, str] | None = None,
    turns: int | None = None,
) -> BranchPlan:
    """`swap` maps an agent to "FILE:AGENT" (that pairing file's agent takes the seat); `models`
    maps an agent to a model id to use instead."""
    done = len(parent.turns)
    if not 0 <= after_turn <= done:
        raise UsageError(f"{parent.path} has turns 1-{done}; --turn must be in 0-{done}")
    base = parent.pairing()
    tables = {name: _seat(base, name, spec) for name, spec in (swap or {}).items()}
    for name, model in (models or {}).items():
        table = copy.deepcopy(dict(tables.get(name) or _table(base, name)))
        table["model"] = model
        tables[name] = table
    budget = turns if turns is not None else max(parent.max_turns, after_turn + 1)
    if budget <= after_turn:
        raise UsageError(f"--turns must be more than {after_turn}")
    # The branch names its parent's pairing file, which vouches for the seats it kept.
    source = parent.header.get("source")
    pairing = vary(base, opener=opener, max_turns=budget, agents=tables,
                   source=source if isinstance(source, str) and source else None)
    history: list[HistoryEntry] = [
        e for e in parent.history
        if (isinstance(e, Turn) and e.index <= after_turn)
        or (isinstance(e, Interjection) and e.before_turn <= after_turn)
        or (isinstance(e, Trim) and e.turn <= after_turn)
    ]
    if say:
        history.append(Interjection(after_turn + 1, pairing.addressees(to), say, now_iso()))
    usage = Usage.per_agent((e for e in history if isinstance(e, Turn)), pairing.agent_names)
    origin: dict[str, Any] = {"parent": {"run_id": parent.run_id, "transcript": str(parent.path),
                                         "after_turn": after_turn,
                                         "config": parent.header["config"]}}
    # Which file vouches for each swapped seat, for a later resume of the branch.
    seats_from = {**_inherited_swaps(parent), **(swap or {})}
    if seats_from:
        origin["parent"]["swap"] = seats_from
    state = DialogueState(history=history, max_turns=budget, usage=usage, inherited=True)
    return BranchPlan(pairing, state, origin)


def _inherited_swaps(parent: Transcript) -> dict[str, str]:
    """Seats the parent itself took from other pairing files (when it is a branch too)."""
    origin = parent.header.get("parent")
    found = origin.get("swap") if isinstance(origin, dict) else None
    if not isinstance(found, dict):
        return {}
    return {k: v for k, v in found.items() if isinstance(k, str) and isinstance(v, str)}


def assess_branch(parent: Transcript, plan: BranchPlan,
                  swapped: Iterable[str] = ()) -> Assessment:
    """Whether the branch's seats are vouched for: kept seats by the parent's pairing file (and
    the files of seats the parent took by --swap), `swapped` seats by the command line."""
    return assess(parent.path, plan.pairing, vouchers_of_transcript(parent.header),
                  action="branch", vouched_seats=swapped)


def _table(pairing: Pairing, name: str) -> Mapping[str, Any]:
    try:
        return dict(pairing.resolved["agents"][name])
    except KeyError:
        names = " or ".join(pairing.agent_names)
        raise UsageError(f"no agent {name!r} in this run (it has {names})") from None


def _seat(pairing: Pairing, name: str, spec: str) -> Mapping[str, Any]:
    """The agent table named by "FILE:AGENT", to sit in `name`'s seat."""
    _table(pairing, name)  # the seat must exist
    file, _, agent = spec.rpartition(":")
    if not file or not agent:
        raise UsageError(f"--swap {name}={spec}: expected FILE:AGENT, e.g. configs/x.toml:gpt")
    other = load_pairing(file)
    if agent not in other.agent_names:
        raise UsageError(f"{file} has no agent {agent!r} (it has {', '.join(other.agent_names)})")
    return dict(other.resolved["agents"][agent])


@asynccontextmanager
async def prepared_branch(
    parent_path: str | Path,
    after_turn: int,
    *,
    out_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
    cost_action: Literal["stop", "pause"] = "stop",
    approve: Approval = refuse,
    **changes: Any,
) -> AsyncIterator[Run]:
    """A run of the branch, ready to go; the parent is linked to it before it starts. As for
    `prepared_resume`, nothing is read from the environment or sent before its seats are vouched
    for or `approve` consents."""
    parent = read_transcript(parent_path)
    plan = plan_branch(parent, after_turn, **changes)
    ensure_trusted(assess_branch(parent, plan, (changes.get("swap") or {}).keys()), approve)
    folder = out_dir or Path(parent_path).parent
    link, _ = TranscriptWriter.reopen(parent.path)  # refused while the parent is running
    try:
        async with prepared_run(plan.pairing, out_dir=folder, state=plan.state,
                                origin=plan.origin, cost_action=cost_action,
                                environ=os.environ if environ is None else environ) as run:
            assert run.transcript is not None
            await link.record(Branch(run.session.run_id, str(run.transcript), after_turn,
                                         now_iso()))
            link.close()
            yield run
    finally:
        link.close()
