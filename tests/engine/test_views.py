"""An agent's view kept as the history grows equals its view built from scratch: the same
request, the same hash (the hash a transcript keeps, which `inspect` and `resume` check)."""

from __future__ import annotations

from dataclasses import replace

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from intermodel.config import Pairing, parse_pairing
from intermodel.config.digest import ListDigest, canonical_digest
from intermodel.config.model import DetectorConfig
from intermodel.config.request import Request
from intermodel.engine.detectors import detect, turns_needed
from intermodel.engine.dialogue import DialogueState
from intermodel.engine.requests import AgentView, build_request, dropped_through
from intermodel.records import HistoryEntry, Interjection, ReasoningItem, Trim, Turn
from tests.conftest import SCRIPTED

PLAIN = parse_pairing(SCRIPTED, source="plain.toml")
# Thinking shared with the partner and sent back to ada, the opener shared, and bo's settings
# holding a key that sorts like the request's own `messages`.
SHARED = parse_pairing(
    SCRIPTED.replace("max_turns = 4", "max_turns = 4\nshare_thinking = true\nopener_shared = true")
    .replace("[agents.ada.script]", "[agents.ada.thinking]\nsend_back = true\n[agents.ada.script]")
    .replace("[agents.bo.script]",
             "[agents.bo.extra_body]\nmessages = [1]\nzeta = \"é\"\n[agents.bo.script]"),
    source="shared.toml")
AGENTS = ("ada", "bo")

text = st.text(alphabet=st.sampled_from('ab é"\\\n\t🙂<>{}'), max_size=6)
turn_op = st.tuples(st.just("turn"), st.sampled_from(AGENTS), text, text, st.booleans())
# Interjections for the next turn, the one after it (sent while a turn streams), or, as no live
# run sends them, for earlier turns: they land inside what a view has already built.
interject_op = st.tuples(st.just("interject"), st.integers(-3, 1),
                         st.sampled_from([("ada",), ("bo",), ("ada", "bo")]), text)
trim_op = st.tuples(st.just("trim"), st.sampled_from(AGENTS), st.integers(0, 1),
                    st.floats(0, 1))
# A request for the next turn (or an earlier one), possibly trying a further cut.
ask_op = st.tuples(st.just("ask"), st.sampled_from(AGENTS), st.integers(-2, 0),
                   st.integers(0, 3))
operations = st.lists(st.one_of(turn_op, turn_op, interject_op, trim_op, ask_op, ask_op),
                      max_size=40)


def _run(pairing: Pairing, ops: list[tuple[object, ...]]) -> None:
    history: list[HistoryEntry] = []
    views = {agent: AgentView(pairing, agent) for agent in AGENTS}
    made: list[tuple[Request, str]] = []
    for op in ops:
        following = sum(isinstance(e, Turn) for e in history) + 1
        match op:
            case ("turn", str(agent), str(reply), str(thinking), bool(items)):
                reasoning = (ReasoningItem("r1", "enc", ("sum",)),) if items else ()
                history.append(Turn(following, agent, reply, thinking=thinking,
                                    signature="sig" if thinking else "",
                                    reasoning_items=reasoning))
            case ("interject", int(offset), tuple(to), str(said)):
                history.append(Interjection(max(1, following + offset), to, said))
            case ("trim", str(agent), int(later), float(share)):
                cut = int(share * max(0, following - 2))
                history.append(Trim(agent, following + later, cut, (), 0, 0))
            case ("ask", str(agent), int(earlier), int(further)):
                turn = max(1, following + earlier)
                cut = dropped_through(history, agent, turn) + further if further else 0
                view = views[agent]
                view.follow(history)
                kept = view.request(turn, drop_through=cut)
                built = build_request(pairing, history, agent, turn, drop_through=cut)
                assert kept == built
                assert view.text_chars == sum(len(m.content) + len(m.thinking)
                                              for m in built.messages)
                made.append((kept, canonical_digest(built.to_json())))
    # Hashed in the order made, then again backwards (a request hashed after a later one of its
    # series is hashed whole): the same hashes either way.
    for kept, expected in [*made, *reversed(made)]:
        assert kept.digest() == expected


