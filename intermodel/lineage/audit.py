"""Research integrity: rebuild the exact request of any turn from its transcript alone.

Every turn record holds the SHA-256 of the request its agent was sent. Rebuilding the request
from the stored config and the records before it (with the same pure view function the live run
used) and hashing it again proves the transcript describes what the model really saw. The header
keeps the hash of its resolved config too (`config_hash`), so an edited endpoint, key variable or
header, which no request hash covers, shows as well.
"""

from __future__ import annotations

from dataclasses import dataclass

from intermodel.config.loader import from_resolved
from intermodel.config.model import Pairing, Panel
from intermodel.config.request import Request
from intermodel.engine.requests import build_request, panel_request
from intermodel.records import Turn
from intermodel.transcript.reader import Transcript
from intermodel.transcript.writer import config_hash

__all__ = ["ConfigCheck", "RebuiltRequest", "rebuild_request", "verify_config",
           "verify_transcript"]


@dataclass(frozen=True)
class RebuiltRequest:
    turn: Turn
    request: Request
    digest: str

    @property
    def matches(self) -> bool:
        return self.digest == self.turn.request_hash


@dataclass(frozen=True)
class ConfigCheck:
    recorded: str | None  # None: a header written before config hashes were kept
    digest: str

    @property
    def matches(self) -> bool:
        return self.digest == self.recorded


def verify_config(transcript: Transcript) -> ConfigCheck:
    """The header's config hashed again, beside the hash the header recorded."""
    header = transcript.header
    recorded = header.get("config_hash")
    if "config_hash" in header and not isinstance(recorded, str):
        recorded = repr(recorded)  # there but not a hash: a mismatch, not an old header
    return ConfigCheck(recorded, config_hash(header["config"]))


def rebuild_request(transcript: Transcript, index: int) -> RebuiltRequest:
    turn = transcript.turn(index)
    config = transcript.config()
    if isinstance(config, Panel):
        answer = panel_request(config, turn.agent)
        return RebuiltRequest(turn, answer, answer.digest())
    pairing = _pairing_for(transcript, turn)
    request = build_request(pairing, transcript.history, turn.agent, turn.index)
    return RebuiltRequest(turn, request, request.digest())


def verify_transcript(transcript: Transcript) -> list[RebuiltRequest]:
    return [rebuild_request(transcript, turn.index) for turn in transcript.turns]


def _pairing_for(transcript: Transcript, turn: Turn) -> Pairing:
    """A branch inherits its first turns from its parent, which sent them under the parent's
    config (kept in the branch's header); the branch's own turns follow its own."""
    parent = transcript.header.get("parent") or {}
    if "config" in parent and turn.index <= int(parent.get("after_turn", 0)):
        return from_resolved(parent["config"], source=f"{transcript.path} (parent's config)")
    return transcript.pairing()
