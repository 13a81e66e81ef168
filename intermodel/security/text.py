"""Untrusted text on a terminal.

Model output may contain escape sequences (`\\x1b[2J` clears a screen; OSC sequences can set the
window title or write hyperlinks), carriage returns that overwrite lines, and bidirectional
overrides that reorder what a reader sees. Before any model text reaches a terminal, every such
character is replaced by a visible stand-in, so a person can see that the model emitted it and
nothing is interpreted.

Lines about a run (errors, notices, progress, status) are not model text: `safe_line` also
removes secrets and key-shaped strings from them, then bounds their length. Every such line a
command prints goes through it.
"""

from __future__ import annotations

from intermodel.security.secrets import redact

__all__ = ["LINE_LIMIT", "message_lines", "safe_line", "terminal_safe"]

LINE_LIMIT = 2000  # characters: a hostile value echoed in an error stays one readable line


def _build_table() -> dict[int, str]:
    table: dict[int, str] = {}
    for code in range(0x20):
        if chr(code) not in "\n\t":
            table[code] = chr(0x2400 + code)  # Unicode "control pictures": ␛, ␍, ␇ ...
    table[0x7F] = "␡"
    for code in range(0x80, 0xA0):  # C1 controls, including the 8-bit CSI (0x9b)
        table[code] = "�"
    for code in (*range(0x202A, 0x202F), *range(0x2066, 0x206A)):  # bidi embeddings/isolates
        table[code] = "�"
    return table


_TABLE = _build_table()


def terminal_safe(text: str) -> str:
    """`text` with every control, escape and bidi-override character made visible and inert.
    A CR before LF is dropped (Windows line ends are harmless)."""
    return text.replace("\r\n", "\n").translate(_TABLE)


def safe_line(text: str, limit: int = LINE_LIMIT) -> str:
    """A line for people: secrets out first (a key cut in half would no longer be recognised),
    then cut to `limit` characters, then made inert for a terminal."""
    text = redact(text)
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return terminal_safe(text)


def message_lines(text: str) -> list[str]:
    """The lines of a message (an error may hold one line per problem), split at newlines only.
    `str.splitlines` also splits at U+0085, U+2028 and other separators, so a hostile value quoted
    in a message could start a line of its own, one that looks like another error."""
    return text.split("\n") if text else []
