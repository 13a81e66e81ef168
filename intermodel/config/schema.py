"""The pairing file's schema: every key, its type, default and one line of documentation.

The schema drives validation (types, ranges, unknown keys with the closest valid key suggested)
and is checked against docs/config.md by a test, so the reference cannot drift from the code.
"""

from __future__ import annotations

import difflib
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from intermodel.config.capabilities import PROVIDERS
from intermodel.errors import ConfigIssue
from intermodel.security.bounds import (
    MAX_BYTES,
    MAX_COST,
    MAX_INT,
    MAX_PRICE,
    MAX_RETRIES,
    MAX_SECONDS,
    MAX_TOKENS,
    MAX_TURNS,
    MIN_INT,
    short,
)
from intermodel.security.secrets import redact

__all__ = [
    "AGENT",
    "DETECTORS",
    "DIALOGUE",
    "PANEL",
    "PANEL_TOP",
    "PRICE",
    "REASONING",
    "RETRY",
    "SCRIPT",
    "THINKING",
    "TOP",
    "Checker",
    "Field",
    "Kind",
    "Range",
    "between",
    "shown_value",
]

REQUIRED: Any = object()


@dataclass(frozen=True)
class Kind:
    """A value type: its name for messages and a predicate."""

    name: str
    accepts: Callable[[Any], bool]


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_number(v: Any) -> bool:
    return (isinstance(v, int | float) and not isinstance(v, bool)) and math.isfinite(v)


STR = Kind("a string", lambda v: isinstance(v, str))
INT = Kind("an integer", _is_int)
NUMBER = Kind("a number", _is_number)
BOOL = Kind("true or false", lambda v: isinstance(v, bool))
STR_LIST = Kind(
    "a list of strings", lambda v: isinstance(v, list) and all(isinstance(s, str) for s in v)
)
TABLE = Kind("a table", lambda v: isinstance(v, dict))
STR_TABLE = Kind(
    "a table of strings",
    lambda v: isinstance(v, dict) and all(isinstance(s, str) for s in v.values()),
)


@dataclass(frozen=True)
class Field:
    kind: Kind
    doc: str
    default: Any = None  # None: optional with no value; REQUIRED: must be present
    check: Callable[[Any], str | None] | None = None  # returns what was expected, or None
    choices: tuple[str, ...] = ()


@dataclass(frozen=True)
class Range:
    """A number's bounds, both included (a Field's `check`). Every number in a pairing file has
    one, so none can overflow what reads it later (see intermodel.security.bounds)."""

    low: float
    high: float

    def __call__(self, value: Any) -> str | None:
        if self.low <= value <= self.high:
            return None
        return f"a value from {_plain(self.low)} to {_plain(self.high)}"


def between(low: float, high: float) -> Range:
    return Range(low, high)


def _plain(number: float) -> str:
    return str(number) if isinstance(number, int) else f"{number:g}"


_ENV_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_URL = re.compile(r"^https?://[^\s/]+", re.IGNORECASE)


def env_name(v: str) -> str | None:
    if _ENV_NAME.match(v):
        return None
    return "the NAME of an environment variable (e.g. OPENAI_API_KEY), not the key itself"


def url(v: str) -> str | None:
    return None if _URL.match(v) else "an http:// or https:// URL"


SCRIPT: dict[str, Field] = {
    "replies": Field(
        STR_LIST, "Replies in order; may use {name}, {partner}, {reply} (its number).", []
    ),
    "file": Field(STR, "A text file of replies separated by lines holding only `---`."),
    "thinking": Field(STR_LIST, "Thinking streamed before the reply of the same index.", []),
    "when": Field(
        STR_TABLE,
        "Replies chosen by what the agent was last sent: the first key found in that message "
        "picks its reply, before the rule is consulted.",
    ),
    "rule": Field(
        STR,
        "`list` (the replies), `echo` (repeat the partner's last message), `count`.",
        "list",
        choices=("list", "echo", "count"),
    ),
    "when_exhausted": Field(
        STR,
        "After the last reply: `cycle`, `repeat_last`, or `fail`.",
        "cycle",
        choices=("cycle", "repeat_last", "fail"),
    ),
    "chunk_words": Field(INT, "Words per streamed chunk.", 1, between(1, MAX_TOKENS)),
    "delay": Field(NUMBER, "Seconds between chunks.", 0.0, between(0, MAX_SECONDS)),
    "first_token_delay": Field(NUMBER, "Seconds before the first chunk.", 0.0,
                               between(0, MAX_SECONDS)),
}

