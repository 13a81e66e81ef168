"""From an experiment to its runs: the matrix of entries, and what they may cost at most."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from intermodel.config.experiment import Experiment
from intermodel.config.model import Pairing, Panel, RunSpec
from intermodel.config.request import Message, Request
from intermodel.config.variants import vary
from intermodel.engine.dialogue import speaker_of
from intermodel.engine.requests import panel_request
from intermodel.engine.tokens import estimate_tokens

__all__ = ["CostBound", "Entry", "cost_bound", "plan", "run_cost_bound"]

# Token estimates are rough (see intermodel.engine.tokens): an upper bound pads the prompt part.
_ESTIMATE_SLACK = 1.3


@dataclass(frozen=True)
class Entry:
    """One run of the experiment."""

    id: str  # "<pairing>/<opener>/r<replicate>"
    pairing_label: str
    opener_label: str
    replicate: int
    seed: int | None
    pairing: RunSpec  # with this entry's opener, budget and seed applied

    def origin(self, experiment: Experiment) -> dict[str, Any]:
        return {"experiment": {
            "name": experiment.name, "entry": self.id, "pairing": self.pairing_label,
            "opener": self.opener_label, "replicate": self.replicate, "seed": self.seed,
        }}


def plan(experiment: Experiment) -> list[Entry]:
    """Every entry, replicate-major, so an interrupted batch has covered every cell evenly."""
    entries = []
    for replicate in range(1, experiment.replicates + 1):
        seed = None if experiment.seed is None else experiment.seed + replicate - 1
        for pairing_label, pairing in experiment.pairings.items():
            for opener in experiment.openers:
                variant = vary(pairing, opener=opener.text, max_turns=experiment.turns, seed=seed)
                entries.append(Entry(f"{pairing_label}/{opener.label}/r{replicate}",
                                     pairing_label, opener.label, replicate, seed, variant))
    return entries


def run_cost_bound(spec: RunSpec) -> float | None:
    """The most one run of `spec` can cost under its budgets, in US dollars; None when an
    agent has no price. Every turn is assumed to use its whole `max_tokens`, and each prompt to
    hold every earlier turn (capped by the agent's context window)."""
    if any(agent.price is None for agent in spec.agents):
        return None
    match spec:
        case Panel():  # one answer each
            return sum(a.price.cost(int(estimate_tokens(panel_request(spec, a.name))
                                        * _ESTIMATE_SLACK), a.sampling.max_tokens)
                       for a in spec.agents if a.price is not None)
        case Pairing():
            return _dialogue_cost_bound(spec)
    raise TypeError(f"no cost bound for a {type(spec).__name__}")


def _dialogue_cost_bound(pairing: Pairing) -> float:
    d = pairing.dialogue
    base = {a.name: _base_tokens(pairing, a.name) for a in pairing.agents}
    history = 0
    total_cost = total_tokens = 0.0
    most_for_a_turn = 0.0
    for turn in range(1, d.max_turns + 1):
        agent = pairing.agent(speaker_of(pairing, turn))
        reply = agent.sampling.max_tokens
        prompt = base[agent.name] + history
        if agent.context_window:
            prompt = min(prompt, max(0, agent.context_window - reply))
        assert agent.price is not None
        cost = agent.price.cost(prompt, reply)
        total_cost += cost
        total_tokens += prompt + reply
        most_for_a_turn = max(most_for_a_turn, cost)
        history += reply
        if d.max_total_tokens is not None and total_tokens >= d.max_total_tokens:
            break  # the turn that crosses the token budget is the last
    if d.max_cost is not None:
        # The turn that crosses the cost budget still completes.
        total_cost = min(total_cost, d.max_cost + most_for_a_turn)
    return total_cost


def _base_tokens(pairing: Pairing, name: str) -> int:
    d = pairing.dialogue
    sees_opener = d.opener_to == name or d.opener_shared
    request = Request("", pairing.system_prompt(name),
                      (Message("user", d.opener),) if sees_opener else ())
    return int(estimate_tokens(request) * _ESTIMATE_SLACK)


@dataclass(frozen=True)
class CostBound:
    runs: int
    dollars: float  # over the runs whose agents all have prices
    unpriced: tuple[str, ...]  # entries whose cost cannot be bounded

    def describe(self) -> str:
        if len(self.unpriced) == self.runs:
            return "unknown (no run has prices for all its agents: [agents.NAME.price])"
        line = (f"at most ${self.dollars:,.2f} for {self.runs - len(self.unpriced)} runs "
                "(an upper bound from the budgets)")
        if self.unpriced:
            line += f"; {len(self.unpriced)} runs have agents without a price (cost unknown)"
        return line


def cost_bound(entries: list[Entry]) -> CostBound:
    dollars = 0.0
    unpriced = []
    for entry in entries:
        bound = run_cost_bound(entry.pairing)
        if bound is None:
            unpriced.append(entry.id)
        else:
            dollars += bound
    return CostBound(len(entries), dollars, tuple(unpriced))
