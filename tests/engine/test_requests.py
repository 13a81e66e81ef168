from __future__ import annotations

import itertools

from intermodel.config.request import Message
from intermodel.engine.requests import build_request, merge_roles
from intermodel.records import Interjection, Turn
from tests.conftest import SCRIPTED, PairingFactory


def turn(index: int, agent: str, text: str, thinking: str = "", signature: str = "") -> Turn:
    return Turn(index=index, agent=agent, text=text, thinking=thinking, signature=signature)


def roles(request) -> list[tuple[str, str]]:  # type: ignore[no-untyped-def]
    return [(m.role, m.content) for m in request.messages]


def test_first_speaker_sees_system_and_opener(make_pairing: PairingFactory) -> None:
    request = build_request(make_pairing(), [], "ada", 1)
    assert request.system == "You are ada, talking with bo for 4 turns."
    assert roles(request) == [("user", "Hello there.")]


def test_own_turns_are_assistant_partner_turns_are_user(make_pairing: PairingFactory) -> None:
    history = [turn(1, "ada", "a1"), turn(2, "bo", "b1"), turn(3, "ada", "a2")]
    assert roles(build_request(make_pairing(), history, "bo", 4)) == [
        ("user", "a1"), ("assistant", "b1"), ("user", "a2")]
    assert roles(build_request(make_pairing(), history[:2], "ada", 3)) == [
        ("user", "Hello there."), ("assistant", "a1"), ("user", "b1")]


def test_shared_opener_merges_with_the_first_reply_for_the_partner(
        make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED.replace("max_turns = 4", "max_turns = 4\nopener_shared = true"))
    request = build_request(pairing, [turn(1, "ada", "a1")], "bo", 2)
    assert roles(request) == [("user", "Hello there.\n\na1")]


def test_interjection_reaches_only_its_addressee_marked_as_human(
        make_pairing: PairingFactory) -> None:
    history = [turn(1, "ada", "a1"), Interjection(2, ("bo",), "be brief"), turn(2, "bo", "b1")]
    pairing = make_pairing()
    assert roles(build_request(pairing, history, "bo", 2)) == [
        ("user", "a1\n\n[Human]: be brief")]
    assert roles(build_request(pairing, history, "ada", 3)) == [
        ("user", "Hello there."), ("assistant", "a1"), ("user", "b1")]


def test_interjection_sent_while_a_turn_streams_waits_for_the_next_turn(
        make_pairing: PairingFactory) -> None:
    # Arrived while turn 2 was streaming, aimed at turn 3: recorded before turn 2 completed.
    history = [turn(1, "ada", "a1"), Interjection(3, ("ada", "bo"), "new topic"),
               turn(2, "bo", "b1")]
    pairing = make_pairing()
    assert roles(build_request(pairing, history, "ada", 3)) == [
        ("user", "Hello there."), ("assistant", "a1"), ("user", "b1\n\n[Human]: new topic")]
    # bo's turn 2 did not see it (it was already under way) but its turn 4 does.
    assert roles(build_request(pairing, history, "bo", 2)) == [("user", "a1")]
    later = [*history, turn(3, "ada", "a2")]
    assert roles(build_request(pairing, later, "bo", 4)) == [
        ("user", "a1"), ("assistant", "b1"), ("user", "[Human]: new topic\n\na2")]


def test_thinking_is_private_by_default(make_pairing: PairingFactory) -> None:
    history = [turn(1, "ada", "a1", thinking="secret plan", signature="sig")]
    pairing = make_pairing()
    partner_view = build_request(pairing, history, "bo", 2)
    assert "secret plan" not in str(partner_view.to_json())
    own_view = build_request(pairing, [*history, turn(2, "bo", "b1")], "ada", 3)
    assert own_view.messages[1] == Message("assistant", "a1")


def test_thinking_shared_with_partner_and_sent_back_when_configured(
        make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace("max_turns = 4", "max_turns = 4\nshare_thinking = true").replace(
        "[agents.ada.script]", "[agents.ada.thinking]\nsend_back = true\n[agents.ada.script]")
    pairing = make_pairing(text)
    history = [turn(1, "ada", "a1", thinking="plan", signature="sig"), turn(2, "bo", "b1")]
    assert roles(build_request(pairing, history[:1], "bo", 2)) == [
        ("user", "<thinking>\nplan\n</thinking>\n\na1")]
    own = build_request(pairing, history, "ada", 3)
    assert own.messages[1] == Message("assistant", "a1", thinking="plan", signature="sig")


def test_empty_replies_are_replaced_so_apis_accept_them(make_pairing: PairingFactory) -> None:
    history = [turn(1, "ada", "  "), turn(2, "bo", "b1")]
    request = build_request(make_pairing(), history, "ada", 3)
    assert request.messages[1] == Message("assistant", "[no reply]")
    assert roles(build_request(make_pairing(), history[:1], "bo", 2)) == [("user", "[no reply]")]


def test_views_always_alternate_and_start_with_user(make_pairing: PairingFactory) -> None:
    history: list[Turn | Interjection] = []
    pairing = make_pairing()
    for index in range(1, 9):
        agent = "ada" if index % 2 else "bo"
        if index % 3 == 0:
            history.append(Interjection(index, ("ada", "bo"), f"note {index}"))
        request = build_request(pairing, history, agent, index)
        kinds = [m.role for m in request.messages]
        assert kinds[0] == "user"
        assert kinds[-1] == "user"
        assert all(a != b for a, b in itertools.pairwise(kinds))
        history.append(turn(index, agent, f"{agent} {index}"))


def test_merge_keeps_a_signature_only_for_a_single_thinking_block() -> None:
    merged = merge_roles([Message("assistant", "a", "t1", "s1"), Message("assistant", "b")])
    assert merged == [Message("assistant", "a\n\nb", "t1", "s1")]
    both = merge_roles([Message("assistant", "a", "t1", "s1"),
                        Message("assistant", "b", "t2", "s2")])
    assert both == [Message("assistant", "a\n\nb", "t1\n\nt2", "")]


def test_request_digest_is_stable_and_sensitive(make_pairing: PairingFactory) -> None:
    pairing = make_pairing()
    first = build_request(pairing, [turn(1, "ada", "a1")], "bo", 2)
    again = build_request(pairing, [turn(1, "ada", "a1")], "bo", 2)
    other = build_request(pairing, [turn(1, "ada", "a1!")], "bo", 2)
    assert first.digest() == again.digest()
    assert first.digest() != other.digest()
    assert first.digest().startswith("sha256:")