@settings(max_examples=300, deadline=None)
@given(operations)
def test_a_kept_view_is_the_view_built_from_scratch(ops: list[tuple[object, ...]]) -> None:
    _run(PLAIN, ops)


@settings(max_examples=300, deadline=None)
@given(operations)
def test_a_kept_view_is_the_view_built_from_scratch_with_thinking_relayed(
        ops: list[tuple[object, ...]]) -> None:
    _run(SHARED, ops)


def test_a_view_reads_a_history_again_when_it_is_not_the_one_it_followed() -> None:
    history: list[HistoryEntry] = [Turn(1, "ada", "a1"), Turn(2, "bo", "b1")]
    view = AgentView(PLAIN, "ada")
    view.follow(history)
    assert view.request(3) == build_request(PLAIN, history, "ada", 3)
    other: list[HistoryEntry] = [Turn(1, "ada", "x1"), Turn(2, "bo", "y1")]
    view.follow(other)
    assert view.request(3) == build_request(PLAIN, other, "ada", 3)
    history[1] = Turn(2, "bo", "changed")  # not at the end: the view notices and reads again
    view.follow(history)
    assert view.request(3) == build_request(PLAIN, history, "ada", 3)


def test_a_digest_attached_to_a_request_does_not_follow_it_through_replace() -> None:
    view = AgentView(PLAIN, "ada")
    history: list[HistoryEntry] = [Turn(1, "ada", "a1"), Turn(2, "bo", "b1")]
    view.follow(history)
    changed = replace(view.request(3), model="another")
    assert changed.digest() == canonical_digest(changed.to_json())


@pytest.mark.parametrize("members", [
    {},
    {"model": "m"},
    {"a": 1, "z": [1, {"b": None}]},
    {"extra": {"messages": []}, "system": "é\n\"q\""},
])
def test_list_digest_is_the_canonical_digest(members: dict[str, object]) -> None:
    digest = ListDigest(members, "messages")
    items: list[object] = []
    for item in ({"role": "user", "content": "hi"}, [1.5, None], "é"):
        assert digest.digest() == canonical_digest({**members, "messages": items})
        assert digest.digest([item]) == canonical_digest({**members, "messages": [*items, item]})
        digest.add(item)
        items.append(item)
    fresh = digest.fresh()
    assert fresh.digest(["x"]) == canonical_digest({**members, "messages": ["x"]})


@settings(max_examples=200, deadline=None)
@given(st.lists(st.one_of(
    st.builds(Turn, st.integers(1, 9), st.sampled_from(AGENTS), text),
    st.builds(Interjection, st.integers(1, 9), st.just(("ada",)), text),
    st.builds(Trim, st.sampled_from(AGENTS), st.integers(1, 9), st.integers(0, 9), st.just(()),
              st.just(0), st.just(0))), max_size=30), st.integers(0, 12))
def test_a_dialogue_state_counts_its_turns_as_it_grows(entries: list[HistoryEntry],
                                                       latest: int) -> None:
    state = DialogueState()
    for entry in entries:
        state.history.append(entry)
        turns = [e for e in state.history if isinstance(e, Turn)]
        assert state.turns == turns
        assert state.turn_count == len(turns)
        assert state.next_turn == (turns[-1].index + 1 if turns else 1)
        assert state.latest_turns(latest) == (turns[-latest:] if latest else [])


replies = st.sampled_from(["", "  ", "goodbye!", "Farewell, take care.", "🙂🙂🙂 ✨", "same words",
                           "same words again and again and again and again and again here",
                           "a b c. a b c. a b c. a b c. a b c. a b c."])


@settings(max_examples=200, deadline=None)
@given(st.lists(replies, min_size=1, max_size=20),
       st.builds(DetectorConfig, repetition_lookback=st.integers(1, 6),
                 empty_limit=st.integers(1, 4), goodbye_turns=st.integers(2, 6),
                 emoji_collapse_turns=st.integers(1, 5)))
def test_detectors_need_only_the_latest_turns(texts: list[str], config: DetectorConfig) -> None:
    turns = [Turn(i, AGENTS[i % 2], said) for i, said in enumerate(texts, start=1)]

    def flags(given: list[Turn]) -> list[object]:
        return [replace(flag, at="") for flag in detect(config, given)]

    assert flags(turns[-turns_needed(config):]) == flags(turns)
