"""What happened in a run: the values the dialogue produces, the transcript stores and views read.

Each record is a frozen dataclass that converts to one JSON object (one transcript line); reading
one back, checked field by field, is `intermodel.transcript.schema`'s job.
The conversation history an agent's view is built from is just the ordered `Turn`s and
`Interjection`s, so a transcript holds everything needed to rebuild any request.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any, ClassVar

from intermodel.errors import EXIT_OK, EXIT_RUN_ERROR, EXIT_SIGNAL, ErrorKind

__all__ = [
    "Branch",
    "BudgetChange",
    "Discard",
    "EndReason",
    "Flag",
    "Header",
    "HistoryEntry",
    "Interjection",
    "Note",
    "ReasoningItem",
    "Resumption",
    "Retry",
    "RunEnd",
    "StopMatch",
    "Trim",
    "Turn",
    "Usage",
    "epoch_of",
    "exit_code_for",
    "now_iso",
    "reasoning_item_to_json",
]


def now_iso() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def epoch_of(at: str) -> float | None:
    """Seconds since the epoch of a time as records write it (`now_iso`), or None for text that
    is not one (it may come from a transcript or a socket)."""
    try:
        return datetime.fromisoformat(at).timestamp()
    except ValueError:
        return None


class EndReason(StrEnum):
    """Why a run (or one process of it) ended: `RunEnd.reason`, and `Discard.reason` for the turn
    the end cut short. A `StrEnum`, so a transcript holds the bare value ("max_turns").

    `UNKNOWN` is never written. It is what a reason this version does not know reads as (a later
    version's, or an edited file's): the transcript still reads, and what is shown is this
    version's own wording, so no text from the file reaches a screen through a reason."""

    MAX_TURNS = "max_turns"
    STOP_PHRASE = "stop_phrase"
    TOKEN_BUDGET = "token_budget"
    TIME_BUDGET = "time_budget"
    COST_BUDGET = "cost_budget"
    CONTEXT_FULL = "context_full"
    DEGENERATE = "degenerate"
    STOPPED = "stopped"  # by the person watching, or the control socket
    INTERRUPTED = "interrupted"  # by a signal
    ERROR = "error"
    COMPLETE = "complete"  # every agent of a panel answered
    INCOMPLETE = "incomplete"  # a replay of a transcript that has no final record
    UNKNOWN = "unknown"

    @classmethod
    def read(cls, text: str) -> EndReason:
        """The reason `text` names; UNKNOWN for one this version does not know."""
        try:
            return cls(text)
        except ValueError:
            return cls.UNKNOWN

    @property
    def words(self) -> str:
        """The reason's name for people: "max turns"."""
        return self.value.replace("_", " ")

    @property
    def outcome(self) -> str:
        """What happened, as a phrase: "turn budget reached"."""
        return _OUTCOMES[self]


_OUTCOMES = {
    EndReason.MAX_TURNS: "turn budget reached",
    EndReason.STOP_PHRASE: "ended by a stop phrase",
    EndReason.TOKEN_BUDGET: "token budget reached",
    EndReason.TIME_BUDGET: "time budget reached",
    EndReason.COST_BUDGET: "cost budget reached",
    EndReason.CONTEXT_FULL: "context window full",
    EndReason.DEGENERATE: "stopped by a detector",
    EndReason.STOPPED: "stopped",
    EndReason.INTERRUPTED: "interrupted",
    EndReason.ERROR: "error",
    EndReason.COMPLETE: "every agent answered",
    EndReason.INCOMPLETE: "transcript ends without a final record",
    EndReason.UNKNOWN: "ended for a reason this version does not know",
}


