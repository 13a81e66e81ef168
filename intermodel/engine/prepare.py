"""Assembling a run: credentials, providers, transcript, session — and tearing it down cleanly.

Front ends (headless console, Textual UI, tests) call `prepared_run` and then drive the session
they get back (a dialogue for a pairing, a panel run for a panel); everything that must be
released (HTTP clients, loaded models, the transcript file) is released when the context exits,
however the run ended.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AbstractAsyncContextManager, AsyncExitStack, asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import anyio

from intermodel.config.credentials import resolve_credentials
from intermodel.config.model import AgentConfig, Pairing, Panel, RunSpec
from intermodel.engine.dialogue import Dialogue, DialogueState
from intermodel.engine.panel import PanelRun
from intermodel.engine.session import Session, new_run_id
from intermodel.providers.base import Provider
from intermodel.providers.registry import make_provider
from intermodel.records import Resumption
from intermodel.security.runid import checked_run_id
from intermodel.security.secrets import Credentials, Redactor
from intermodel.transcript.writer import TranscriptWriter

__all__ = ["ProviderFactory", "Run", "RunOpener", "WriterFactory", "prepared_run",
           "transcripts_dir"]

ProviderFactory = Callable[[AgentConfig, str, Credentials], Provider]
WriterFactory = Callable[[Redactor], TranscriptWriter]


def transcripts_dir(spec: RunSpec, override: str | Path | None = None) -> Path:
    """Where transcripts go: the command line, then INTERMODEL_TRANSCRIPTS, then the spec."""
    return Path(override or os.environ.get("INTERMODEL_TRANSCRIPTS") or spec.transcripts)


@dataclass
class Run:
    """A prepared run: its session, the providers it talks to, its transcript (if written)."""

    session: Session[RunSpec]
    providers: Mapping[str, Provider]
    transcript: Path | None


# Prepares a run when entered: `functools.partial(prepared_run, pairing, ...)`, or a resume, or a
# branch; what front ends are given to drive.
RunOpener = Callable[[], AbstractAsyncContextManager[Run]]


@asynccontextmanager
async def prepared_run(
    spec: RunSpec,
    *,
    out_dir: str | Path | None = None,
    record: bool = True,
    environ: Mapping[str, str] | None = None,
    provider_factory: ProviderFactory = make_provider,
    state: DialogueState | None = None,
    open_writer: WriterFactory | None = None,
    run_id: str | None = None,
    resume: Resumption | None = None,
    origin: Mapping[str, Any] | None = None,
    cost_action: Literal["stop", "pause"] = "stop",
) -> AsyncIterator[Run]:
    """Everything a run needs, checked before the first request (a missing key fails here).

    The transcript is a new file in the transcripts folder unless `open_writer` provides one
    (resume reopens the run's own file); `record=False` writes none. `state`, `resume` and
    `cost_action` concern a pairing's dialogue only."""
    run_id = new_run_id() if run_id is None else checked_run_id(run_id)
    credentials = resolve_credentials(spec, os.environ if environ is None else environ)
    redactor = Redactor.for_credentials(credentials)
    async with AsyncExitStack() as stack:
        providers: dict[str, Provider] = {}
        for agent in spec.agents:
            provider = provider_factory(agent, spec.partner_of(agent.name), credentials[agent.name])
            providers[agent.name] = await stack.enter_async_context(_entered(provider))
        writer: TranscriptWriter | None = None
        if open_writer is not None:
            writer = open_writer(redactor)
        elif record:
            writer = TranscriptWriter.create(transcripts_dir(spec, out_dir), spec.name, run_id,
                                             redactor=redactor)
        if writer is not None:
            stack.callback(writer.close)
        path = str(writer.path) if writer else None
        session: Session[RunSpec]
        match spec:
            case Pairing():
                session = Dialogue(spec, providers, recorder=writer, state=state,
                                   redactor=redactor, run_id=run_id, transcript_path=path,
                                   resume=resume, origin=origin, cost_action=cost_action)
            case Panel():
                session = PanelRun(spec, providers, recorder=writer, transcript_path=path,
                                   redactor=redactor, run_id=run_id, origin=origin)
            case _:
                raise TypeError(f"no session runs a {type(spec).__name__}")
        yield Run(session, providers, writer.path if writer else None)


@asynccontextmanager
async def _entered(provider: Provider) -> AsyncIterator[Provider]:
    """`async with provider`, left quietly: leaving must not mask how the run ended, and must
    finish (within a few seconds) even while cancelled. A failing close changes nothing for the
    user."""
    entered = await provider.__aenter__()
    try:
        yield entered
    finally:
        with anyio.CancelScope(shield=True), anyio.move_on_after(5), \
                contextlib.suppress(Exception):
            await provider.__aexit__(None, None, None)
