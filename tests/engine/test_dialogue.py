from __future__ import annotations

import anyio
import pytest

from intermodel.engine.controls import Interject, Pause, Step, Stop
from intermodel.engine.dialogue import Dialogue
from intermodel.engine.events import (
    Event,
    Interjected,
    Notice,
    Paused,
    Retrying,
    RunFinished,
    RunStarted,
    TextChunk,
    TurnCompleted,
    TurnDiscarded,
    TurnStarted,
)
from intermodel.errors import AuthenticationFailed, RateLimited, StreamInterrupted
from intermodel.records import BudgetChange, Discard, Retry, RunEnd, Turn
from tests.conftest import SCRIPTED, PairingFactory
from tests.fakes import FailingProvider, MemoryRecorder, run_dialogue, scripted_providers

pytestmark = pytest.mark.anyio

FAST_RETRY = "\n[retry]\nbackoff_initial = 0.01\nbackoff_max = 0.05\n"


def completed(events: list[Event]) -> list[Turn]:
    return [e.turn for e in events if isinstance(e, TurnCompleted)]


async def test_agents_alternate_until_the_turn_budget(make_pairing: PairingFactory) -> None:
    end, events = await run_dialogue(make_pairing())
    turns = completed(events)
    assert [(t.index, t.agent, t.text) for t in turns] == [
        (1, "ada", "ada one"), (2, "bo", "bo one"), (3, "ada", "ada two"), (4, "bo", "bo two")]
    assert end.reason == "max_turns"
    assert end.turns == 4
    assert isinstance(events[0], RunStarted)
    assert isinstance(events[-1], RunFinished)


async def test_streamed_chunks_add_up_to_the_recorded_turn(make_pairing: PairingFactory) -> None:
    _, events = await run_dialogue(make_pairing())
    for turn in completed(events):
        chunks = [e.text for e in events
                  if isinstance(e, TextChunk) and e.turn == turn.index]
        assert "".join(chunks) == turn.text
        assert turn.ttft is not None and turn.latency >= turn.ttft
        assert turn.request_hash.startswith("sha256:")


async def test_second_speaker_can_go_first(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED.replace("max_turns = 4", 'max_turns = 2\nfirst = "bo"'))
    _, events = await run_dialogue(pairing)
    assert [t.agent for t in completed(events)] == ["bo", "ada"]


async def test_a_stop_phrase_ends_the_run_and_names_who_said_it(
        make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace("max_turns = 4", 'max_turns = 10\nstop_phrases = ["^C^C"]').replace(
        '"bo two"', '"enough ^C^C"')
    end, events = await run_dialogue(make_pairing(text))
    assert end.reason == "stop_phrase"
    assert end.ended_by == "bo"
    assert completed(events)[-1].text == "enough ^C^C"
    assert end.turns == 4


async def test_token_budget_ends_the_run(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED.replace("max_turns = 4",
                                            "max_turns = 50\nmax_total_tokens = 40"))
    end, events = await run_dialogue(pairing)
    assert end.reason == "token_budget"
    total = sum(t.usage.total for t in completed(events))
    assert total >= 40
    assert total - completed(events)[-1].usage.total < 40


async def test_time_budget_discards_the_streaming_turn(make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace("max_turns = 4", "max_turns = 50\nmax_seconds = 1").replace(
        'replies = ["bo one", "bo two", "bo three"]',
        'replies = ["bo one two three four five six seven eight"]\ndelay = 0.3')
    end, events = await run_dialogue(make_pairing(text))
    assert end.reason == "time_budget"
    discards = [e.discard for e in events if isinstance(e, TurnDiscarded)]
    assert [d.reason for d in discards] == ["time_budget"]
    assert discards[0].agent == "bo"
    assert 0.9 < end.duration < 2.5


async def test_interjection_reaches_the_addressed_agent_next_turn(
        make_pairing: PairingFactory) -> None:
    pairing = make_pairing()
    providers = scripted_providers(pairing)

    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnStarted) and event.turn == 1:
            dialogue.controls.interject("bo, please be brief", to="b")

    _, events = await run_dialogue(pairing, providers, react=react)
    [interjection] = [e.interjection for e in events if isinstance(e, Interjected)]
    assert interjection.to == ("bo",) and interjection.before_turn == 2
    bo_first = providers["bo"].requests[0]
    assert bo_first.messages[-1].content == "ada one\n\n[Human]: bo, please be brief"
    assert all("please be brief" not in m.content
               for r in providers["ada"].requests for m in r.messages)


async def test_interjection_while_streaming_waits_for_the_turn_after(
        make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace('replies = ["ada one", "ada two", "ada three"]',
                            'replies = ["ada one is long", "ada two", "ada three"]\ndelay = 0.02')
    pairing = make_pairing(text)
    providers = scripted_providers(pairing)

    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TextChunk) and event.turn == 1 and event.text.startswith("ada"):
            dialogue.controls.send(Interject("hello both", "both"))

    _, events = await run_dialogue(pairing, providers, react=react)
    [interjection] = [e.interjection for e in events if isinstance(e, Interjected)]
    assert interjection.before_turn == 2
    # Placed after the turn that was streaming, before the next one.
    assert providers["bo"].requests[0].messages[-1].content == \
        "ada one is long\n\n[Human]: hello both"
    assert providers["ada"].requests[1].messages[-1].content == \
        "[Human]: hello both\n\nbo one"


async def test_pause_holds_and_step_runs_exactly_one_turn(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED.replace("max_turns = 4", "max_turns = 6"))
    log: list[str] = []

    async def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnStarted) and event.turn == 1:
            dialogue.controls.send(Pause())  # takes effect when turn 1 is done
        if isinstance(event, TurnStarted):
            log.append(f"turn {event.turn}")
        if isinstance(event, TurnCompleted) and event.turn.index in (1, 2):
            await anyio.sleep(0.2)  # nothing may happen while paused
            if event.turn.index == 1:
                log.append("step")
                dialogue.controls.send(Step())
            else:
                log.append("resume")
                dialogue.controls.resume()

    end, events = await run_dialogue(pairing, react=react)
    assert log == ["turn 1", "step", "turn 2", "resume", "turn 3", "turn 4", "turn 5", "turn 6"]
    assert end.reason == "max_turns"
    assert sum(isinstance(e, Paused) for e in events) == 1


