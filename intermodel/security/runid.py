"""Run ids: 12 lowercase hex digits, made by `engine.session.new_run_id`.

A run id ends up in file and socket names (`<runtime dir>/intermodel/<run id>.sock`, a transcript's
name), and a transcript from elsewhere can claim any id. Everything that turns an id into a path
checks it here first, so `../../x` or `a/b` never reaches the file system.
"""

from __future__ import annotations

import re

from intermodel.errors import InvalidRunId

__all__ = ["RUN_ID", "checked_run_id", "is_run_id"]

RUN_ID = re.compile(r"[0-9a-f]{12}")


def is_run_id(value: object) -> bool:
    return isinstance(value, str) and RUN_ID.fullmatch(value) is not None


def checked_run_id(value: object, where: str = "") -> str:
    """`value` if it is a run id; otherwise InvalidRunId, one line naming `where` it came from."""
    if is_run_id(value):
        assert isinstance(value, str)
        return value
    shown = repr(value)
    if len(shown) > 40:
        shown = shown[:37] + "..."
    prefix = f"{where}: " if where else ""
    raise InvalidRunId(f"{prefix}run id {shown} is not 12 lowercase hex digits")
