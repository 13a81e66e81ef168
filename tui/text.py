"""Turning untrusted text and numbers into what the screen shows.

Every piece of model or config text (replies, thinking, agent and model names, error messages)
reaches a widget through `plain`: control and escape characters are made visible by
`terminal_safe`, and the result is a `Content` built from the string as-is, so square brackets are
never read as markup.
"""

from __future__ import annotations

from textual.content import Content

from intermodel.security.text import terminal_safe

__all__ = ["clip_start", "compact", "duration", "plain", "safe"]


def safe(text: str) -> str:
    return terminal_safe(text)


def plain(text: str, style: str = "") -> Content:
    """Untrusted text as literal content, optionally in one style."""
    content = Content(terminal_safe(text))
    return content.stylize(style) if style else content


def compact(n: int) -> str:
    """1234 -> 1.2k: token counts in a status bar."""
    if n < 1000:
        return str(n)
    if n < 10_000:
        return f"{n / 1000:.1f}k"
    if n < 1_000_000:
        return f"{n // 1000}k"
    return f"{n / 1_000_000:.1f}M"


def duration(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600:02d}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def clip_start(text: str, width: int) -> str:
    """Keep the end of a long path, which is the informative part."""
    if width <= 1:
        return ""
    return text if len(text) <= width else "…" + text[-(width - 1):]
