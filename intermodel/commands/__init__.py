"""The handlers of `intermodel`'s commands, grouped by what they do; `intermodel.cli` builds the
parser and imports a group only when one of its commands runs."""

from __future__ import annotations

__all__ = ["EXIT_OK", "EXIT_RUN_ERROR", "EXIT_SIGNAL", "EXIT_USAGE"]

EXIT_OK, EXIT_RUN_ERROR, EXIT_USAGE, EXIT_SIGNAL = 0, 1, 2, 130
