"""Assembling a run: credentials, providers, transcript, dialogue — and tearing it down cleanly.

Front ends (headless console, Textual UI, tests) call `prepared_run` and then drive the dialogue
they get back; everything that must be released (HTTP clients, loaded models, the transcript file)
is released when the context exits, however the run ended.
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
from intermodel.config.model import AgentConfig, Pairing, Panel
from intermodel.engine.dialogue import Dialogue, DialogueState, new_run_id
from intermodel.engine.panel import PanelRun
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


def transcripts_dir(pairing: Pairing | Panel, override: str | Path | None = None) -> Path:
    """Where transcripts go: the command line, then INTERMODEL_TRANSCRIPTS, then the pairing."""
    return Path(override or os.environ.get("INTERMODEL_TRANSCRIPTS") or pairing.transcripts)


@dataclass
class Run:
    """A prepared run: its session, the providers it talks to, its transcript (if written)."""

    dialogue: Dialogue | PanelRun
    providers: Mapping[str, Provider]
    transcript: Path | None


# Prepares a run when entered: `functools.partial(prepared_run, pairing, ...)`, or a resume, or a
# branch; what front ends are given to drive.
RunOpener = Callable[[], AbstractAsyncContextManager[Run]]


@asynccontextmanager
async def prepared_run(
    pairing: Pairing | Panel,
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
    (resume reopens the run's own file); `record=False` writes none."""
    run_id = new_run_id() if run_id is None else checked_run_id(run_id)
    credentials = resolve_credentials(pairing, os.environ if environ is None else environ)
    redactor = Redactor.for_credentials(credentials)
    async with AsyncExitStack() as stack:
        providers: dict[str, Provider] = {}
        for agent in pairing.agents:
            partner = pairing.partner_of(agent.name) if isinstance(pairing, Pairing) else ""
            provider = provider_factory(agent, partner, credentials[agent.name])
            providers[agent.name] = provider
            stack.push_async_callback(_close_quietly, provider)
        writer: TranscriptWriter | None = None
        if open_writer is not None:
            writer = open_writer(redactor)
        elif record:
            writer = TranscriptWriter.create(transcripts_dir(pairing, out_dir), pairing.name,
                                             run_id, redactor=redactor)
        if writer is not None:
            stack.callback(writer.close)
        path = str(writer.path) if writer else None
        dialogue: Dialogue | PanelRun
        if isinstance(pairing, Panel):
            dialogue = PanelRun(pairing, providers, recorder=writer, transcript_path=path,
                                redactor=redactor, run_id=run_id, origin=origin)
        else:
            dialogue = Dialogue(
                pairing, providers, recorder=writer, state=state, redactor=redactor,
                run_id=run_id, transcript_path=path, resume=resume, origin=origin,
                cost_action=cost_action,
            )
        yield Run(dialogue, providers, writer.path if writer else None)


async def _close_quietly(provider: Provider) -> None:
    # Closing must not mask how the run ended, and must finish even while cancelled.
    # A failing close changes nothing for the user.
    with anyio.CancelScope(shield=True), anyio.move_on_after(5), contextlib.suppress(Exception):
        await provider.aclose()
