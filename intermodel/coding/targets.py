"""What a coder codes, in what order, and what they see of it: the targets of a scheme across a
set of transcripts, with the context each needs.

    units = coding_units(transcripts, scheme, blind=True, seed=seed)
    view = units[0].view()   # the text to show: context, the target, speakers' names or aliases

A scheme's scope decides the targets: `run` — each run as a whole; `turn` — each turn of each
conversation (panels have none); `answer` — each agent's answer in each panel (conversations have
none).

Order. Runs come in the order given (the commands give transcripts sorted by path), turns in
conversation order, answers in the panel's agent order. A blind session orders runs, and the
answers within each panel, by `sha256(seed:run_id[:agent])`: a shuffle that depends only on the
seed and on what is shuffled, so a resumed session shows the same order, and a run added to the
folder later slots in without moving the others. Turns keep their conversation order (a turn is
coded in the context of the turns before it).

Blind views. The agents of a conversation are shown as "Agent A" (the first to speak) and "Agent
B"; a panel's answers as "Answer 1", "Answer 2", … in the session's order; runs by their place in
the session, never by file name (which holds the pairing's name). In the text shown — replies,
thinking, the opener, interjections, the panel's message — every agent name, configured model id,
served model id and provider name of the run (of at least 3 characters, as a whole word, in any
case) is replaced by the agent's alias, or by `[model]` / `[provider]`. What a model says about
itself in other words ("I am a large model trained by …") is not hidden: it is part of what is
coded.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from intermodel.coding.labels import Target
from intermodel.coding.scheme import Scheme
from intermodel.records import Interjection, Turn
from intermodel.transcript.reader import Transcript

__all__ = [
    "MASK_MIN",
    "CodingUnit",
    "Speaker",
    "UnitView",
    "ViewEntry",
    "blind_key",
    "coding_units",
    "targets_of",
]

MASK_MIN = 3  # shorter names ("a", "bo") are too likely to be ordinary words to be masked


def targets_of(transcript: Transcript, scheme: Scheme) -> list[Target]:
    """The targets of `scheme` in one transcript, in transcript order."""
    if scheme.scope == "run":
        return [Target.run()]
    if scheme.scope == "turn":
        if transcript.is_panel:
            return []
        return [Target.of_turn(turn.index) for turn in transcript.turns]
    if not transcript.is_panel:
        return []
    answered = {turn.agent for turn in transcript.turns}
    return [Target.answer(agent) for agent in _panel_order(transcript) if agent in answered]


def blind_key(seed: int, *parts: str) -> str:
    """The sort key of a shuffled item: depends on the seed and the item alone."""
    return hashlib.sha256(":".join([str(seed), *parts]).encode("utf-8")).hexdigest()


@dataclass(frozen=True)
class Speaker:
    """Who wrote a piece of text, as shown: the agent's name and model, or its alias."""

    agent: str
    shown: str


@dataclass(frozen=True)
class ViewEntry:
    """One block of the context: an agent's turn or answer, or a human message."""

    speaker: str  # as shown: "ada (scripted:scripted)", "Agent A", "Answer 2", "opener", "human"
    text: str
    thinking: str = ""
    turn: int | None = None
    human: bool = False  # the opener, a panel's message or an interjection
    target: bool = False  # the text being coded


@dataclass(frozen=True)
class UnitView:
    """What the screen shows for one target: a title, a line about the run, and the context."""

    title: str  # "turn 7 · Agent B", "Answer 2", "the whole run"
    run: str  # "run 3 of 12", and outside a blind session the file and the agents
    entries: tuple[ViewEntry, ...]
    earlier: int = 0  # turns before the shown context that were left out (see MAX_CONTEXT)


MAX_CONTEXT = 40  # turns of context shown before a turn target; earlier ones are counted


@dataclass(frozen=True)
class CodingUnit:
    """One target of one transcript, in the session's order."""

    transcript: Transcript
    target: Target
    run_number: int  # the run's place in the session, from 1
    runs: int  # how many runs the session has
    blind: bool = False
    aliases: Mapping[str, str] = field(default_factory=dict)  # agent -> "Agent A", "Answer 2"

    @property
    def run_id(self) -> str:
        return self.transcript.run_id

    def speaker(self, agent: str) -> str:
        if self.blind:
            return self.aliases.get(agent, "an agent")
        model = _agent_models(self.transcript).get(agent)
        return f"{agent} ({model})" if model else agent

    def view(self) -> UnitView:
        """The context a coder needs for this target, blinded when the session is."""
        transcript = self.transcript
        mask = _Masker(transcript, self.aliases) if self.blind else None
        shown = (lambda text: mask(text)) if mask else (lambda text: text)
        run = f"run {self.run_number} of {self.runs}"
        if not self.blind:
            agents = ", ".join(self.speaker(agent) for agent in _agent_models(transcript))
            run += f" · {transcript.path.name} · {agents}"
        entries: list[ViewEntry] = []
        earlier = 0
        if transcript.is_panel:
            entries.append(ViewEntry("message → every agent", shown(_panel_prompt(transcript)),
                                     human=True))
            for turn in self._answers():
                entries.append(ViewEntry(self.speaker(turn.agent), shown(turn.text),
                                         shown(turn.thinking),
                                         target=self.target.scope == "answer"))
        else:
            opener = _opener(transcript)
            if opener:
                entries.append(ViewEntry("opener", shown(opener), human=True))
            last = self.target.turn if self.target.scope == "turn" else None
            history = [record for record in transcript.records
                       if isinstance(record, Turn | Interjection)]
            if last is not None:
                history = [record for record in history
                           if (record.index if isinstance(record, Turn) else record.before_turn)
                           <= last]
                turns = [record for record in history if isinstance(record, Turn)]
                if len(turns) > MAX_CONTEXT:
                    cut = turns[-MAX_CONTEXT].index
                    earlier = len(turns) - MAX_CONTEXT
                    history = [record for record in history if
                               (record.index if isinstance(record, Turn)
                                else record.before_turn) >= cut]
            for record in history:
                if isinstance(record, Interjection):
                    to = " and ".join(self.speaker(agent) for agent in record.to)
                    entries.append(ViewEntry(f"human → {to}", shown(record.text), human=True))
                else:
                    entries.append(ViewEntry(self.speaker(record.agent), shown(record.text),
                                             shown(record.thinking), turn=record.index,
                                             target=record.index == last))
        return UnitView(self._title(), run, tuple(entries), earlier)

    def _answers(self) -> list[Turn]:
        """The panel answers to show: the target's alone, or every answer for a run target (in
        the panel's order, or the blind order)."""
        turns = self.transcript.turns
        if self.target.scope == "answer":
            return [turn for turn in turns if turn.agent == self.target.agent][-1:]
        order = list(self.aliases) if self.blind else _panel_order(self.transcript)
        return sorted(turns, key=lambda turn: order.index(turn.agent)
                      if turn.agent in order else len(order))

    def _title(self) -> str:
        target = self.target
        if target.scope == "turn":
            agent = next((t.agent for t in self.transcript.turns if t.index == target.turn), "")
            return f"turn {target.turn} · {self.speaker(agent)}"
        if target.scope == "answer":
            return self.speaker(target.agent or "")
        return "the whole run"