PRICE: dict[str, Field] = {
    "input": Field(NUMBER, "US dollars per million input tokens.", REQUIRED,
                   between(0, MAX_PRICE)),
    "output": Field(NUMBER, "US dollars per million output tokens (thinking included).",
                    REQUIRED, between(0, MAX_PRICE)),
}

THINKING: dict[str, Field] = {
    "budget_tokens": Field(
        INT, "Anthropic extended thinking budget (>= 1024, below max_tokens).", None,
        between(1, MAX_TOKENS),
    ),
    "send_back": Field(
        BOOL, "Send the agent's own earlier thinking back to it with its turns.", False
    ),
}

REASONING: dict[str, Field] = {
    "effort": Field(STR, "How hard an OpenAI reasoning model thinks before it answers.", None,
                    choices=("none", "minimal", "low", "medium", "high", "xhigh")),
    "summary": Field(STR, "The reasoning summary it returns as its thinking (default for a "
                     "reasoning model: `auto`).", None, choices=("auto", "concise", "detailed")),
}

AGENT: dict[str, Field] = {
    "provider": Field(
        STR, "Which API this agent talks to.", REQUIRED,
        choices=tuple(PROVIDERS),
    ),
    "api": Field(STR, "For `openai`: Chat Completions (`chat`, the default) or the Responses "
                 "API (`responses`).", None, choices=("chat", "responses")),
    "model": Field(STR, "Model id (for `local`, a path to a GGUF file; default: bundled)."),
    "base_url": Field(STR, "Server address for OpenAI-compatible or proxied APIs.", None, url),
    "base_urls": Field(STR_LIST, "Several servers of the same model, instead of base_url: each "
                       "request goes to the least busy one.", None),
    "endpoint_cool_down": Field(NUMBER, "Seconds a server of base_urls that failed is set "
                                "aside.", None, between(0, MAX_SECONDS)),
    "api_key_env": Field(STR, "Name of the environment variable holding the key.", None, env_name),
    "prompt": Field(STR, "Role prompt (system); may use {name}, {partner}, {max_turns}.", ""),
    "prompt_file": Field(STR, "Read the role prompt from this file instead (relative path)."),
    "temperature": Field(NUMBER, "Sampling temperature.", None, between(0, 2)),
    "top_p": Field(NUMBER, "Nucleus sampling.", None, between(0, 1)),
    "max_tokens": Field(INT, "Most tokens per reply.", 1024, between(1, MAX_TOKENS)),
    "seed": Field(INT, "Sampling seed, where the API supports one.", None,
                  between(MIN_INT, MAX_INT)),
    "stop": Field(STR_LIST, "Stop sequences that end a reply (not the run).", []),
    "timeout": Field(NUMBER, "Seconds without a complete event before a reply counts as "
                     "stalled.", 120.0, between(0.1, MAX_SECONDS)),
    "max_reply_seconds": Field(NUMBER, "Seconds a whole reply may take from a server.", 3600.0,
                               between(1, MAX_SECONDS)),
    "max_reply_chars": Field(INT, "Characters of one reply (text and thinking) past which it is "
                             "cut: the cap is the smaller of this and 32 x max_tokens.",
                             4_000_000, between(1024, MAX_BYTES)),
    "context_size": Field(INT, "Context size a local model is loaded with (tokens).", None,
                          between(128, MAX_TOKENS)),
    "context_window": Field(INT, "Tokens this agent's requests must fit in (prompt + reply).",
                            None, between(256, MAX_TOKENS)),
    "thinking": Field(TABLE, "Reasoning options (see [agents.NAME.thinking]).", {}),
    "reasoning": Field(TABLE, "OpenAI reasoning settings, with api = \"responses\" (see "
                       "[agents.NAME.reasoning]).", None),
    "extra_body": Field(TABLE, "Extra request body fields, passed through unchanged.", {}),
    "extra_headers": Field(
        STR_TABLE, "Extra HTTP headers; ${VAR} in a value is read from the environment.", {}
    ),
    "script": Field(TABLE, "Replies of a `scripted` agent (see [agents.NAME.script]).", {}),
    "price": Field(TABLE, "What its tokens cost (see [agents.NAME.price]).", None),
}

