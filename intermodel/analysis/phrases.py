"""The phrases models keep coming back to: the most frequent n-grams of their replies.

    counter = PhraseCounter(n=3, by="model")
    for transcript in transcripts:
        counter.add(transcript)
    for phrase in counter.most_common(20, min_runs=2):
        print(phrase.group, phrase.text, phrase.count, phrase.runs)

What is counted: the text of every turn of a conversation and every answer of a panel (or, with
`thinking=True`, their visible thinking instead). The opener, the role prompts and human
interjections are not model text and are never counted; nor are the turns a branch inherited
from its parent (they are counted once, in the parent's transcript).

How: each reply is cut into sentences (at `.`, `!`, `?`, `…` and line breaks) and each sentence
into normalised words (`intermodel.engine.textmeasures.words`: case-folded, punctuation dropped,
an emoji a word of its own). An n-gram is n consecutive words of one sentence, so no phrase spans
a sentence end. For each n-gram: how often it occurs (`count`) and in how many runs (`runs`),
per group when grouped by agent or by model (`provider:model`, as
configured).
"""

from __future__ import annotations

import heapq
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from itertools import chain
from typing import Any, Literal

from intermodel.engine.textmeasures import sentences
from intermodel.records import Turn
from intermodel.transcript.reader import Transcript

__all__ = ["MAX_N", "Grouping", "Phrase", "PhraseCounter", "most_common_phrases"]

Grouping = Literal["agent", "model"] | None
MAX_N = 10

@dataclass(frozen=True)
class Phrase:
    words: tuple[str, ...]
    count: int  # occurrences
    runs: int  # runs it occurs in
    group: str | None = None  # the agent or model, when grouped

    @property
    def text(self) -> str:
        return " ".join(self.words)


# An n-gram is counted as its words joined by spaces (no word holds a space): a string hashes
# once and compares at C speed, where a tuple of words does neither.
Gram = str


@dataclass
class PhraseCounter:
    """Counts the n-grams of the transcripts `add`ed to it."""

    n: int = 3
    by: Grouping = None
    thinking: bool = False
    transcripts: int = 0
    # Per group (None when not grouped): occurrences and runs of each n-gram.
    count: dict[str | None, Counter[Gram]] = field(default_factory=dict)
    runs: dict[str | None, Counter[Gram]] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not isinstance(self.n, int) or not 1 <= self.n <= MAX_N:
            raise ValueError(f"n is a whole number from 1 to {MAX_N}, got {self.n!r}")
        if self.by not in (None, "agent", "model"):
            raise ValueError(f"group by agent or model, not {self.by!r}")

    def add(self, transcript: Transcript) -> None:
        groups = _groups(transcript, self.by)
        in_run: dict[str | None, set[Gram]] = {}
        for turn in _own_turns(transcript):
            group = groups.get(turn.agent, turn.agent) if self.by else None
            grams = self.ngrams(turn.thinking if self.thinking else turn.text)
            if not grams:
                continue
            # Counter.update of an iterable counts in C: this is the hot loop of a night's runs.
            self.count.setdefault(group, Counter()).update(grams)
            in_run.setdefault(group, set()).update(grams)
        for group, seen in in_run.items():
            self.runs.setdefault(group, Counter()).update(seen)
        self.transcripts += 1

    def ngrams(self, text: str) -> list[Gram]:
        """The n-grams of one reply, each as its words joined by spaces."""
        n = self.n
        found = sentences(text)
        if n == 1:
            return list(chain.from_iterable(found))
        # chain, map and zip run in C: a night of runs has millions of n-grams.
        return list(chain.from_iterable(
            map(" ".join, zip(*(words[i:] for i in range(n)), strict=False)) for words in found))

    def most_common(self, limit: int | None = 20, *, min_runs: int = 1,
                    min_count: int = 1) -> list[Phrase]:
        """The most frequent n-grams, `limit` of each group (all of them with None), most
        frequent first; ties go to the one in more runs, then alphabetically. Only n-grams in at
        least `min_runs` runs and occurring at least `min_count` times are listed. Groups come
        in alphabetical order."""
        found: list[Phrase] = []
        for group in sorted(self.count, key=lambda g: g or ""):
            counts, runs = self.count[group], self.runs[group]
            chosen = [gram for gram, count in counts.items()
                      if count >= min_count and runs[gram] >= min_runs]
            ranked = [(-counts[gram], -runs[gram], gram) for gram in chosen]
            ordered = sorted(ranked) if limit is None else heapq.nsmallest(limit, ranked)
            found += [Phrase(tuple(gram.split(" ")), -count, -in_runs, group)
                      for count, in_runs, gram in ordered]
        return found


def most_common_phrases(transcripts: Iterable[Transcript], *, n: int = 3, by: Grouping = None,
                        limit: int | None = 20, min_runs: int = 1,
                        thinking: bool = False) -> list[Phrase]:
    counter = PhraseCounter(n=n, by=by, thinking=thinking)
    for transcript in transcripts:
        counter.add(transcript)
    return counter.most_common(limit, min_runs=min_runs)


def _own_turns(transcript: Transcript) -> list[Turn]:
    """The run's own turns: a branch's first `parent.after_turn` turns are its parent's."""
    parent = transcript.header.get("parent")
    after = parent.get("after_turn", 0) if isinstance(parent, dict) else 0
    return [turn for turn in transcript.turns if turn.index > after]


def _groups(transcript: Transcript, by: Grouping) -> dict[str, str]:
    """Each agent's group: its name, or its `provider:model` as configured."""
    agents: dict[str, Any] = transcript.header.get("config", {}).get("agents", {})
    if by != "model":
        return {name: name for name in agents}
    return {name: f"{table.get('provider')}:{table.get('model')}"
            for name, table in agents.items()}
