"""Measures of one reply's text: its words, whether it says anything, how much of it is emoji and
symbols, and whether it loops on itself.

Pure functions of a string, cheap enough to run after every turn (the end-state rules use them on
whole transcripts; live detectors can use them as turns arrive). How alike two replies are is
`intermodel.engine.detectors.similarity`.

Words. Text is normalised to NFC and case-folded (`Straße` and `STRASSE` are one word); a word is
a run of letters and digits of any script with the marks that combine with them, keeping inner
apostrophes and hyphens (`don't`, `self-aware`); curly apostrophes count as straight ones. Han,
kana, written without spaces, are taken one character at a time. An emoji — with
its skin tone, variation selector, zero-width-joined sequence (👩‍💻), flag (🇫🇷) or keycap (3️⃣) — or
another pictographic symbol (category So: ★, ☯, ✓) is a word of its own; other punctuation and
symbols (`.`, `—`, `+`, `$`) are not words.
"""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cache

__all__ = [
    "Loop",
    "is_near_empty",
    "self_repetition",
    "sentences",
    "symbol_share",
    "words",
]

_SKIN_TONES = range(0x1F3FB, 0x1F400)
_FLAG_LETTERS = range(0x1F1E6, 0x1F200)  # regional indicators: a pair is a flag


def _ranges(codes: Sequence[int]) -> str:
    """A regex character class body for the sorted code points `codes`."""
    parts: list[str] = []
    start = previous = -2
    for code in (*codes, -2):
        if code == previous + 1:
            previous = code
            continue
        if start >= 0:
            parts.append(re.escape(chr(start)) if start == previous
                         else f"{re.escape(chr(start))}-{re.escape(chr(previous))}")
        start = previous = code
    return "".join(parts)


@cache
def _classes() -> tuple[str, str, str]:
    """Character classes built once from this Python's Unicode database: pictographic symbols
    (So, without the code points that only modify or pair), every symbol (S*), and combining
    marks (M*). Symbols and marks live in the first two planes (and the tags in plane 14,
    handled apart), so only those are scanned."""
    pictographs, symbols, marks = [], [], []
    for code in range(0x20000):
        category = unicodedata.category(chr(code))
        if category[0] == "S" and code not in _SKIN_TONES:
            symbols.append(code)
            if category == "So" and code not in _FLAG_LETTERS:
                pictographs.append(code)
        elif category[0] == "M":
            marks.append(code)
    return _ranges(pictographs), _ranges(symbols), _ranges(marks)


@cache
def _patterns() -> tuple[re.Pattern[str], re.Pattern[str], re.Pattern[str], re.Pattern[str]]:
    pictograph, symbol, mark = _classes()
    modifier = "[\U0001F3FB-\U0001F3FF]"
    element = (f"(?:[{pictograph}][\ufe0e\ufe0f]?{modifier}?|[\U0001F1E6-\U0001F1FF]{{1,2}})"
               "[\U000E0020-\U000E007F]*")
    # Underscores are turned into spaces before this runs, so \w is letters and digits. The big
    # classes (marks, pictographs) are scanned range by range: they are only tried on characters
    # beyond ASCII, which keeps a plain English reply fast.
    beyond_ascii = "(?![\\x00-\\x7f])"
    letter = f"(?:\\w|{beyond_ascii}[{mark}])"
    word = f"[^\\W_]{letter}*(?:['\\-]{letter}+)*"
    keycap = "[0-9#*]\ufe0f?\u20e3"
    emoji = f"{beyond_ascii}{element}(?:\u200d{element})*"
    token = re.compile(f"{keycap}|{word}|{emoji}")
    ascii_symbols = "".join(re.escape(chr(c)) for c in range(128)
                            if unicodedata.category(chr(c))[0] == "S")
    any_symbol = f"[{ascii_symbols}]|{beyond_ascii}[{symbol}]"
    symbols = re.compile(any_symbol)
    content = re.compile(f"[^\\W_]|{any_symbol}")
    return token, symbols, content, re.compile(r"[^\W_]")


# Han and kana are written without spaces between words: each character is a word of its own.
# (Thai, Lao, Khmer and Myanmar, also written without spaces, are taken a spaced run at a time.)
_UNSPACED = re.compile("[\u3040-\u30ff\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
                       "\U00020000-\U0002fa1f][\u3099\u309a]?")


# Curly apostrophes and Unicode hyphens count as straight ones; an underscore separates words.
_SAME = (("\u2019", "'"), ("\u02bc", "'"), ("\u2018", "'"), ("\u2010", "-"), ("\u2011", "-"),
         ("_", " "))
_ASCII_WORD = re.compile(r"[a-z0-9]+(?:['\-][a-z0-9]+)*")  # after case folding
_SENTENCE_END = re.compile(r"[.!?…。！？\n]+")
# ASCII text, measured without the Unicode classes (building them takes tens of milliseconds,
# once per process: a live run's detectors measure every reply, most of them plain ASCII).
_ASCII_SYMBOL = re.compile("[" + "".join(re.escape(chr(c)) for c in range(128)
                                         if unicodedata.category(chr(c))[0] == "S") + "]")
