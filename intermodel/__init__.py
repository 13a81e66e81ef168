"""intermodel: run, watch and record live conversations between two language models.

The library is usable on its own: load a pairing, prepare a run, subscribe to its events.

    pairing = load_pairing("configs/scripted.toml")
    async with prepared_run(pairing) as run:
        async for event in run.dialogue.subscribe(): ...
"""

from __future__ import annotations

from intermodel.config import AgentConfig, Pairing, load_pairing
from intermodel.engine.bus import Subscription
from intermodel.engine.controls import Controls
from intermodel.engine.dialogue import Dialogue, DialogueState
from intermodel.engine.prepare import Run, prepared_run
from intermodel.errors import ConfigError, IntermodelError, ProviderError
from intermodel.records import Interjection, RunEnd, Turn, Usage
from intermodel.transcript.reader import Transcript, read_transcript
from intermodel.transcript.versions import __version__

__all__ = [
    "AgentConfig",
    "ConfigError",
    "Controls",
    "Dialogue",
    "DialogueState",
    "Interjection",
    "IntermodelError",
    "Pairing",
    "ProviderError",
    "Run",
    "RunEnd",
    "Subscription",
    "Transcript",
    "Turn",
    "Usage",
    "__version__",
    "load_pairing",
    "prepared_run",
    "read_transcript",
]