async def test_step_while_running_pauses_after_the_current_turn(
        make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED.replace("max_turns = 4", "max_turns = 6"))
    done: list[int] = []

    async def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnStarted) and event.turn == 2:
            dialogue.controls.step()
        if isinstance(event, TurnCompleted):
            done.append(event.turn.index)
            if event.turn.index == 2:
                await anyio.sleep(0.2)
                assert done == [1, 2]  # paused after turn 2
                dialogue.controls.stop(now=False)

    end, _ = await run_dialogue(pairing, react=react)
    assert done == [1, 2]
    assert end.reason == "stopped"


async def test_stop_now_discards_and_records_the_streaming_turn(
        make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace('replies = ["bo one", "bo two", "bo three"]',
                            'replies = ["bo one two three four five"]\ndelay = 0.05')
    recorder = MemoryRecorder()

    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TextChunk) and event.agent == "bo":
            dialogue.controls.send(Stop(now=True))

    end, events = await run_dialogue(make_pairing(text), react=react, recorder=recorder)
    assert end.reason == "stopped"
    [discard] = [r for r in recorder.records if isinstance(r, Discard)]
    assert (discard.turn, discard.agent, discard.reason) == (2, "bo", "stopped")
    assert discard.text.startswith("bo")
    assert [t.index for t in completed(events)] == [1]
    assert isinstance(recorder.records[-1], RunEnd)


async def test_graceful_stop_finishes_the_streaming_turn(make_pairing: PairingFactory) -> None:
    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnStarted) and event.turn == 2:
            dialogue.controls.stop(now=False)

    end, events = await run_dialogue(make_pairing(), react=react)
    assert [t.index for t in completed(events)] == [1, 2]
    assert end.reason == "stopped"
    assert not any(isinstance(e, TurnDiscarded) for e in events)


async def test_extend_raises_the_budget_and_is_recorded(make_pairing: PairingFactory) -> None:
    recorder = MemoryRecorder()

    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnCompleted) and event.turn.index == 3:
            dialogue.controls.extend(2)

    end, _ = await run_dialogue(make_pairing(), react=react, recorder=recorder)
    assert end.turns == 6
    [change] = [r for r in recorder.records if isinstance(r, BudgetChange)]
    assert change.max_turns == 6


async def test_transient_errors_are_retried_and_recorded(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED, FAST_RETRY)
    providers = scripted_providers(pairing)
    flaky = FailingProvider(providers["bo"], [
        RateLimited("slow down", provider="fake", status=429, retry_after=0.05),
        StreamInterrupted("cut", provider="fake"),
    ])
    recorder = MemoryRecorder()
    end, events = await run_dialogue(pairing, {"ada": providers["ada"], "bo": flaky},
                                     recorder=recorder)
    assert end.reason == "max_turns"
    retries = [r for r in recorder.records if isinstance(r, Retry)]
    assert [(r.turn, r.agent, r.attempt, r.error, r.status) for r in retries] == [
        (2, "bo", 1, "rate_limited", 429), (2, "bo", 2, "stream_interrupted", None)]
    assert retries[0].wait >= 0.05  # Retry-After honoured
    assert retries[0].partial_chars == len("half a rep")
    bo_turn = completed(events)[1]
    assert bo_turn.text == "bo one"  # the partial reply was discarded, not glued on
    assert bo_turn.attempts == 3


async def test_retry_after_is_capped(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED, FAST_RETRY + "max_retry_after = 0.1\n")
    providers = scripted_providers(pairing)
    flaky = FailingProvider(providers["ada"], [RateLimited("wait an hour", retry_after=3600)])
    end, events = await run_dialogue(pairing, {"ada": flaky, "bo": providers["bo"]}, timeout=5)
    [retry] = [e.retry for e in events if isinstance(e, Retrying)]
    assert retry.wait == pytest.approx(0.1, abs=0.06)
    assert end.reason == "max_turns"


