"""Each agent's own view of the conversation: a pure function of the pairing and the history.

An agent sees its role prompt as the system message, its own turns as `assistant` (with their
thinking and reasoning items when it sends its thinking back), its partner's turns as `user` (with
their thinking text only when the pairing shares thinking), the opener if it is addressed to it (or
shared), and human interjections addressed to it, marked as from the human. Consecutive messages of
one role are merged so that every API accepts the list (Anthropic insists on strict alternation).
When a `Trim` record says older turns were dropped from an agent's view to fit its context window,
they stay out of its later views too. Because this is pure, the same function serves `inspect`
(rebuild a turn's request and check its hash) and `resume`.

A live run keeps an `AgentView` per agent instead: the same requests, built as the history grows.
Rebuilding a view from scratch each turn costs time in proportion to the history (at 1,000 turns,
most of a turn's own CPU time, with hashing the whole request); a view only appends the newest
entries, and its requests' digests share the hashing of what came before
(`config.request.RequestDigests`). A trim, or an entry that lands inside what was already built,
rebuilds it once.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterable, Sequence

from intermodel.config.model import Pairing, Panel
from intermodel.config.request import Message, Request, RequestDigests
from intermodel.records import HistoryEntry, Interjection, Trim, Turn

__all__ = ["AgentView", "HistoryCursor", "build_request", "conversation_order",
           "dropped_through", "merge_roles", "panel_request"]


def conversation_order(history: Iterable[HistoryEntry]) -> list[Turn | Interjection]:
    """Turns and interjections in the order agents see them: an interjection stands just before
    the turn it was aimed at, even when it arrived while the previous turn was still streaming."""
    def key(entry: Turn | Interjection) -> tuple[int, int]:
        return (entry.before_turn, 0) if isinstance(entry, Interjection) else (entry.index, 1)

    entries = [e for e in history if isinstance(e, Turn | Interjection)]
    return sorted(entries, key=key)  # stable: interjections keep their arrival order


def dropped_through(history: Iterable[HistoryEntry], agent: str, turn: int,
                    extra: int = 0) -> int:
    """The last turn number cut from `agent`'s view for `turn` by its trims (0: none)."""
    cuts = [e.dropped_through for e in history
            if isinstance(e, Trim) and e.agent == agent and e.turn <= turn]
    return max([extra, *cuts])


def build_request(
    pairing: Pairing, history: Sequence[HistoryEntry], agent: str, turn: int,
    *, drop_through: int = 0,
) -> Request:
    """The exact request `agent` is sent for turn number `turn`. `drop_through` leaves out
    older turns beyond what the recorded trims already do (for trying a trim before making it)."""
    cutoff = dropped_through(history, agent, turn, drop_through)
    messages = _opener(pairing, agent)
    for entry in conversation_order(history):
        if isinstance(entry, Interjection):
            if cutoff < entry.before_turn <= turn and agent in entry.to:
                messages.append(_interjection_message(pairing, entry))
        elif cutoff < entry.index < turn:
            messages.append(_turn_message(pairing, entry, agent))
    return _request(pairing, agent, tuple(merge_roles(messages)))


def _request(pairing: Pairing, agent: str, messages: tuple[Message, ...]) -> Request:
    config = pairing.agent(agent)
    return Request(
        model=config.model,
        system=pairing.system_prompt(agent),
        messages=messages,
        sampling=config.sampling,
        thinking_budget=config.thinking_budget,
        extra_body=config.extra_body,
        extra_headers=config.extra_headers,
        reasoning=config.reasoning,
    )


def _opener(pairing: Pairing, agent: str) -> list[Message]:
    dialogue = pairing.dialogue
    if dialogue.opener_to == agent or dialogue.opener_shared:
        return [Message("user", dialogue.opener)]
    return []


def _interjection_message(pairing: Pairing, interjection: Interjection) -> Message:
    return Message("user", pairing.dialogue.interjection_format.replace("{text}",
                                                                        interjection.text))


def panel_request(panel: Panel, agent: str) -> Request:
    """What a panel agent is sent: its role prompt and the panel's message."""
    config = panel.agent(agent)
    return Request(
        model=config.model,
        system=panel.system_prompt(agent),
        messages=(Message("user", panel.prompt),),
        sampling=config.sampling,
        thinking_budget=config.thinking_budget,
        extra_body=config.extra_body,
        extra_headers=config.extra_headers,
        reasoning=config.reasoning,
    )


def _turn_message(pairing: Pairing, turn: Turn, viewer: str) -> Message:
    text = turn.text if turn.text.strip() else pairing.dialogue.empty_reply
    if turn.agent == viewer:
        if pairing.agent(viewer).send_thinking_back and (turn.thinking or turn.reasoning_items):
            return Message("assistant", text, thinking=turn.thinking, signature=turn.signature,
                           reasoning_items=turn.reasoning_items)
        return Message("assistant", text)
    # The partner never gets reasoning items (they are the agent's own), at most the text.
    if pairing.dialogue.share_thinking and turn.thinking:
        text = f"<thinking>\n{turn.thinking}\n</thinking>\n\n{text}"
    return Message("user", text)


def merge_roles(messages: Iterable[Message]) -> list[Message]:
    """Join consecutive messages of one role with a blank line between them."""
    merged: list[Message] = []
    for message in messages:
        if merged and merged[-1].role == message.role:
            merged[-1] = _joined(merged[-1], message)
        else:
            merged.append(message)
    return merged