def coding_units(transcripts: Sequence[Transcript], scheme: Scheme, *, blind: bool = False,
                 seed: int = 0) -> list[CodingUnit]:
    """Every target of `scheme` in `transcripts`, in the session's order (see the module)."""
    runs = [(transcript, targets_of(transcript, scheme)) for transcript in transcripts]
    runs = [(transcript, targets) for transcript, targets in runs if targets]
    if blind:
        runs.sort(key=lambda item: blind_key(seed, item[0].run_id))
    units: list[CodingUnit] = []
    for number, (transcript, targets) in enumerate(runs, start=1):
        aliases: dict[str, str] = {}
        if blind:
            if transcript.is_panel:
                targets = sorted(targets, key=lambda t: blind_key(seed, transcript.run_id,
                                                                  t.agent or ""))
                order = [t.agent or "" for t in targets]
                order += [agent for agent in _panel_order(transcript) if agent not in order]
                aliases = {agent: f"Answer {n}" for n, agent in enumerate(order, start=1)}
            else:
                aliases = _conversation_aliases(transcript)
        units += [CodingUnit(transcript, target, number, len(runs), blind, aliases)
                  for target in targets]
    return units


def _conversation_aliases(transcript: Transcript) -> dict[str, str]:
    """Agent A speaks first; B is the other (configured order when nobody has spoken yet)."""
    order = list(dict.fromkeys(turn.agent for turn in transcript.turns))
    order += [agent for agent in _agent_models(transcript) if agent not in order]
    return {agent: f"Agent {chr(ord('A') + n)}" if n < 26 else f"Agent {n + 1}"
            for n, agent in enumerate(order)}


class _Masker:
    """Replaces the run's agent, model and provider names in shown text (see the module)."""

    def __init__(self, transcript: Transcript, aliases: Mapping[str, str]) -> None:
        agents = _mapping(_config(transcript).get("agents"))
        replace: dict[str, str] = {}
        for table in map(_mapping, agents.values()):
            replace.setdefault(str(table.get("provider", "")).lower(), "[provider]")
            replace[str(table.get("model", "")).lower()] = "[model]"
        for turn in transcript.turns:
            replace.setdefault(turn.model.lower(), "[model]")
        for name in agents:
            replace[str(name).lower()] = aliases.get(str(name), "[agent]")
        self._replace = {name: shown for name, shown in replace.items()
                         if len(name) >= MASK_MIN}
        names = sorted(self._replace, key=len, reverse=True)  # "gpt-4.1-mini" before "gpt"
        self._pattern = (re.compile(r"(?<![\w-])(?:" + "|".join(map(re.escape, names))
                                    + r")(?![\w-])", re.IGNORECASE) if names else None)

    def __call__(self, text: str) -> str:
        if self._pattern is None or not text:
            return text
        return self._pattern.sub(lambda m: self._replace[m.group(0).lower()], text)


def _panel_order(transcript: Transcript) -> list[str]:
    """A panel's agents in the order of its file, then any that answered but are not in it."""
    order = list(_agent_models(transcript))
    return order + [agent for agent in dict.fromkeys(t.agent for t in transcript.turns)
                    if agent not in order]


def _config(transcript: Transcript) -> Mapping[str, Any]:
    return _mapping(transcript.header.get("config"))


def _agent_models(transcript: Transcript) -> dict[str, str]:
    agents = _mapping(_config(transcript).get("agents"))
    return {str(name): f"{_mapping(t).get('provider')}:{_mapping(t).get('model')}"
            for name, t in agents.items()}


def _panel_prompt(transcript: Transcript) -> str:
    return str(_mapping(_config(transcript).get("panel")).get("prompt", ""))


def _opener(transcript: Transcript) -> str:
    return str(_mapping(_config(transcript).get("dialogue")).get("opener", ""))


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}
