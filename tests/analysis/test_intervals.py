"""Wilson score intervals, checked against published values and the formula's own properties."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intermodel.analysis.intervals import Z95, Proportion, wilson, z_for


@pytest.mark.parametrize(("k", "n", "low", "high"), [
    # Newcombe (1998), "Two-sided confidence intervals for the single proportion: comparison of
    # seven methods", Statistics in Medicine 17: 857-872: the worked examples, method 3 (the
    # score method without continuity correction), to four decimals.
    (81, 263, 0.2553, 0.3662),
    (15, 148, 0.0624, 0.1605),
    (0, 20, 0.0, 0.1611),
    (1, 29, 0.0061, 0.1718),
])
def test_newcombes_worked_examples(k: int, n: int, low: float, high: float) -> None:
    interval = wilson(k, n)
    assert (round(interval.low, 4), round(interval.high, 4)) == (low, high)


def test_none_and_all_have_closed_forms() -> None:
    z2 = Z95 ** 2
    for n in (1, 5, 10, 200):
        none, every = wilson(0, n), wilson(n, n)
        assert none.low == 0.0 and math.isclose(none.high, z2 / (n + z2))
        assert every.high == 1.0 and math.isclose(every.low, n / (n + z2))
    assert str(wilson(9, 10)) == "9/10 = 0.90 [0.60, 0.98]"


def test_the_level_is_chosen_by_z() -> None:
    assert math.isclose(Z95, 1.959964, abs_tol=1e-6)
    assert math.isclose(z_for(0.99), 2.575829, abs_tol=1e-6)
    narrow, wide = wilson(3, 10, z=z_for(0.8)), wilson(3, 10, z=z_for(0.99))
    assert wide.low < narrow.low < 0.3 < narrow.high < wide.high
    assert wilson(3, 10, z=1.0).z == 1.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        z_for(1.0)


def test_nothing_observed_is_everything_possible() -> None:
    empty = wilson(0, 0)
    assert (empty.low, empty.high, empty.estimate) == (0.0, 1.0, None)
    assert str(empty) == "0/0"


@pytest.mark.parametrize(("k", "n", "z", "error"), [
    (3, 2, Z95, ValueError), (-1, 2, Z95, ValueError), (1, 2, 0.0, ValueError),
    (1, 2, math.inf, ValueError), (1, 2, math.nan, ValueError), (True, 2, Z95, TypeError),
    (1.0, 2, Z95, TypeError),
])
def test_impossible_counts_are_refused(k: int, n: int, z: float, error: type) -> None:
    with pytest.raises(error):
        wilson(k, n, z=z)


@given(st.integers(1, 10**6).flatmap(lambda n: st.tuples(st.integers(0, n), st.just(n))),
       st.floats(0.1, 5))
def test_the_interval_holds_the_estimate_and_mirrors(counts: tuple[int, int], z: float) -> None:
    k, n = counts
    interval = wilson(k, n, z=z)
    assert isinstance(interval, Proportion)
    assert 0.0 <= interval.low <= k / n <= interval.high <= 1.0
    assert interval.low < interval.high  # never of width zero, even at 0/n and n/n
    mirror = wilson(n - k, n, z=z)
    assert math.isclose(mirror.low, 1 - interval.high, abs_tol=1e-12)
    assert math.isclose(mirror.high, 1 - interval.low, abs_tol=1e-12)
    # It is the set of p a score test at this z does not reject: both ends lie on its boundary.
    for p in (interval.low, interval.high):
        if 0 < p < 1:
            assert math.isclose(abs(k / n - p), z * math.sqrt(p * (1 - p) / n), rel_tol=1e-6,
                                abs_tol=1e-12)
