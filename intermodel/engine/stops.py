"""Stop phrases: whether a reply ends the run, and where the phrase is.

A phrase counts only where it means it (`dialogue.stop_match`):

- `end` (the default): the phrase closes the reply; only whitespace and punctuation may follow.
- `line`: the phrase stands alone on a line (whitespace and punctuation around it allowed).
- `anywhere`: the phrase anywhere in the reply, as before modes existed.
- `regex`: each phrase is a regular expression, searched in the reply.

A model quoting its instructions ("the story would end with ^C^C and then…") ends nothing under
`end` or `line`. Regular expressions were checked when the pairing was loaded
(`intermodel.security.patterns`); the search still runs in a worker process with a time limit,
since no check of a pattern can promise how long a backtracking search takes.
"""

from __future__ import annotations

import string
import unicodedata
from collections.abc import Sequence
from dataclasses import dataclass

import anyio
import anyio.to_process

from intermodel.security.patterns import compile_pattern

__all__ = [
    "REGEX_SECONDS",
    "RegexTimedOut",
    "StopFound",
    "find_literal_stop",
    "find_stop",
    "search_patterns",
]

# The longest a regular expression may search one reply. Past it the phrase is taken as absent
# and the run is told (a Notice): a stop phrase must never hold up a run.
REGEX_SECONDS = 5.0


@dataclass(frozen=True)
class StopFound:
    phrase: str
    mode: str
    start: int  # characters of the reply's text
    end: int


class RegexTimedOut(Exception):
    """A stop phrase's regular expression did not finish searching a reply in time."""


async def find_stop(text: str, phrases: Sequence[str], mode: str, *,
                    limit: float = REGEX_SECONDS) -> StopFound | None:
    """The first phrase (in the order given) that ends a reply of `text` under `mode`.
    Raises RegexTimedOut when the regular expressions took longer than `limit` seconds."""
    if mode != "regex":
        return find_literal_stop(text, phrases, mode)
    if not phrases:
        return None
    found: tuple[int, int, int] | None = None
    with anyio.move_on_after(limit) as scope:
        found = await anyio.to_process.run_sync(search_patterns, tuple(phrases), text,
                                                cancellable=True)
    if scope.cancelled_caught:
        raise RegexTimedOut(f"a stop phrase took more than {limit:g} s to search a "
                            "reply; it was taken as absent")
    if found is None:
        return None
    index, start, end = found
    return StopFound(phrases[index], mode, start, end)


def search_patterns(patterns: tuple[str, ...], text: str) -> tuple[int, int, int] | None:
    """The index of the first pattern found in `text`, and where (run in a worker process)."""
    for index, pattern in enumerate(patterns):
        match = compile_pattern(pattern).search(text)
        if match is not None:
            return index, match.start(), match.end()
    return None


def find_literal_stop(text: str, phrases: Sequence[str], mode: str) -> StopFound | None:
    """As `find_stop`, for the modes that are not regular expressions."""
    for phrase in phrases:
        if not phrase:
            continue
        where = _where(text, phrase, mode)
        if where is not None:
            return StopFound(phrase, mode, where, where + len(phrase))
    return None


def _where(text: str, phrase: str, mode: str) -> int | None:
    if mode == "anywhere":
        found = text.find(phrase)
        return None if found < 0 else found
    if mode == "end":
        found = text.rfind(phrase)
        return found if found >= 0 and _filler(text[found + len(phrase):]) else None
    if mode == "line":
        offset = 0
        for line in text.splitlines(keepends=True):
            found = line.find(phrase)
            while found >= 0:
                if _filler(line[:found]) and _filler(line[found + len(phrase):]):
                    return offset + found
                found = line.find(phrase, found + 1)
            offset += len(line)
        return None
    raise ValueError(f"unknown stop_match {mode!r}")


def _filler(text: str) -> bool:
    """Only whitespace and punctuation (quotes, brackets, markdown's `*` and backticks…)."""
    return all(char.isspace() or char in string.punctuation
               or unicodedata.category(char).startswith("P") for char in text)