@dataclass(frozen=True, slots=True)
class Header:
    """The first record of a run: its id, when it started, and what it ran. `config` is the
    resolved config (every default filled in, files inlined, no secrets) of the pairing or panel
    named `pairing`, read from `source`; `origin` says where the run comes from
    ({"experiment": {...}} for a batch entry, {"parent": {...}} for a branch). The transcript
    writer adds the format version, the versions of what ran it and the config's hash."""

    KIND: ClassVar[str] = "header"
    run_id: str
    started_at: str
    pairing: str
    source: str
    config: Mapping[str, Any]
    origin: Mapping[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Usage:
    """Tokens of one request (or a sum). None where the server did not report a figure."""

    input_tokens: int | None = None
    output_tokens: int | None = None
    reasoning_tokens: int | None = None

    @property
    def total(self) -> int:
        return (self.input_tokens or 0) + (self.output_tokens or 0)

    def __add__(self, other: Usage) -> Usage:
        def add(a: int | None, b: int | None) -> int | None:
            return None if a is None and b is None else (a or 0) + (b or 0)

        return Usage(
            add(self.input_tokens, other.input_tokens),
            add(self.output_tokens, other.output_tokens),
            add(self.reasoning_tokens, other.reasoning_tokens),
        )

    @staticmethod
    def summed(usages: Iterable[Usage]) -> Usage:
        """The sum of `usages`; a figure stays None when none of them reported it."""
        total = Usage()
        for usage in usages:
            total += usage
        return total

    @staticmethod
    def per_agent(turns: Iterable[Turn], agents: Iterable[str] = ()) -> dict[str, Usage]:
        """Each agent's usage summed over `turns`: every one of `agents` first, in order (with
        nothing reported when it had no turn), then any other agent that had a turn."""
        totals = dict.fromkeys(agents, Usage())
        for turn in turns:
            totals[turn.agent] = totals.get(turn.agent, Usage()) + turn.usage
        return totals


@dataclass(frozen=True, slots=True)
class ReasoningItem:
    """One reasoning item of a reply from OpenAI's Responses API, kept so that it can be handed
    back to the same agent with its next requests (`thinking.send_back`). `encrypted_content` is
    the model's reasoning as only its server can read it (None when the server gave none);
    `summary` the parts of its readable summary; `content` the full reasoning text where a
    server exposes it (llama.cpp does, and wants it back), None where it does not."""

    id: str
    encrypted_content: str | None = None
    summary: tuple[str, ...] = ()
    content: tuple[str, ...] | None = None


@dataclass(frozen=True, slots=True)
class Turn:
    """One completed reply. `index` counts turns of the run from 1, both agents together."""

    KIND: ClassVar[str] = "turn"
    index: int
    agent: str
    text: str
    thinking: str = ""
    signature: str = ""
    usage: Usage = field(default_factory=Usage)
    latency: float = 0.0  # seconds from request to last piece, successful attempt only
    ttft: float | None = None  # seconds to the first text or thinking piece
    stop_reason: str = ""
    model: str = ""  # as reported by the server
    attempts: int = 1
    request_hash: str = ""
    at: str = ""  # when the turn completed
    # True when intermodel itself ended the reply, which had passed its length cap without a
    # finish (stop_reason is then "length"); the server's own stops leave it False.
    client_stop: bool = False
    # The server of the agent's endpoint pool (`base_urls`) that answered, as a URL without
    # credentials or query; "" for an agent of one server. Not part of the request hash: any
    # server of the pool answers the same request.
    endpoint: str = ""
    # The reply's reasoning items (OpenAI's Responses API), kept only when the agent sends its
    # thinking back: they go back to it, never to its partner.
    reasoning_items: tuple[ReasoningItem, ...] = ()


@dataclass(frozen=True, slots=True)
class Interjection:
    """A human message. Agents in `to` see it before their turns numbered `before_turn` and on."""

    KIND: ClassVar[str] = "interjection"
    before_turn: int
    to: tuple[str, ...]
    text: str
    at: str = ""


@dataclass(frozen=True, slots=True)
class Retry:
    """A failed attempt that will be retried after `wait` seconds."""

    KIND: ClassVar[str] = "retry"
    turn: int
    agent: str
    attempt: int
    error: ErrorKind  # ProviderError.kind, e.g. "rate_limited"
    message: str
    status: int | None
    wait: float
    partial_chars: int = 0  # how much of the reply had streamed before the failure (discarded)
    at: str = ""
    endpoint: str = ""  # the server of an endpoint pool that failed ("" for one server)

    def __post_init__(self) -> None:
        # Code may name the kind by its text; one that is not a kind is an error here (a reader
        # makes an unknown one UNKNOWN before it builds the record).
        object.__setattr__(self, "error", ErrorKind(self.error))


@dataclass(frozen=True, slots=True)
class Discard:
    """A turn that started but was not completed (stop, error, deadline). Kept for honesty; it is
    not part of the conversation any agent sees."""

    KIND: ClassVar[str] = "discard"
    turn: int
    agent: str
    reason: EndReason  # how the run was ending when the turn was cut short
    text: str = ""  # at most the first DISCARD_KEPT characters of the partial reply
    thinking: str = ""
    at: str = ""
    # The partial reply's whole length; None (transcripts written before it was kept) means
    # `text` and `thinking` are whole.
    text_chars: int | None = None
    thinking_chars: int | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", EndReason(self.reason))  # as Retry.error


@dataclass(frozen=True, slots=True)
class Trim:
    """The oldest turns were dropped from `agent`'s view so its request for `turn` (and every
    later one) fits its context window. The role prompt and the opener are always kept."""

    KIND: ClassVar[str] = "trim"
    agent: str
    turn: int
    dropped_through: int  # turns numbered up to this one (and interjections before them) are out
    dropped: tuple[int, ...]  # the turn numbers dropped by this trim
    estimated_tokens: int  # the request's estimated size before the trim, reply included
    window: int
    cause: str = "estimate"  # "estimate", or "server" when the server refused the request
    at: str = ""


@dataclass(frozen=True, slots=True)
class Flag:
    """A degenerate pattern a detector saw (repetition, empty replies, a goodbye loop)."""

    KIND: ClassVar[str] = "flag"
    detector: str
    turn: int
    agent: str
    action: str  # what the pairing asked for: "stop", "warn" or "mark"
    detail: str
    at: str = ""


@dataclass(frozen=True, slots=True)
class Note:
    """Something a reader of the transcript should know (e.g. a server's real context size)."""

    KIND: ClassVar[str] = "note"
    message: str
    at: str = ""


@dataclass(frozen=True, slots=True)
class BudgetChange:
    KIND: ClassVar[str] = "budget"
    max_turns: int
    at: str = ""


@dataclass(frozen=True, slots=True)
class Resumption:
    """A later process took the run up again after turn `after_turn`."""

    KIND: ClassVar[str] = "resume"
    run_id: str
    after_turn: int
    max_turns: int
    torn_bytes: int = 0  # an incomplete record the crash left behind, removed before appending
    versions: Mapping[str, str] = field(default_factory=dict)
    at: str = ""


@dataclass(frozen=True, slots=True)
class Branch:
    """A new run was started from this one's state after turn `after_turn` (the child's header
    names this run as its parent)."""

    KIND: ClassVar[str] = "branch"
    run_id: str  # the child's
    transcript: str  # the child's transcript, as a path
    after_turn: int
    at: str = ""


@dataclass(frozen=True, slots=True)
class StopMatch:
    """The stop phrase that ended a run: the phrase as configured, how it was matched
    (`dialogue.stop_match`: end, line, anywhere, regex), and where: characters `start` to `end`
    of the text of turn `turn`."""

    phrase: str
    mode: str
    turn: int
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class RunEnd:
    """How the run (or one process of it) ended. `ended_by` names the agent whose stop phrase
    ended it, and `stop` the phrase, its mode and where it was (absent in transcripts written
    before it existed)."""

    KIND: ClassVar[str] = "end"
    reason: EndReason
    detail: str = ""
    ended_by: str | None = None
    turns: int = 0
    usage: Mapping[str, Usage] = field(default_factory=dict)
    duration: float = 0.0
    at: str = ""
    stop: StopMatch | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "reason", EndReason(self.reason))  # as Retry.error


