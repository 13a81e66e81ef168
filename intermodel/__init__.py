"""intermodel: run, watch and record live conversations between two language models.

The library is usable on its own: load a pairing (or a panel), prepare a run, subscribe to its
events, run it, and read its transcript back.

    pairing = load_pairing("configs/scripted.toml")
    async with prepared_run(pairing) as run:
        subscription = run.session.subscribe()
        end = await run.session.run()
    transcript = read_transcript(run.transcript)

The names in `__all__` are the public API. The events a subscription delivers are in
`intermodel.engine.events`.
"""

from __future__ import annotations

from intermodel.config import AgentConfig, Pairing, Panel, RunSpec, load_config, load_pairing
from intermodel.engine.bus import Subscription
from intermodel.engine.controls import Controls
from intermodel.engine.dialogue import Dialogue, DialogueState
from intermodel.engine.panel import PanelRun
from intermodel.engine.prepare import Run, prepared_run
from intermodel.engine.session import Session
from intermodel.errors import (
    AuthenticationFailed,
    BadRequest,
    ConfigError,
    ConfigIssue,
    ConnectionFailed,
    ContextTooLong,
    DependencyMissing,
    FatalError,
    IntermodelError,
    InvalidRunId,
    MissingKeyError,
    ModelNotFound,
    ProviderBroken,
    ProviderError,
    QuotaExhausted,
    RateLimited,
    ServerUnavailable,
    StreamInterrupted,
    TimedOut,
    TranscriptError,
    TranscriptInvalid,
    TransientError,
    UntrustedTranscript,
    UsageError,
)
from intermodel.records import Interjection, RunEnd, Turn, Usage
from intermodel.transcript.reader import Transcript, read_transcript
from intermodel.transcript.versions import __version__

__all__ = [
    "AgentConfig",
    "AuthenticationFailed",
    "BadRequest",
    "ConfigError",
    "ConfigIssue",
    "ConnectionFailed",
    "ContextTooLong",
    "Controls",
    "DependencyMissing",
    "Dialogue",
    "DialogueState",
    "FatalError",
    "Interjection",
    "IntermodelError",
    "InvalidRunId",
    "MissingKeyError",
    "ModelNotFound",
    "Pairing",
    "Panel",
    "PanelRun",
    "ProviderBroken",
    "ProviderError",
    "QuotaExhausted",
    "RateLimited",
    "Run",
    "RunEnd",
    "RunSpec",
    "ServerUnavailable",
    "Session",
    "StreamInterrupted",
    "Subscription",
    "TimedOut",
    "Transcript",
    "TranscriptError",
    "TranscriptInvalid",
    "TransientError",
    "Turn",
    "UntrustedTranscript",
    "Usage",
    "UsageError",
    "__version__",
    "load_config",
    "load_pairing",
    "prepared_run",
    "read_transcript",
]
