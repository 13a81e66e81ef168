"""The pause/step gate on its own: what each command lets through, and that a stop wakes it."""

from __future__ import annotations

import anyio
import pytest

from intermodel.engine.gate import Gate

pytestmark = pytest.mark.anyio


async def passes(gate: Gate, stopping: bool = False) -> bool:
    """Whether a turn may start now (the gate is waited at, at most briefly)."""
    with anyio.move_on_after(0.05):
        await gate.wait(lambda: stopping)
        return True
    return False


async def test_a_paused_gate_holds_until_resumed() -> None:
    gate = Gate()
    assert await passes(gate)
    assert gate.pause() and not gate.pause()  # a second pause changes nothing
    assert not await passes(gate)
    assert gate.resume() and not gate.resume()
    assert await passes(gate) and await passes(gate)


async def test_a_step_while_paused_lets_exactly_one_turn_through() -> None:
    gate = Gate()
    gate.pause()
    assert gate.step(turn_under_way=False)
    assert await passes(gate)
    assert not await passes(gate)


async def test_a_step_while_running_pauses_after_one_turn() -> None:
    between_turns = Gate()
    assert not between_turns.step(turn_under_way=False)
    assert await passes(between_turns)  # the next turn runs
    assert not await passes(between_turns)  # then it holds
    during_a_turn = Gate()
    assert not during_a_turn.step(turn_under_way=True)
    assert not await passes(during_a_turn)  # the turn under way was the one


async def test_a_stopping_run_is_not_held() -> None:
    gate = Gate()
    gate.pause()
    assert await passes(gate, stopping=True)