DIALOGUE: dict[str, Field] = {
    "opener": Field(STR, "The opening message."),
    "opener_file": Field(STR, "Read the opening message from this file instead."),
    "opener_to": Field(STR, "Agent that receives the opener (default: the first speaker)."),
    "opener_shared": Field(BOOL, "Whether the other agent sees the opener too.", False),
    "first": Field(STR, "Agent that speaks first (default: the first agent in the file)."),
    "max_turns": Field(
        INT, "Turn budget: replies in total, both agents together.", 10, between(1, MAX_TURNS)
    ),
    "max_total_tokens": Field(INT, "Stop once input+output tokens of all turns reach this.",
                              None, between(1, MAX_TOKENS)),
    "max_seconds": Field(NUMBER, "Stop after this much wall-clock time.", None,
                         between(1, MAX_SECONDS)),
    "max_cost": Field(NUMBER, "Cost budget in US dollars (needs prices): stop, or pause in the "
                      "terminal UI, when reached.", None, between(0, MAX_COST)),
    "stop_phrases": Field(STR_LIST, "Either agent saying one of these ends the run.", []),
    "stop_match": Field(STR, "How a stop phrase must appear: closing the reply (end), alone on "
                        "a line (line), anywhere, or as a regular expression (regex).", "end",
                        choices=("end", "line", "anywhere", "regex")),
    "share_thinking": Field(BOOL, "Show each agent its partner's thinking.", False),
    "interjection_format": Field(STR, "How a human message appears to an agent; has {text}.",
                                 "[Human]: {text}"),
    "empty_reply": Field(STR, "What an agent sees when its partner replied with nothing.",
                         "[no reply]"),
    "context_policy": Field(STR, "When a request will not fit: drop_oldest turns, or stop.",
                            "drop_oldest", choices=("drop_oldest", "stop")),
}

ACTIONS = ("stop", "warn", "mark", "off")
DETECTORS: dict[str, Field] = {
    "repetition": Field(STR, "A reply (nearly) repeating a recent turn.", "mark", choices=ACTIONS),
    "repetition_similarity": Field(NUMBER, "How alike counts as repeating (0-1).", 0.9,
                                   between(0.5, 1)),
    "repetition_lookback": Field(INT, "How many recent turns to compare with.", 4,
                                 between(1, MAX_TURNS)),
    "empty": Field(STR, "Empty replies in a row.", "warn", choices=ACTIONS),
    "empty_limit": Field(INT, "How many empty replies in a row count.", 2,
                         between(1, MAX_TURNS)),
    "goodbye": Field(STR, "Both agents only saying goodbye, over and over.", "mark",
                     choices=ACTIONS),
    "goodbye_turns": Field(INT, "How many farewell turns in a row count as a loop.", 4,
                           between(2, MAX_TURNS)),
    "self_repetition": Field(STR, "One reply looping on itself (a sentence over and over).",
                             "mark", choices=ACTIONS),
    "self_repetition_repeats": Field(INT, "How often the sentence or block must occur.", 3,
                                     between(2, 1_000_000)),
    "self_repetition_share": Field(NUMBER, "The share of the reply's words the repeats cover.",
                                   0.5, between(0.1, 1)),
    "self_repetition_words": Field(INT, "The fewest words the repeats cover.", 10,
                                   between(1, 1_000_000)),
    "emoji_collapse": Field(STR, "The last replies mostly emoji and symbols.", "mark",
                            choices=ACTIONS),
    "emoji_collapse_turns": Field(INT, "How many replies in a row count.", 3,
                                  between(1, MAX_TURNS)),
    "emoji_collapse_share": Field(NUMBER, "The share of symbols that makes a reply count.", 0.5,
                                  between(0.1, 1)),
}

RETRY: dict[str, Field] = {
    "attempts": Field(INT, "Retries of a failed turn before the run ends.", 30,
                      between(0, MAX_RETRIES)),
    "backoff_initial": Field(NUMBER, "First backoff in seconds (doubles each retry).", 2.0,
                             between(0, MAX_SECONDS)),
    "backoff_max": Field(NUMBER, "Longest backoff in seconds.", 300.0,
                         between(0, MAX_SECONDS)),
    "max_retry_after": Field(NUMBER, "Longest server-requested wait honoured (seconds).", 600.0,
                             between(0, MAX_SECONDS)),
    "max_wait": Field(NUMBER, "Longest total wait for one turn across its retries (seconds).",
                      10800.0, between(0, MAX_SECONDS)),
}