def _joined(last: Message, message: Message) -> Message:
    thinking = "\n\n".join(t for t in (last.thinking, message.thinking) if t)
    # A signature vouches for one thinking block; a merged block has none.
    signature = last.signature if not message.thinking else (
        message.signature if not last.thinking else "")
    return Message(last.role, f"{last.content}\n\n{message.content}", thinking, signature,
                   last.reasoning_items + message.reasoning_items)


def _text_chars(message: Message) -> int:
    return len(message.content) + len(message.thinking)


class HistoryCursor:
    """How far one reader of a growing history has read. The history is taken to grow only at
    its end (as a run's does); another list, a shorter one, or a different entry where the reader
    stopped makes it read again from the start."""

    def __init__(self) -> None:
        self._history: Sequence[HistoryEntry] | None = None
        self._read = 0
        self._last: HistoryEntry | None = None

    def advance(self, history: Sequence[HistoryEntry]) -> tuple[bool, Sequence[HistoryEntry]]:
        """(True, every entry) when reading again from the start, else (False, the entries
        appended since the last call)."""
        read = self._read
        again = (history is not self._history or len(history) < read
                 or (read > 0 and history[read - 1] is not self._last))
        if again:
            read = 0
        self._history, self._read = history, len(history)
        self._last = history[-1] if history else None
        return again, history[read:]


class AgentView:
    """One agent's view of a growing conversation: `request(turn)` equals
    `build_request(pairing, history, agent, turn)` for the history last `follow`ed, at a cost that
    does not grow with it while turns are only appended.

    The view keeps the turns and the interjections addressed to the agent in conversation order,
    and the merged messages built from a stretch of them (the window of the last request). The
    next request's window normally starts where the last one did and ends further on: only the
    new entries are turned into messages and merged in. A window that starts elsewhere (a trim)
    or ends earlier is built again."""

    def __init__(self, pairing: Pairing, agent: str) -> None:
        self._pairing = pairing
        self._agent = agent
        self._cursor = HistoryCursor()
        self._blank = RequestDigests(_request(pairing, agent, ()))
        self._clear()

    def _clear(self) -> None:
        self._entries: list[Turn | Interjection] = []
        self._keys: list[tuple[int, int]] = []  # conversation_order's sort key of each entry
        self._cut = 0  # the furthest cut of the agent's trims
        self._latest_trim = 0  # the latest turn the agent's trims were made for
        self._trims: list[Trim] = []
        self._start = self._end = -1  # the window built: entries[_start:_end]; none yet
        self._messages: list[Message] = []
        self._chars = 0
        self._digests = self._blank

    @property
    def text_chars(self) -> int:
        """Characters of text and thinking in the messages of the request last made."""
        return self._chars

    def follow(self, history: Sequence[HistoryEntry]) -> None:
        """Take in what was appended to `history` since the last call."""
        again, new = self._cursor.advance(history)
        if again:
            self._clear()
        for entry in new:
            self._take(entry)

    def cutoff(self, turn: int) -> int:
        """`dropped_through(history, agent, turn)`."""
        if self._latest_trim <= turn:
            return self._cut
        return max([0, *(t.dropped_through for t in self._trims if t.turn <= turn)])

    def turns_between(self, after: int, through: int) -> tuple[int, ...]:
        """The numbers of the turns after `after` up to `through`, in order."""
        start = bisect_right(self._keys, (after, 1))
        end = bisect_right(self._keys, (through, 1))
        return tuple(e.index for e in self._entries[start:end] if isinstance(e, Turn))

    def request(self, turn: int, *, drop_through: int = 0) -> Request:
        """`build_request(pairing, history, agent, turn, drop_through=drop_through)`."""
        cutoff = max(drop_through, self.cutoff(turn))
        # The window: interjections for turns after the cut up to this one, turns between.
        start = bisect_right(self._keys, (cutoff, 1))
        end = bisect_right(self._keys, (turn, 0))
        if start != self._start or end < self._end:
            self._restart(start)
        for entry in self._entries[self._end:end]:
            self._add(entry)
        self._end = max(self._end, end)
        return self._digests.attach(_request(self._pairing, self._agent,
                                             tuple(self._messages)))

    def _take(self, entry: HistoryEntry) -> None:
        key: tuple[int, int]
        if isinstance(entry, Turn):
            key = (entry.index, 1)
        elif isinstance(entry, Interjection):
            if self._agent not in entry.to:
                return
            key = (entry.before_turn, 0)
        else:
            if isinstance(entry, Trim) and entry.agent == self._agent:
                self._trims.append(entry)
                self._cut = max(self._cut, entry.dropped_through)
                self._latest_trim = max(self._latest_trim, entry.turn)
            return
        # After any entry of the same key: the sort of conversation_order is stable.
        position = bisect_right(self._keys, key)
        self._keys.insert(position, key)
        self._entries.insert(position, entry)
        if position < self._end:
            self._start = self._end = -1  # it lands inside the window built: build it again

    def _restart(self, start: int) -> None:
        self._start = self._end = start
        self._messages = _opener(self._pairing, self._agent)
        self._chars = sum(map(_text_chars, self._messages))
        self._digests = self._blank.fresh()

    def _add(self, entry: Turn | Interjection) -> None:
        message = (_interjection_message(self._pairing, entry) if isinstance(entry, Interjection)
                   else _turn_message(self._pairing, entry, self._agent))
        messages = self._messages
        if messages and messages[-1].role == message.role:
            last = messages[-1]
            messages[-1] = merged = _joined(last, message)
            self._chars += _text_chars(merged) - _text_chars(last)
        else:
            messages.append(message)
            self._chars += _text_chars(message)
