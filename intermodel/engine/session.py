"""What front ends need from a running conversation, a dialogue or a panel alike."""

from __future__ import annotations

from typing import Protocol

from intermodel.config.model import Pairing, Panel
from intermodel.engine.bus import Subscription
from intermodel.engine.controls import Controls
from intermodel.records import RunEnd

__all__ = ["Session"]


class Session(Protocol):
    @property
    def run_id(self) -> str: ...

    @property
    def pairing(self) -> Pairing | Panel: ...

    @property
    def controls(self) -> Controls: ...

    def subscribe(self) -> Subscription: ...

    def snapshot(self) -> dict[str, object]: ...

    async def run(self) -> RunEnd: ...
