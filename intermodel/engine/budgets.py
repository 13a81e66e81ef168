"""A dialogue's four budgets: turns, tokens, seconds and dollars.

Pure bookkeeping over what the dialogue already tracks (its turns and usage, the clock): each check
answers whether the run must end, and why, in the words its final record uses. The dialogue
decides what to do about it (a reached cost budget stops an unattended run, but only pauses a
watched one).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass

from intermodel.config.model import Pairing
from intermodel.records import EndReason, Usage
from intermodel.security.bounds import MAX_TURNS

__all__ = ["Budgets", "Exceeded"]


@dataclass(frozen=True, slots=True)
class Exceeded:
    """A budget the run has used up: the final record's reason, and a line on how."""

    reason: EndReason
    detail: str


class Budgets:
    """The limits a pairing sets. The turn budget is the dialogue's state (a resume carries it,
    an extend raises it), so it is passed in rather than kept here."""

    def __init__(self, pairing: Pairing) -> None:
        self._dialogue = pairing.dialogue
        self._agents = pairing.agents

    def exceeded(self, next_turn: int, max_turns: int, usage: Mapping[str, Usage],
                 elapsed: float) -> Exceeded | None:
        """The budget that forbids turn `next_turn`, if any (checked before each turn)."""
        d = self._dialogue
        if next_turn > max_turns:
            return Exceeded(EndReason.MAX_TURNS, f"{max_turns} turns")
        total = Usage.summed(usage.values()).total
        if d.max_total_tokens is not None and total >= d.max_total_tokens:
            return Exceeded(EndReason.TOKEN_BUDGET, f"{total} of {d.max_total_tokens} tokens")
        if d.max_seconds is not None and elapsed >= d.max_seconds:
            return Exceeded(EndReason.TIME_BUDGET, self.time_detail())
        return None

    @staticmethod
    def extended(max_turns: int, next_turn: int, more: int) -> int:
        """The turn budget after `more` turns are added (or taken, down to the turns done),
        capped as every budget is: the transcript records it, and readers bound it."""
        return min(MAX_TURNS, max(next_turn - 1, max_turns + more))

    def time_detail(self) -> str:
        return f"{self._dialogue.max_seconds or 0:g} s"

    def deadline(self, started: float) -> float:
        """When the time budget runs out, on the clock `started` was read from."""
        seconds = self._dialogue.max_seconds
        return math.inf if seconds is None else started + seconds

    def cost(self, usage: Mapping[str, Usage]) -> float | None:
        """Dollars spent, when every agent has a price."""
        total = 0.0
        for agent in self._agents:
            if agent.price is None:
                return None
            used = usage[agent.name]
            total += agent.price.cost(used.input_tokens, used.output_tokens)
        return total

    def cost_reached(self, usage: Mapping[str, Usage]) -> Exceeded | None:
        """The cost budget, once what was spent reaches it."""
        budget = self._dialogue.max_cost
        spent = self.cost(usage)
        if budget is None or spent is None or spent < budget:
            return None
        return Exceeded(EndReason.COST_BUDGET, f"${spent:.4f} spent, budget ${budget:g}")