TOP: dict[str, Field] = {
    "name": Field(STR, "Name of the pairing (default: the file name)."),
    "description": Field(STR, "Free text for people.", ""),
    "transcripts": Field(STR, "Folder for transcripts.", "transcripts"),
    "dialogue": Field(TABLE, "The conversation (see [dialogue]).", REQUIRED),
    "retry": Field(TABLE, "Retry policy for transient errors (see [retry]).", {}),
    "detectors": Field(TABLE, "Detectors of degenerate endings (see [detectors]).", {}),
    "agents": Field(TABLE, "Exactly two agents, keyed by name (see [agents.NAME]).", REQUIRED),
}


PANEL: dict[str, Field] = {
    "prompt": Field(STR, "The message every agent answers."),
    "prompt_file": Field(STR, "Read the message from this file instead."),
}

PANEL_TOP: dict[str, Field] = {
    "name": Field(STR, "Name of the panel (default: the file name)."),
    "description": Field(STR, "Free text for people.", ""),
    "transcripts": Field(STR, "Folder for transcripts.", "transcripts"),
    "panel": Field(TABLE, "The message (see [panel]).", REQUIRED),
    "retry": Field(TABLE, "Retry policy for transient errors (see [retry]).", {}),
    "agents": Field(TABLE, "One to twelve agents, keyed by name (see [agents.NAME]).", REQUIRED),
}


class Checker:
    """Collects every issue in one file rather than stopping at the first."""

    def __init__(self) -> None:
        self.issues: list[ConfigIssue] = []

    def fail(self, path: str, message: str) -> None:
        # A path names keys the file chose, a message may quote values: neither may echo a key,
        # nor a megabyte of text.
        self.issues.append(ConfigIssue(_bounded(path, _PATH_LIMIT),
                                       _bounded(message, _MESSAGE_LIMIT)))

    def table(
        self, data: Mapping[str, Any], path: str, schema: Mapping[str, Field]
    ) -> dict[str, Any]:
        """Check `data` against `schema`; return known keys with defaults filled in.
        Invalid or missing values are left out of the result (and reported)."""
        out: dict[str, Any] = {}
        for key, value in data.items():
            where = f"{path}.{key}" if path else key
            spec = schema.get(key)
            if spec is None:
                self.fail(where, _unknown_key_message(key, schema))
                continue
            if not spec.kind.accepts(value):
                self.fail(where, f"expected {spec.kind.name}, got {_describe(value)}")
                continue
            if spec.choices and value not in spec.choices:
                options = ", ".join(repr(c) for c in spec.choices)
                self.fail(where, f"expected one of {options}, got {shown_value(value)}")
                continue
            expected = spec.check(value) if spec.check else None
            if expected:
                shown = short(value) if isinstance(value, int) else shown_value(value)
                self.fail(where, f"expected {expected}, got {shown}")
                continue
            out[key] = value
        for key, spec in schema.items():
            if key in data:
                continue
            if spec.default is REQUIRED:
                where = f"{path}.{key}" if path else key
                self.fail(where, f"missing ({spec.doc.rstrip('.')})")
            elif spec.default is not None:
                default = spec.default
                out[key] = default.copy() if isinstance(default, dict | list) else default
        return out


def _unknown_key_message(key: str, schema: Mapping[str, Field]) -> str:
    close = difflib.get_close_matches(key, list(schema), n=1, cutoff=0.6)
    hint = f"; did you mean '{close[0]}'?" if close else ""
    return f"unknown key{hint} (valid keys: {', '.join(schema)})"


def _describe(value: Any) -> str:
    names = {bool: "a boolean", int: "an integer", float: "a number", str: "a string",
             list: "a list", dict: "a table"}
    return f"{names.get(type(value), type(value).__name__)} ({shown_value(value)})"


_VALUE_LIMIT = 60
_PATH_LIMIT = 120
_MESSAGE_LIMIT = 600


def shown_value(value: Any) -> str:
    """A value quoted in a message: its repr, key-shaped strings removed before it is cut short
    (half a key no longer looks like one)."""
    try:
        text = repr(value)
    except ValueError:  # an integer too long to print
        text = f"<{type(value).__name__}>"
    return _bounded(text, _VALUE_LIMIT)


def _bounded(text: str, limit: int) -> str:
    text = redact(text)
    return text if len(text) <= limit else text[: limit - 1] + "…"