def exit_code_for(end: RunEnd | None) -> int:
    """What a command that drove a run exits with: a signal's code when it was interrupted (or
    ended without a word), a run error's when it ended in an error, else 0."""
    if end is None or end.reason is EndReason.INTERRUPTED:
        return EXIT_SIGNAL
    return EXIT_RUN_ERROR if end.reason is EndReason.ERROR else EXIT_OK


HistoryEntry = Turn | Interjection | Trim
Record = (Turn | Interjection | Retry | Discard | Trim | Flag | Note | BudgetChange | Resumption
          | Branch | RunEnd)
RECORD_TYPES: dict[str, type[Record]] = {
    cls.KIND: cls for cls in (Turn, Interjection, Retry, Discard, Trim, Flag, Note, BudgetChange,
                              Resumption, Branch, RunEnd)
}


def reasoning_item_to_json(item: ReasoningItem) -> dict[str, Any]:
    """A reasoning item as a transcript (and a request's hash) holds it: what was not given is
    left out."""
    data: dict[str, Any] = {"id": item.id}
    if item.encrypted_content is not None:
        data["encrypted_content"] = item.encrypted_content
    data["summary"] = list(item.summary)
    if item.content is not None:
        data["content"] = list(item.content)
    return data


def record_to_json(record: Record) -> dict[str, Any]:
    data = asdict(record)
    if isinstance(record, Interjection):
        data["to"] = list(record.to)
    elif isinstance(record, Trim):
        data["dropped"] = list(record.dropped)
    elif isinstance(record, RunEnd) and record.stop is None:
        del data["stop"]  # only an end by a stop phrase has one
    elif isinstance(record, Turn):
        if record.reasoning_items:
            data["reasoning_items"] = [reasoning_item_to_json(i) for i in record.reasoning_items]
        else:
            del data["reasoning_items"]  # only a reply with kept reasoning has them
    if isinstance(record, Turn | Retry) and not record.endpoint:
        del data["endpoint"]  # only an agent with an endpoint pool names one
    return {"kind": record.KIND, **data}
