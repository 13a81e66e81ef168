"""Versions of this tool and of what it runs on, recorded in every transcript header."""

from __future__ import annotations

import platform
import sys
from importlib import metadata

__all__ = ["__version__", "versions"]

try:
    __version__ = metadata.version("intermodel")
except metadata.PackageNotFoundError:  # running from a source tree that is not installed
    __version__ = "0+unknown"

_DEPENDENCIES = ("openai", "anthropic", "httpx2", "anyio", "textual", "llama-cpp-python")


def versions() -> dict[str, str]:
    found = {"intermodel": __version__, "python": sys.version.split()[0],
             "platform": platform.platform(terse=True)}
    for name in _DEPENDENCIES:
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return found
