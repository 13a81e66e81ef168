"""Continuing a run from its transcript: the transcript is the state.

The conversation so far (turns and interjections), the turn budget with its extensions and the
tokens used are all read back from the records; the speaker of the next turn follows from its
number. The run keeps its id and its file: a `resume` record marks the seam, so the finished
transcript reads as one run.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from intermodel.config.model import Pairing
from intermodel.engine.dialogue import DialogueState
from intermodel.engine.prepare import ProviderFactory, Run, prepared_run
from intermodel.errors import UsageError
from intermodel.lineage.trust import (
    Approval,
    Assessment,
    Vouchers,
    assess,
    ensure_trusted,
    refuse,
    vouchers_of_transcript,
)
from intermodel.providers.registry import make_provider
from intermodel.records import Resumption, Usage, now_iso
from intermodel.security.secrets import Redactor
from intermodel.transcript.reader import Transcript, read_transcript
from intermodel.transcript.versions import versions
from intermodel.transcript.writer import TranscriptWriter

__all__ = ["ResumePlan", "assess_resume", "plan_resume", "prepared_resume"]

# Endings that need a bigger budget (--turns) before the run may go on.
_COMPLETE = {
    "max_turns": "it reached its budget of {turns} turns",
    "stop_phrase": "it ended when {detail}",
    "token_budget": "it reached its token budget ({detail})",
}


@dataclass(frozen=True)
class ResumePlan:
    pairing: Pairing
    state: DialogueState
    marker: Resumption


def plan_resume(transcript: Transcript, *, turns: int | None = None) -> ResumePlan:
    done = len(transcript.turns)
    end = transcript.end
    budget = transcript.max_turns if turns is None else turns
    if turns is not None and turns <= done:
        raise UsageError(f"{transcript.path} already has {done} turns; --turns must be more")
    if end is not None and end.reason in _COMPLETE and turns is None:
        why = _COMPLETE[end.reason].format(turns=done, detail=end.detail)
        raise UsageError(f"{transcript.path} is complete: {why}. Continue it with --turns N "
                         f"(N > {done}).")
    if end is not None and end.reason == "token_budget":
        raise UsageError(f"{transcript.path} reached its token budget; a resumed run would stop "
                         "at once (raise dialogue.max_total_tokens and start a new run)")
    pairing = transcript.pairing()
    usage = Usage.per_agent(transcript.turns, pairing.agent_names)
    state = DialogueState(history=transcript.history, max_turns=budget, usage=usage)
    marker = Resumption(run_id=transcript.run_id, after_turn=done, max_turns=budget,
                        torn_bytes=transcript.torn_bytes, versions=versions(), at=now_iso())
    return ResumePlan(pairing, state, marker)


def assess_resume(transcript: Transcript, plan: ResumePlan,
                  vouchers: Vouchers | None = None) -> Assessment:
    """Whether the seats the resumed run would use are vouched for (by default by the pairing
    file the transcript names)."""
    found = vouchers_of_transcript(transcript.header) if vouchers is None else vouchers
    return assess(transcript.path, plan.pairing, found, action="resume")


@asynccontextmanager
async def prepared_resume(
    path: str | Path,
    *,
    turns: int | None = None,
    environ: Mapping[str, str] | None = None,
    provider_factory: ProviderFactory = make_provider,
    cost_action: Literal["stop", "pause"] = "stop",
    approve: Approval = refuse,
    vouchers: Vouchers | None = None,
) -> AsyncIterator[Run]:
    """Like `prepared_run`, for the run recorded in `path`: same id, same file, same settings.

    Nothing is read from the environment and nothing is sent before the transcript's seats are
    vouched for (by its pairing file, or `vouchers` when given) or `approve` consents to them;
    otherwise UntrustedTranscript. See `intermodel.lineage.trust`."""
    transcript = read_transcript(path)
    plan = plan_resume(transcript, turns=turns)
    ensure_trusted(assess_resume(transcript, plan, vouchers), approve)

    def reopen(redactor: Redactor) -> TranscriptWriter:
        writer, _ = TranscriptWriter.reopen(transcript.path, redactor=redactor)
        return writer

    async with prepared_run(plan.pairing, open_writer=reopen, state=plan.state,
                            run_id=transcript.run_id, resume=plan.marker, environ=environ,
                            provider_factory=provider_factory, cost_action=cost_action) as run:
        yield run
