"""How a conversation ended, computed from its transcript alone, with the evidence to check it.

`end_state(transcript)` gives one state per run, the first of these that holds (the rules are
documented in docs/findings.md, "End states"):

    error            the run ended in an error
    stop_phrase      a model wrote a stop phrase
    silence          the last replies are empty or nearly so
    emoji_collapse   the last replies are mostly emoji and symbols
    goodbye_loop     both models only say goodbye, turn after turn
    self_repetition  a last reply loops on itself
    repetition       the last replies repeat earlier ones
    ongoing          the conversation was still going when its budget (or a person) ended it
    incomplete       no end record (a crash, or a run still going) and none of the above

The patterns (silence to repetition) are looked for at the end of the conversation only: a
loop the models left again is not how they ended. Every pattern that holds is reported (the state
is the first; `also` lists the others), each with the turns that show it and what was measured.
Repetition and goodbye loops are found by the live detectors (`intermodel.engine.detectors`),
run over the transcript with fixed settings (`Rules`) rather than the run's own, so runs with
different detector settings are classified alike.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Literal

from intermodel.config.model import DetectorConfig
from intermodel.engine.detectors import detect
from intermodel.engine.stops import find_literal_stop
from intermodel.engine.textmeasures import Loop, is_near_empty, self_repetition, symbol_share
from intermodel.records import Flag, Turn
from intermodel.transcript.reader import Transcript

__all__ = ["STATES", "EndState", "Evidence", "Rules", "State", "end_state"]

State = Literal["error", "stop_phrase", "silence", "emoji_collapse", "goodbye_loop",
                "self_repetition", "repetition", "ongoing", "incomplete"]
STATES: tuple[State, ...] = ("error", "stop_phrase", "silence", "emoji_collapse",
                             "goodbye_loop", "self_repetition", "repetition", "ongoing",
                             "incomplete")
# A detector that stopped the run names the pattern it saw.
_DETECTED: dict[str, State] = {"repetition": "repetition", "empty": "silence",
                               "goodbye": "goodbye_loop", "self_repetition": "self_repetition",
                               "emoji_collapse": "emoji_collapse"}


@dataclass(frozen=True)
class Rules:
    """The thresholds of the patterns; the defaults are documented in docs/findings.md."""

    silence_turns: int = 2  # the last this many replies are near-empty
    emoji_turns: int = 3  # the last this many replies are each mostly symbols ...
    emoji_share: float = 0.5  # ... at least this share of their letters, digits and symbols
    goodbye_turns: int = 4  # the goodbye detector's window (both agents, short farewells)
    repetition_turns: int = 4  # the last this many replies each repeat a recent turn ...
    repetition_similarity: float = 0.9  # ... at least this alike (the detector's measure) ...
    repetition_lookback: int = 4  # ... among the turns this far back
    loop_turns: int = 2  # one of the last this many replies loops on itself:
    loop_repeats: int = 3  # a sentence or block repeated at least this often,
    loop_share: float = 0.5  # covering at least this share of the reply's words,
    loop_words: int = 10  # and at least this many words


@dataclass(frozen=True)
class Evidence:
    """Why a state was found: the turns that show it and what was measured."""

    state: State
    turns: tuple[int, ...]
    detail: str


@dataclass(frozen=True)
class EndState:
    state: State
    evidence: Evidence
    also: tuple[Evidence, ...]  # other patterns that hold at the end, in order of precedence
    turns: int  # turns in the conversation
    # The first turn of the pattern the conversation ended in (None for a state that is not a
    # pattern of the text: error, stop_phrase, ongoing, incomplete).
    since: int | None
    end_reason: str | None  # the reason in the run's last end record; None without one


def end_state(transcript: Transcript, rules: Rules | None = None) -> EndState | None:
    """The end state of a conversation; None for a panel (its answers are no conversation)."""
    if transcript.is_panel:
        return None
    rules = rules or Rules()
    turns = transcript.turns
    end = transcript.end
    found = [evidence for check in _PATTERNS if (evidence := check(turns, rules)) is not None]
    count, reason = len(turns), end.reason if end is not None else None
    if end is not None and end.reason == "error":
        said = f": {end.detail}" if end.detail else ""
        evidence = Evidence("error", (), f"the run ended in an error{said}")
        return EndState("error", evidence, tuple(found), count, None, reason)
    stop = _stop_phrase(transcript)
    if stop is not None:
        return EndState("stop_phrase", stop, tuple(found), count, None, reason)
    if not found and end is not None and end.reason == "degenerate":
        found = _stopping_flag(transcript)
    if found:
        first = found[0]
        since = min(first.turns) if first.turns else None
        return EndState(first.state, first, tuple(found[1:]), count, since, reason)
    if end is None:
        evidence = Evidence("incomplete", (), "the transcript has no end record: the run "
                            "crashed, or is still going")
        return EndState("incomplete", evidence, (), count, None, None)
    detail = f"the run ended with {end.reason}" + (f" ({end.detail})" if end.detail else "")
    return EndState("ongoing", Evidence("ongoing", (), detail), (), count, None, reason)


def _stop_phrase(transcript: Transcript) -> Evidence | None:
    end, turns = transcript.end, transcript.turns
    last = turns[-1] if turns else None
    if end is not None:
        if end.reason != "stop_phrase":
            return None
        return Evidence("stop_phrase", (last.index,) if last else (), end.detail)
    dialogue = transcript.header.get("config", {}).get("dialogue", {})
    phrases = dialogue.get("stop_phrases", []) if isinstance(dialogue, dict) else []
    # A run from before stop modes matched anywhere. A regular expression is not searched here:
    # a header is untrusted, and this runs in the reader's own process.
    mode = dialogue.get("stop_match", "anywhere") if isinstance(dialogue, dict) else "anywhere"
    if last is None or not isinstance(phrases, list) or mode not in ("end", "line", "anywhere"):
        return None
    found = find_literal_stop(last.text, [p for p in phrases if isinstance(p, str)], mode)
    if found is None:
        return None
    return Evidence("stop_phrase", (last.index,), f"turn {last.index} ({last.agent}) wrote the "
                    f"stop phrase {found.phrase!r}; the run has no end record")


def _stopping_flag(transcript: Transcript) -> list[Evidence]:
    """The pattern a live detector stopped the run for, when the fixed rules do not see it (the
    run's detector had looser settings)."""
    flags = [r for r in transcript.records if isinstance(r, Flag) and r.action == "stop"]
    if not flags or flags[-1].detector not in _DETECTED:
        return []
    flag = flags[-1]
    return [Evidence(_DETECTED[flag.detector], (flag.turn,),
                     f"the run's {flag.detector} detector stopped it: {flag.detail}")]


def _tail(turns: Sequence[Turn], holds: Callable[[Turn], bool]) -> list[Turn]:
    """The longest run of last turns for which `holds` is true."""
    stretch: list[Turn] = []
    for turn in reversed(turns):
        if not holds(turn):
            break
        stretch.append(turn)
    return stretch[::-1]


def _span(turns: Sequence[Turn]) -> str:
    first, last = turns[0].index, turns[-1].index
    return f"turn {first}" if first == last else f"turns {first}-{last}"


def _silence(turns: Sequence[Turn], rules: Rules) -> Evidence | None:
    stretch = _tail(turns, lambda turn: is_near_empty(turn.text))
    if len(stretch) < rules.silence_turns:
        return None
    empty = sum(1 for turn in stretch if not turn.text.strip())
    return Evidence("silence", tuple(t.index for t in stretch),
                    f"{_span(stretch)}: {len(stretch)} replies without a letter, digit or "
                    f"symbol ({empty} of them empty)")


def _emoji(turns: Sequence[Turn], rules: Rules) -> Evidence | None:
    shares: dict[int, float | None] = {}

    def share(turn: Turn) -> float | None:
        if turn.index not in shares:
            shares[turn.index] = symbol_share(turn.text)
        return shares[turn.index]

    def mostly_symbols(turn: Turn) -> bool:
        found = share(turn)
        return found is not None and found >= rules.emoji_share

    stretch = _tail(turns, mostly_symbols)
    if len(stretch) < rules.emoji_turns:
        return None
    before = [s for t in turns[:len(turns) - len(stretch)] if (s := share(t)) is not None]
    earlier = (f"; {sum(before) / len(before):.2f} on average before" if before else "")
    listed = ", ".join(f"{share(t):.2f}" for t in stretch[-6:])
    more = "…, " if len(stretch) > 6 else ""
    return Evidence("emoji_collapse", tuple(t.index for t in stretch),
                    f"{_span(stretch)}: emoji and symbols are {more}{listed} of each reply's "
                    f"letters, digits and symbols (threshold {rules.emoji_share:g}){earlier}")


def _goodbye(turns: Sequence[Turn], rules: Rules) -> Evidence | None:
    def loops(window: int) -> bool:
        config = DetectorConfig(repetition="off", empty="off", goodbye="mark",
                                goodbye_turns=window, self_repetition="off",
                                emoji_collapse="off")
        return bool(detect(config, turns))

    if len(turns) < rules.goodbye_turns or not loops(rules.goodbye_turns):
        return None
    # How far back the farewells go: the longest window the detector still sees as a loop.
    low, high = rules.goodbye_turns, len(turns)
    while low < high:
        middle = (low + high + 1) // 2
        low, high = (middle, high) if loops(middle) else (low, middle - 1)
    stretch = turns[-low:]
    return Evidence("goodbye_loop", tuple(t.index for t in stretch),
                    f"{_span(stretch)}: {low} short farewell replies in a row from both agents")


def _self_repetition(turns: Sequence[Turn], rules: Rules) -> Evidence | None:
    loops: dict[int, Loop] = {}
    for turn in turns[-rules.loop_turns:] if rules.loop_turns else ():
        loop = self_repetition(turn.text)
        if loop is not None and loop.repeats >= rules.loop_repeats \
                and loop.share >= rules.loop_share and loop.covered >= rules.loop_words:
            loops[turn.index] = loop
    if not loops:
        return None
    details = "; ".join(f"turn {index} repeats {loop.describe()}"
                        for index, loop in loops.items())
    return Evidence("self_repetition", tuple(loops), details)


def _repetition(turns: Sequence[Turn], rules: Rules) -> Evidence | None:
    config = DetectorConfig(repetition="mark", empty="off", goodbye="off",
                            self_repetition="off", emoji_collapse="off",
                            repetition_similarity=rules.repetition_similarity,
                            repetition_lookback=rules.repetition_lookback)
    details: list[str] = []
    for end in range(len(turns), 0, -1):
        flags = detect(config, turns[:end])
        if not flags:
            break
        details.append(flags[0].detail)
    if len(details) < rules.repetition_turns:
        return None
    stretch = turns[len(turns) - len(details):]
    shown = details[::-1][-4:]
    more = "…; " if len(details) > 4 else ""
    return Evidence("repetition", tuple(t.index for t in stretch),
                    f"{_span(stretch)} each repeat a recent turn: {more}{'; '.join(shown)}")


_PATTERNS = (_silence, _emoji, _goodbye, _self_repetition, _repetition)
