"""Coding runs: schemes that say what may be said about a run, a turn or an answer.

    scheme = load_scheme("configs/schemes/engagement.toml:engagement")
"""

from __future__ import annotations

from intermodel.coding.scheme import Label, Scheme, load_scheme, load_schemes, parse_schemes

__all__ = [
    "Label",
    "Scheme",
    "load_scheme",
    "load_schemes",
    "parse_schemes",
]
