"""Research integrity: rebuild the exact request of any turn from its transcript alone.

Every turn record holds the SHA-256 of the request its agent was sent. Rebuilding the request
from the stored config and the records before it (with the same pure view function the live run
used) and hashing it again proves the transcript describes what the model really saw.
"""

from __future__ import annotations

from dataclasses import dataclass

from intermodel.providers.base import Request
from intermodel.records import Turn
from intermodel.transcript.reader import Transcript
from intermodel.views import build_request

__all__ = ["RebuiltRequest", "rebuild_request", "verify_transcript"]


@dataclass(frozen=True)
class RebuiltRequest:
    turn: Turn
    request: Request
    digest: str

    @property
    def matches(self) -> bool:
        return self.digest == self.turn.request_hash


def rebuild_request(transcript: Transcript, index: int) -> RebuiltRequest:
    turn = transcript.turn(index)
    request = build_request(transcript.pairing(), transcript.history, turn.agent, turn.index)
    return RebuiltRequest(turn, request, request.digest())


def verify_transcript(transcript: Transcript) -> list[RebuiltRequest]:
    pairing = transcript.pairing()
    history = transcript.history
    rebuilt = []
    for turn in transcript.turns:
        request = build_request(pairing, history, turn.agent, turn.index)
        rebuilt.append(RebuiltRequest(turn, request, request.digest()))
    return rebuilt