async def test_giving_up_after_the_attempt_limit_ends_the_run(
        make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED, FAST_RETRY + "attempts = 2\n")
    providers = scripted_providers(pairing)
    flaky = FailingProvider(providers["ada"], [RateLimited("no", status=429)] * 5)
    end, events = await run_dialogue(pairing, {"ada": flaky, "bo": providers["bo"]})
    assert end.reason == "error"
    assert "gave up after 3 attempts" in end.detail
    assert flaky.calls == 3
    assert sum(isinstance(e, Retrying) for e in events) == 2


async def test_fatal_errors_end_the_run_at_once(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(SCRIPTED, FAST_RETRY)
    providers = scripted_providers(pairing)
    flaky = FailingProvider(providers["bo"], [
        AuthenticationFailed("invalid key", provider="openai", status=401)])
    end, events = await run_dialogue(pairing, {"ada": providers["ada"], "bo": flaky})
    assert end.reason == "error"
    assert end.detail == "bo: openai 401 authentication failed: invalid key"
    assert flaky.calls == 1
    assert not any(isinstance(e, Retrying) for e in events)
    [discard] = [e.discard for e in events if isinstance(e, TurnDiscarded)]
    assert discard.reason == "error" and discard.text == "half a rep"


async def test_a_slow_subscriber_never_stalls_the_models(make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace("max_turns = 4", "max_turns = 40")
    pairing = make_pairing(text)
    dialogue = Dialogue(pairing, scripted_providers(pairing))
    idle = dialogue.subscribe()  # never read while the run goes on
    with anyio.fail_after(10):
        end = await dialogue.run()
    assert end.turns == 40
    backlog = idle.drain()
    # Chunks merged while it lagged: one text event per turn, everything else intact.
    assert sum(isinstance(e, TextChunk) for e in backlog) == 40
    turns = [e.turn for e in backlog if isinstance(e, TurnCompleted)]
    texts = ["".join(e.text for e in backlog if isinstance(e, TextChunk) and e.turn == t.index)
             for t in turns]
    assert texts == [t.text for t in turns]


async def test_cancelling_the_run_from_outside_still_writes_the_end(
        make_pairing: PairingFactory) -> None:
    text = SCRIPTED.replace('replies = ["bo one", "bo two", "bo three"]',
                            'replies = ["bo one two three"]\ndelay = 0.2')
    pairing = make_pairing(text)
    recorder = MemoryRecorder()
    dialogue = Dialogue(pairing, scripted_providers(pairing), recorder=recorder)
    with anyio.move_on_after(0.5):
        await dialogue.run()
    *_, discard, end = recorder.records
    assert isinstance(discard, Discard) and isinstance(end, RunEnd)
    assert end.reason == "stopped"


async def test_addressing_an_unknown_agent_is_a_notice_not_a_crash(
        make_pairing: PairingFactory) -> None:
    def react(dialogue: Dialogue, event: Event) -> None:
        if isinstance(event, TurnCompleted) and event.turn.index == 1:
            dialogue.controls.interject("hi", to="carol")

    end, events = await run_dialogue(make_pairing(), react=react)
    assert end.reason == "max_turns"
    [notice] = [e for e in events if isinstance(e, Notice)]
    assert notice.message == "no such addressee: use a, b, both, ada or bo"  # as the CLI says


PRICED = SCRIPTED.replace("max_turns = 4", "max_turns = 30\nmax_cost = 0.001").replace(
    "[agents.ada.script]", "[agents.ada.price]\ninput = 3.0\noutput = 15.0\n[agents.ada.script]"
).replace("[agents.bo.script]", "[agents.bo.price]\ninput = 1.0\noutput = 5.0\n"
          "[agents.bo.script]")


async def test_the_cost_budget_stops_an_unattended_run(make_pairing: PairingFactory) -> None:
    pairing = make_pairing(PRICED)
    dialogue = Dialogue(pairing, scripted_providers(pairing))
    end = await dialogue.run()
    assert end.reason == "cost_budget"
    spent = dialogue.cost()
    assert spent is not None and spent >= 0.001
    assert end.detail == f"${spent:.4f} spent, budget $0.001"
    # It stopped at the first turn that crossed the line, not later.
    assert sum(u.total for u in end.usage.values()) > 0 and end.turns < 30


async def test_the_cost_budget_pauses_when_someone_is_watching(
        make_pairing: PairingFactory) -> None:
    pairing = make_pairing(PRICED)
    dialogue = Dialogue(pairing, scripted_providers(pairing), cost_action="pause")
    subscription = dialogue.subscribe()
    paused_after: list[int] = []

    async def watch() -> None:
        async for event in subscription:
            if isinstance(event, TurnCompleted):
                last = event.turn.index
            if isinstance(event, Paused):
                paused_after.append(last)
                await anyio.sleep(0.1)
                dialogue.controls.stop(now=False)

    async with anyio.create_task_group() as tg:
        tg.start_soon(watch)
        with anyio.fail_after(10):
            end = await dialogue.run()
    assert end.reason == "stopped"
    assert len(paused_after) == 1 and paused_after[0] == end.turns
