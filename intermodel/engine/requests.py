"""Each agent's own view of the conversation: a pure function of the pairing and the history.

An agent sees its role prompt as the system message, its own turns as `assistant` (with their
thinking and reasoning items when it sends its thinking back), its partner's turns as `user` (with
their thinking text only when the pairing shares thinking), the opener if it is addressed to it (or
shared), and human interjections addressed to it, marked as from the human. Consecutive messages of
one role are merged so that every API accepts the list (Anthropic insists on strict alternation).
When a `Trim` record says older turns were dropped from an agent's view to fit its context window,
they stay out of its later views too. Because this is pure, the same function serves the live run,
`inspect` (rebuild a turn's request and check its hash) and `resume`.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from intermodel.config.model import Pairing, Panel
from intermodel.config.request import Message, Request
from intermodel.records import HistoryEntry, Interjection, Trim, Turn

__all__ = ["build_request", "conversation_order", "dropped_through", "merge_roles",
           "panel_request"]


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
    dialogue = pairing.dialogue
    config = pairing.agent(agent)
    cutoff = dropped_through(history, agent, turn, drop_through)
    messages: list[Message] = []
    if dialogue.opener_to == agent or dialogue.opener_shared:
        messages.append(Message("user", dialogue.opener))
    for entry in conversation_order(history):
        if isinstance(entry, Interjection):
            if cutoff < entry.before_turn <= turn and agent in entry.to:
                text = dialogue.interjection_format.replace("{text}", entry.text)
                messages.append(Message("user", text))
        elif cutoff < entry.index < turn:
            messages.append(_turn_message(pairing, entry, agent))
    return Request(
        model=config.model,
        system=pairing.system_prompt(agent),
        messages=tuple(merge_roles(messages)),
        sampling=config.sampling,
        thinking_budget=config.thinking_budget,
        extra_body=config.extra_body,
        extra_headers=config.extra_headers,
        reasoning=config.reasoning,
    )


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
            last = merged[-1]
            thinking = "\n\n".join(t for t in (last.thinking, message.thinking) if t)
            # A signature vouches for one thinking block; a merged block has none.
            signature = last.signature if not message.thinking else (
                message.signature if not last.thinking else "")
            merged[-1] = Message(last.role, f"{last.content}\n\n{message.content}",
                                 thinking, signature,
                                 last.reasoning_items + message.reasoning_items)
        else:
            merged.append(message)
    return merged
