"""Detectors of degenerate endings: repetition, empty replies, goodbye loops, a reply looping
on itself, and a collapse into emoji.

Model pairs often drift into a loop — the same reply over and over, silence, or an endless
exchange of farewells. Each detector looks at the turns so far after every completed turn and
returns a `Flag`; the pairing decides per detector whether a flag stops the run, warns (on screen
and in the transcript) or only marks the transcript. Detection is deterministic, so the same
transcript always gets the same flags.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from difflib import SequenceMatcher

from intermodel.config.model import DetectorConfig
from intermodel.engine.textmeasures import self_repetition, symbol_share
from intermodel.records import Flag, Turn, now_iso

__all__ = ["detect", "similarity", "turns_needed"]

_SPACE = re.compile(r"\s+")
# Farewell phrases in the languages models most often drift into when they wind down.
_FAREWELL = re.compile(
    r"\b(good ?bye|farewell|bye|take care|until next time|see you|so long|signing off|"
    r"it was (a|an) (pleasure|honou?r)|thank you for (this|the) (conversation|exchange|chat)|"
    r"adieu|au revoir|auf wiedersehen|adiós|namaste)\b",
    re.IGNORECASE,
)
_SHORT = 600  # a farewell loop is made of short turns; a long reply that ends politely is not one


def _normal(text: str) -> str:
    return _SPACE.sub(" ", text).strip().lower()


_SHINGLE = 3  # words per shingle
_SHORT_WORDS = 12  # below this, compare characters: too few shingles to mean much


def similarity(a: str, b: str) -> float:
    """How alike two replies are, 0 to 1 (whitespace and case ignored).

    Long replies are compared by their sets of three-word shingles (Jaccard), which takes time
    linear in their length — a character diff of two 1,000-word replies takes a good fraction of
    a second, on the event loop, after every turn. Short ones by a character diff."""
    a, b = _normal(a), _normal(b)
    if a == b:
        return 1.0
    words_a, words_b = a.split(), b.split()
    if min(len(words_a), len(words_b)) < _SHORT_WORDS:
        return SequenceMatcher(None, a, b, autojunk=False).ratio()
    shingles_a, shingles_b = _shingles(words_a), _shingles(words_b)
    return len(shingles_a & shingles_b) / len(shingles_a | shingles_b)


def _shingles(words: list[str]) -> set[tuple[str, ...]]:
    return {tuple(words[i:i + _SHINGLE]) for i in range(len(words) - _SHINGLE + 1)}


def turns_needed(config: DetectorConfig) -> int:
    """How many of the latest turns `detect` looks at: given only those, it raises the same
    flags (a live run need not hand it the whole history after every turn)."""
    return max(config.repetition_lookback + 1, config.empty_limit, config.goodbye_turns,
               config.emoji_collapse_turns, 1)


def detect(config: DetectorConfig, turns: Sequence[Turn]) -> list[Flag]:
    """Flags raised by the newest turn of `turns`."""
    if not turns:
        return []
    flags = []
    for name, action, check in (
        ("repetition", config.repetition, _repetition),
        ("empty", config.empty, _empty),
        ("goodbye", config.goodbye, _goodbye),
        ("self_repetition", config.self_repetition, _self_repetition),
        ("emoji_collapse", config.emoji_collapse, _emoji_collapse),
    ):
        if action == "off":
            continue
        found = check(config, turns)
        if found:
            flags.append(Flag(name, turns[-1].index, turns[-1].agent, action, found, now_iso()))
    return flags


def _repetition(config: DetectorConfig, turns: Sequence[Turn]) -> str:
    newest = turns[-1]
    if not newest.text.strip():
        return ""  # silence is the empty detector's business
    for earlier in reversed(turns[-1 - config.repetition_lookback:-1]):
        score = similarity(newest.text, earlier.text)
        if score >= config.repetition_similarity:
            kind = "repeats" if score == 1.0 else "nearly repeats"
            return (f"turn {newest.index} ({newest.agent}) {kind} turn {earlier.index} "
                    f"({earlier.agent}), similarity {score:.2f}")
    return ""


def _empty(config: DetectorConfig, turns: Sequence[Turn]) -> str:
    recent = turns[-config.empty_limit:]
    if len(recent) == config.empty_limit and all(not t.text.strip() for t in recent):
        return f"{config.empty_limit} empty replies in a row (turns {recent[0].index}-" \
               f"{recent[-1].index})"
    return ""


def _goodbye(config: DetectorConfig, turns: Sequence[Turn]) -> str:
    recent = turns[-config.goodbye_turns:]
    if len(recent) < config.goodbye_turns or len({t.agent for t in recent}) < 2:
        return ""
    if all(len(t.text) <= _SHORT and _FAREWELL.search(t.text) for t in recent):
        return f"both agents have only said goodbye for {len(recent)} turns " \
               f"({recent[0].index}-{recent[-1].index})"
    return ""


def _self_repetition(config: DetectorConfig, turns: Sequence[Turn]) -> str:
    newest = turns[-1]
    loop = self_repetition(newest.text)
    if loop is None or loop.repeats < config.self_repetition_repeats \
            or loop.share < config.self_repetition_share \
            or loop.covered < config.self_repetition_words:
        return ""
    return f"turn {newest.index} ({newest.agent}) repeats {loop.describe()}"


def _emoji_collapse(config: DetectorConfig, turns: Sequence[Turn]) -> str:
    recent = turns[-config.emoji_collapse_turns:]
    if len(recent) < config.emoji_collapse_turns:
        return ""
    shares: list[float] = []
    for turn in reversed(recent):  # the newest first: most replies end the check at once
        share = symbol_share(turn.text)
        if share is None or share < config.emoji_collapse_share:
            return ""
        shares.insert(0, share)
    span = f"turn {recent[0].index}" if len(recent) == 1 else \
        f"turns {recent[0].index}-{recent[-1].index}"
    listed = ", ".join(f"{share:.2f}" for share in shares[-6:])
    return (f"{span}: emoji and symbols are {listed} of each reply's letters, digits and "
            f"symbols (threshold {config.emoji_collapse_share:g})")
