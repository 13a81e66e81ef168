"""The record types' own arithmetic: usage summed over turns, the one way every reader does it."""

from __future__ import annotations

from intermodel.records import Turn, Usage


def test_usage_per_agent_keeps_unreported_figures_unreported() -> None:
    turns = [Turn(1, "ada", "a", usage=Usage(10, 2)), Turn(2, "bo", "b", usage=Usage(None, 3)),
             Turn(3, "ada", "c", usage=Usage(5, None, 7)), Turn(4, "cy", "d")]
    totals = Usage.per_agent(turns, ("bo", "ada", "dee"))
    assert list(totals) == ["bo", "ada", "dee", "cy"]  # the agents named, then the others
    assert totals["ada"] == Usage(15, 2, 7)
    assert totals["bo"] == Usage(None, 3, None)
    assert totals["dee"] == totals["cy"] == Usage()


def test_usage_summed() -> None:
    assert Usage.summed([]) == Usage()
    assert Usage.summed([Usage(1, None), Usage(2, 3)]) == Usage(3, 3, None)
    assert Usage.summed([Usage(1, 2), Usage(3, 4)]).total == 10
