"""Regular expressions from files: refused when they could take exponential time.

Python's `re` backtracks, and has no time limit: a pattern like `(a+)+$` takes longer than a
night on a reply of forty `a`s and a `b`. Stop phrases may be regular expressions (and a
transcript's header holds them, so any file may carry one), so each pattern is checked before it
is used: short, no backreferences, and no repeated part that itself repeats (star height one).
What is left matches in time polynomial in the reply's length, and replies are bounded.
"""

from __future__ import annotations

import re

__all__ = ["MAX_PATTERN", "compile_pattern", "pattern_problem"]

MAX_PATTERN = 200  # characters of one pattern

_UNBOUNDED_OR_WIDE = re.compile(r"\{\d*,\d*\}")


def pattern_problem(pattern: str) -> str | None:
    """Why `pattern` is refused, or None when it may be used."""
    if len(pattern) > MAX_PATTERN:
        return f"longer than {MAX_PATTERN} characters"
    try:
        re.compile(pattern)
    except re.error as exc:
        return f"not a regular expression: {exc}"
    except RecursionError:
        return "nested too deeply"
    if re.search(r"\\[1-9]|\(\?P=", pattern):
        return "backreferences are not allowed (they can take exponential time)"
    if _nested_repeat(pattern):
        return ("a repeated group that itself repeats (like (a+)+) can take exponential "
                "time; repeat the inner part only")
    return None


def compile_pattern(pattern: str) -> re.Pattern[str]:
    """`pattern` compiled, after `pattern_problem` found nothing (ValueError otherwise)."""
    problem = pattern_problem(pattern)
    if problem is not None:
        raise ValueError(problem)
    return re.compile(pattern)


def _nested_repeat(pattern: str) -> bool:
    """True when a group holding a repeat (`*`, `+`, `{n,}`, `{n,m}`) is itself repeated."""
    stack: list[bool] = [False]  # per open group: does it hold a repeat?
    closed_holding_repeat = False  # the atom just closed was a group holding a repeat
    i = 0
    while i < len(pattern):
        char = pattern[i]
        repeat = _repeat_at(pattern, i)
        if repeat:
            if closed_holding_repeat:
                return True
            stack[-1] = True
            closed_holding_repeat = False
            i += repeat
            continue
        closed_holding_repeat = False
        if char == "\\":
            i += 2
            continue
        if char == "[":  # a character class: one atom, whatever it holds
            i = _class_end(pattern, i)
            continue
        if char == "(":
            stack.append(False)
        elif char == ")" and len(stack) > 1:
            held = stack.pop()
            stack[-1] = stack[-1] or held
            closed_holding_repeat = held
        i += 1
    return False


def _repeat_at(pattern: str, i: int) -> int:
    """The length of a repeating quantifier at `i` (with a lazy or possessive `?`/`+` after it),
    or 0. `?` alone repeats nothing."""
    char = pattern[i]
    if char in "*+":
        length = 1
    elif char == "{" and (found := _UNBOUNDED_OR_WIDE.match(pattern, i)) is not None:
        length = len(found.group())
    elif char == "{" and (found := re.compile(r"\{(\d+)\}").match(pattern, i)) is not None:
        return len(found.group()) if int(found.group(1)) > 1 else 0
    else:
        return 0
    if i + length < len(pattern) and pattern[i + length] in "?+":
        length += 1
    return length


def _class_end(pattern: str, i: int) -> int:
    """The index just past the character class opening at `i`."""
    j = i + 1
    if j < len(pattern) and pattern[j] == "^":
        j += 1
    if j < len(pattern) and pattern[j] == "]":  # a literal ] first
        j += 1
    while j < len(pattern) and pattern[j] != "]":
        j += 2 if pattern[j] == "\\" else 1
    return j + 1
