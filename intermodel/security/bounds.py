"""The largest values intermodel accepts, wherever they come from: pairing and experiment files,
the command line, the control socket and transcripts.

Every number has an upper bound, so no value from a file someone else wrote can overflow a
computation, a SQLite integer (64 bits, signed) or a sum of many of them: a run's token sum is at
most MAX_TURNS × MAX_TOKENS = 10^18, below SQLite's 9.2 × 10^18. The bounds are far beyond any
real run; docs/config.md and docs/transcripts.md list them. `short` shows a value that is out
of bounds (or of the wrong type) in an error message without printing all of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

__all__ = [
    "MAX_ATTEMPTS",
    "MAX_BYTES",
    "MAX_CONCURRENCY",
    "MAX_COST",
    "MAX_DEPTH",
    "MAX_ENDPOINTS",
    "MAX_INT",
    "MAX_PRICE",
    "MAX_RECORD_DEPTH",
    "MAX_REPLICATES",
    "MAX_RETRIES",
    "MAX_SECONDS",
    "MAX_TEXT_FILE",
    "MAX_TOKENS",
    "MAX_TURNS",
    "MIN_INT",
    "nesting_depth",
    "short",
]

MAX_TURNS = 1_000_000  # a turn budget, and any turn number
MAX_TOKENS = 10**12  # any token count or token budget
MAX_SECONDS = 10**8  # any duration (about three years)
MAX_ATTEMPTS = 100_000  # attempts at one turn, as a transcript records them
MAX_RETRIES = 10_000  # retries of one turn a pairing may allow
MAX_CONCURRENCY = 1_000  # runs, or streams, at once
MAX_ENDPOINTS = 256  # servers in one agent's endpoint pool (base_urls)
MAX_BYTES = 2**50  # any size of a file (a petabyte)
MAX_PRICE = 10**6  # US dollars per million tokens
MAX_COST = 10**9  # US dollars
MAX_REPLICATES = 100_000  # runs of one experiment entry
MAX_TEXT_FILE = 1_048_576  # a text file a pairing names (prompt_file, opener_file, ...): 1 MiB
MAX_DEPTH = 32  # nesting of tables and lists in a pairing or experiment file
# ... and in a transcript line, which holds configs a few levels down (a branch's header holds
# its parent's config)
MAX_RECORD_DEPTH = 2 * MAX_DEPTH
MAX_INT, MIN_INT = 2**63 - 1, -(2**63)  # what SQLite stores; any integer in a transcript


def nesting_depth(value: Any, limit: int = MAX_DEPTH) -> int:
    """How deeply lists and tables nest in `value` (a scalar is 0, `[1]` is 1), counting no
    further than `limit` + 1. Iterative, so a value nested deeper than Python's recursion limit
    is measured, not crashed on."""
    deepest = 0
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        children = _children(item)
        if children is None:
            continue
        depth += 1
        deepest = max(deepest, depth)
        if depth > limit:
            return depth
        stack.extend((child, depth) for child in children)
    return deepest


def _children(value: Any) -> Iterator[Any] | None:
    if isinstance(value, dict):
        return iter(value.values())
    if isinstance(value, list | tuple):
        return iter(value)
    return None


def short(value: Any) -> str:
    """A value as an error message shows it: JSON-like, cut short, huge numbers by their size."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        if abs(value) < 10**24:
            return str(value)
        # str() refuses integers of more than 4300 digits; their size is enough to say.
        digits = len(str(abs(value))) if value.bit_length() < 14_000 else "over 4000"
        return f"a number of {digits} digits"
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, str):
        text = value if len(value) <= 40 else value[:40] + "…"
        return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'
    if isinstance(value, list | tuple):
        return "a list"
    if isinstance(value, dict):
        return "an object"
    return type(value).__name__
