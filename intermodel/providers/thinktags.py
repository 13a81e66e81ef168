"""Splitting `<think>…</think>` (or `<thinking>…</thinking>`) out of streamed content.

Reasoning models served through OpenAI-compatible servers often put their chain of thought inline.
Tags arrive split across chunks (`"<thi"`, `"nk>"`), so the parser holds back only the shortest
tail that could still become a tag and releases everything else at once: text is never delayed by
more than a tag's length.

`plain` says whether the parser is outside thinking with nothing held back: then a chunk without
`<` is text as it stands, and a provider can pass it on without calling `feed` (once per token).
"""

from __future__ import annotations

from intermodel.providers.base import TextDelta, ThinkingDelta

__all__ = ["ThinkTagParser"]

_OPEN = ("<think>", "<thinking>")
_CLOSE = {"<think>": "</think>", "<thinking>": "</thinking>"}


class ThinkTagParser:
    def __init__(self) -> None:
        self._buffer = ""
        self._close: str | None = None  # the closing tag we wait for, while inside thinking
        self._trim = False  # drop whitespace that separates a closing tag from the reply
        self.plain = True  # outside thinking, nothing held back, nothing to trim

    def feed(self, chunk: str) -> list[TextDelta | ThinkingDelta]:
        if not self._buffer and "<" not in chunk and not self._trim:
            # The common case, once per token: nothing held back and no tag can start here.
            return [ThinkingDelta(chunk) if self._close else TextDelta(chunk)] if chunk else []
        self._buffer += chunk
        out: list[TextDelta | ThinkingDelta] = []
        while self._buffer:
            tags = (self._close,) if self._close else _OPEN
            found = min(((self._buffer.find(t), t) for t in tags if t in self._buffer),
                        default=None)
            if found is not None:
                at, tag = found
                self._emit(out, self._buffer[:at])
                self._buffer = self._buffer[at + len(tag):]
                if self._close:
                    self._close, self._trim = None, True
                else:
                    self._close = _CLOSE[tag]
                continue
            keep = _partial_tag_length(self._buffer, tags)
            self._emit(out, self._buffer[: len(self._buffer) - keep])
            self._buffer = self._buffer[len(self._buffer) - keep:]
            break
        self.plain = not self._buffer and self._close is None and not self._trim
        return out

    def flush(self) -> list[TextDelta | ThinkingDelta]:
        """Release whatever is held back at the end of the stream."""
        out: list[TextDelta | ThinkingDelta] = []
        self._emit(out, self._buffer)
        self._buffer = ""
        self.plain = self._close is None and not self._trim
        return out

    def _emit(self, out: list[TextDelta | ThinkingDelta], text: str) -> None:
        if self._close is None and self._trim:
            text = text.lstrip()
            if not text:
                return
            self._trim = False
        if text:
            out.append(ThinkingDelta(text) if self._close else TextDelta(text))


def _partial_tag_length(text: str, tags: tuple[str, ...]) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of one of `tags`."""
    longest = 0
    for tag in tags:
        for size in range(min(len(tag) - 1, len(text)), longest, -1):
            if text.endswith(tag[:size]):
                longest = size
                break
    return longest