_ASCII_ALNUM = re.compile("[A-Za-z0-9]")
_ASCII_CONTENT = re.compile(f"{_ASCII_SYMBOL.pattern}|{_ASCII_ALNUM.pattern}")


def _normal(text: str) -> str:
    text = unicodedata.normalize("NFC", text).casefold()
    for variant, plain in _SAME:  # str.replace, not translate: many times faster in CPython
        text = text.replace(variant, plain)
    if _UNSPACED.search(text):
        text = _UNSPACED.sub(lambda found: f" {found.group()} ", text)
    return text


def words(text: str) -> list[str]:
    """The words of `text`, normalised (see the module's docstring)."""
    return _patterns()[0].findall(_normal(text))


def sentences(text: str) -> list[list[str]]:
    """The words of each sentence (or line) of `text`; sentences without words are left out. A
    sentence ends at `.`, `!`, `?`, `…`, their full-width forms, or a line break."""
    found: list[list[str]] = []
    for part in _SENTENCE_END.split(_normal(text)):
        # Plain ASCII has no emoji, marks or keycaps: a simpler pattern finds the same words,
        # in a third of the time (most sentences of most replies are plain ASCII), and the
        # Unicode patterns are only built when some text needs them.
        words = _ASCII_WORD.findall(part) if part.isascii() else _patterns()[0].findall(part)
        if words:
            found.append(words)
    return found


def is_near_empty(text: str) -> bool:
    """True when `text` has no letter, digit, emoji or other symbol: nothing but whitespace and
    punctuation ("", "...", " — ")."""
    if text.isascii():
        return _ASCII_CONTENT.search(text) is None
    return _patterns()[2].search(text) is None


def symbol_share(text: str) -> float | None:
    """The share of emoji and other symbols (Unicode categories S*: 🙏, ✨, ★, →, ∞, $) among
    the letters, digits and symbols of `text`; None when it has none of them. Whitespace,
    punctuation, combining marks and the joiners, variation selectors and skin tones inside an
    emoji are not counted; a flag counts as two."""
    if text.isascii():  # the same counts, without building the Unicode patterns
        symbols = len(_ASCII_SYMBOL.findall(text))
        total = symbols + len(_ASCII_ALNUM.findall(text))
        return symbols / total if total else None
    _, symbol, _, alnum = _patterns()
    symbols = len(symbol.findall(text))
    total = symbols + len(alnum.findall(text))
    return symbols / total if total else None


@dataclass(frozen=True)
class Loop:
    """The most repeated stretch of one reply: `unit` (its words) occurs `repeats` times, and
    those occurrences hold `covered` of the reply's `total` words. `kind` is `sentence` (the same
    sentence, anywhere in the reply) or `block` (a block of words repeated back to back, with or
    without punctuation)."""

    kind: str
    unit: tuple[str, ...]
    repeats: int
    covered: int
    total: int

    @property
    def share(self) -> float:
        return self.covered / self.total if self.total else 0.0

    def describe(self) -> str:
        unit = " ".join(self.unit)
        shown = unit if len(unit) <= 60 else unit[:59] + "…"
        return (f"the {self.kind} {shown!r} {self.repeats} times, {self.covered} of "
                f"{self.total} words")


_LONGEST_BLOCK = 60  # words: longer repeated stretches are found as sentences
_CANDIDATES = 4  # periods tried for back-to-back blocks


def self_repetition(text: str) -> Loop | None:
    """The reply's strongest loop: its most repeated sentence, or its longest stretch of one block
    of words repeated back to back, whichever covers more words. None when nothing repeats.

    Linear in the reply's length: back-to-back blocks are looked for only at the periods that
    occur most often as the distance between two uses of one word."""
    by_sentence = sentences(text)
    all_words = [word for sentence in by_sentence for word in sentence]
    if not all_words:
        return None
    best: Loop | None = None
    counts = Counter(tuple(sentence) for sentence in by_sentence)
    unit, repeats = max(counts.items(), key=lambda item: (item[1] * len(item[0]), item[1]))
    if repeats >= 2:
        best = Loop("sentence", unit, repeats, repeats * len(unit), len(all_words))
    block = _block(all_words)
    if block is not None and (best is None or (block.covered, block.repeats) >
                              (best.covered, best.repeats)):
        best = block
    return best


def _block(tokens: list[str]) -> Loop | None:
    ids = tokens
    last: dict[str, int] = {}
    distances: Counter[int] = Counter()
    for position, token in enumerate(ids):
        previous = last.get(token)
        if previous is not None and position - previous <= _LONGEST_BLOCK:
            distances[position - previous] += 1
        last[token] = position
    best: tuple[int, int, int, int] | None = None  # covered, repeats, start, period
    for period, _ in distances.most_common(_CANDIDATES):
        run = start = 0
        for position in range(len(ids) - period):
            if ids[position] == ids[position + period]:
                if run == 0:
                    start = position
                run += 1
                repeats = (run + period) // period
                if repeats >= 2 and (best is None or (repeats * period, repeats) > best[:2]):
                    best = (repeats * period, repeats, start, period)
            else:
                run = 0
    if best is None:
        return None
    covered, repeats, start, period = best
    return Loop("block", tuple(tokens[start:start + period]), repeats, covered, len(tokens))
