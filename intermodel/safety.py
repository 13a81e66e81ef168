"""Untrusted text on a terminal.

Model output may contain escape sequences (`\\x1b[2J` clears a screen; OSC sequences can set the
window title or write hyperlinks), carriage returns that overwrite lines, and bidirectional
overrides that reorder what a reader sees. Before any model text reaches a terminal, every such
character is replaced by a visible stand-in, so a person can see that the model emitted it and
nothing is interpreted.
"""

from __future__ import annotations

__all__ = ["terminal_safe"]


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
