"""Kappa, alpha and confusion matrices, checked against published worked examples and against the
properties the coefficients are defined by."""

from __future__ import annotations

import math
from collections import Counter
from fractions import Fraction
from itertools import permutations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from intermodel.analysis.agreement import (
    Coefficient,
    Confusion,
    coders_of,
    cohen_kappa,
    confusion,
    krippendorff_alpha,
    pairwise,
    presence,
)

Table = dict[int, dict[str, str | None]]


def from_rows(**rows: str) -> Table:
    """Reliability data as printed in the literature: a row per coder, a column per unit,
    `.` where the coder gave no value."""
    columns = {coder: row.split() for coder, row in rows.items()}
    width = len(next(iter(columns.values())))
    return {unit: {coder: None if values[unit] == "." else values[unit]
                   for coder, values in columns.items()} for unit in range(width)}


def from_table(counts: list[list[int]], labels: str = "abcdefgh") -> Table:
    """Two coders' data from a contingency table (rows: coder a, columns: coder b)."""
    units: Table = {}
    for i, row in enumerate(counts):
        for j, count in enumerate(row):
            for _ in range(count):
                units[len(units)] = {"a": labels[i], "b": labels[j]}
    return units


# Krippendorff, K. (2011). Computing Krippendorff's Alpha-Reliability. Annenberg School for
# Communication, University of Pennsylvania, https://repository.upenn.edu/asc_papers/43
KRIPPENDORFF_C = from_rows(  # section C: nominal data, any number of observers, missing values
    A="1 2 3 3 2 1 4 1 2 . . .",
    B="1 2 3 3 2 2 4 1 2 5 . 3",
    C=". 3 3 3 2 3 4 2 2 5 1 .",
    D="1 2 3 3 2 4 4 1 2 5 1 .",
)
KRIPPENDORFF_A = from_rows(  # section A: binary data, two observers, no missing values
    Ben="0 1 0 0 0 0 0 0 1 0",
    Gerry="1 1 1 0 0 1 0 0 0 0",
)


def test_krippendorffs_own_example_with_four_coders_and_missing_values() -> None:
    alpha = krippendorff_alpha(KRIPPENDORFF_C)
    assert alpha.value is not None and round(alpha.value, 3) == 0.743
    # Its coincidence matrix has n = 40 pairable values in 11 units (unit 12 has one value).
    assert (alpha.units, alpha.values) == (11, 40)
    # The off-diagonal coincidences sum to 8, so D_o = 8/40; with n_c = 9, 13, 10, 5, 3 for the
    # values 1 to 5, D_e = (40² − Σ n_c²) / (40 · 39) = 1216/1560; alpha = 1 − 39 · 8 / 1216.
    assert math.isclose(alpha.observed or 0, 1 - 8 / 40)
    assert math.isclose(alpha.expected or 0, 1 - 1216 / 1560)
    assert alpha.value == pytest.approx(1 - 39 * 8 / 1216)


def test_krippendorffs_binary_example_with_two_coders() -> None:
    alpha = krippendorff_alpha(KRIPPENDORFF_A)
    assert alpha.value is not None and round(alpha.value, 3) == 0.095
    assert (alpha.units, alpha.values) == (10, 20)


def test_a_textbook_kappa_with_four_categories() -> None:
    # Altman, D. G. (1991). Practical Statistics for Medical Research, Chapman & Hall, table
    # 14.1: two radiologists grading 85 xeromammograms (normal, benign, suspected cancer,
    # cancer); also example 1 of Stata's manual entry for `kap`: agreement 63.53%, expected
    # 30.82%, kappa 0.4728.
    table = from_table([[21, 12, 0, 0], [4, 17, 1, 0], [3, 9, 15, 2], [0, 0, 0, 1]])
    kappa = cohen_kappa(table, "a", "b")
    assert (round(kappa.observed or 0, 4), round(kappa.expected or 0, 4)) == (0.6353, 0.3082)
    assert kappa.value is not None and round(kappa.value, 4) == 0.4728
    assert kappa.units == 85


@pytest.mark.parametrize(("counts", "observed", "expected", "value", "places"), [
    # Gerstman, B. B. (2013). Epidemiology Kept Simple, 3rd ed., Wiley-Blackwell, chapter 10:
    # illustrative example 10.1 (two readers of 19,790 chest X-rays: p_o 0.8943, p_e 0.7780,
    # kappa 0.524) ...
    ([[1467, 782], [1309, 16232]], 0.8943, 0.7780, 0.524, (4, 4, 3)),
    # ... and table 10.6, the "kappa paradox" of Feinstein & Cicchetti (1990): the same 85%
    # agreement gives kappa 0.70 or 0.32, depending on how common the finding is.
    ([[40, 9], [6, 45]], 0.85, 0.50, 0.70, (2, 2, 2)),
    ([[80, 10], [5, 5]], 0.85, 0.78, 0.32, (2, 2, 2)),
])
def test_textbook_kappas_of_two_by_two_tables(counts: list[list[int]], observed: float,
                                              expected: float, value: float,
                                              places: tuple[int, int, int]) -> None:
    kappa = cohen_kappa(from_table(counts), "a", "b")
    assert kappa.value is not None and kappa.observed is not None and kappa.expected is not None
    assert (round(kappa.observed, places[0]), round(kappa.expected, places[1]),
            round(kappa.value, places[2])) == (observed, expected, value)


def test_the_confusion_matrix_of_two_coders() -> None:
    table = from_table([[21, 12, 0, 0], [4, 17, 1, 0], [3, 9, 15, 2], [0, 0, 0, 1]], "nbsc")
    matrix = confusion(table, "a", "b", categories=["n", "b", "s", "c"])
    assert matrix.counts == ((21, 12, 0, 0), (4, 17, 1, 0), (3, 9, 15, 2), (0, 0, 0, 1))
    assert (matrix.units, matrix.agreed, matrix.count("s", "n")) == (85, 54, 3)
    assert matrix.kappa() == cohen_kappa(table, "a", "b")
    # The other way round it is the transpose.
    assert confusion(table, "b", "a", categories=["n", "b", "s", "c"]).counts == \
        tuple(zip(*matrix.counts, strict=True))


def test_categories_order_the_matrix_and_unseen_ones_stay() -> None:
    table = from_rows(judge="engaged mixed deflecting engaged", alice="engaged engaged "
                      "deflecting other")
    matrix = confusion(table, "judge", "alice", categories=["deflecting", "mixed", "engaged",
                                                            "never"])
    assert matrix.categories == ("deflecting", "mixed", "engaged", "never", "other")
    assert matrix.count("mixed", "engaged") == 1 and matrix.count("engaged", "other") == 1
    assert matrix.counts[3] == (0, 0, 0, 0, 0)


def test_every_pair_of_coders_judge_against_people() -> None:
    pairs = pairwise(KRIPPENDORFF_C, ["A", "B", "C", "D"])
    assert [(m.first, m.second) for m in pairs] == [("A", "B"), ("A", "C"), ("A", "D"),
                                                    ("B", "C"), ("B", "D"), ("C", "D")]
    assert [m.units for m in pairs] == [9, 8, 9, 9, 10, 10]
    # By default, coders in order of first appearance (C coded nothing in the first unit).
    assert coders_of(KRIPPENDORFF_C) == ["A", "B", "D", "C"]
    assert [(m.first, m.second) for m in pairwise(KRIPPENDORFF_C)][:3] == \
        [("A", "B"), ("A", "D"), ("A", "C")]
    assert all(isinstance(m, Confusion) for m in pairs)


def test_degenerate_data_give_a_documented_result() -> None:
    nobody_in_common = from_rows(a="x y . .", b=". . x y")
    assert cohen_kappa(nobody_in_common, "a", "b") == Coefficient(
        None, None, None, 0, 0, "no unit was coded by both coders")
    assert krippendorff_alpha(nobody_in_common) == Coefficient(
        None, None, None, 0, 0, "no unit was coded by two coders or more")
    assert krippendorff_alpha({}).reason == "no unit was coded by two coders or more"
    one_label = from_rows(a="x x x", b="x x x", c="x . x")
    undefined = ("undefined: every label given is the same, so agreement cannot be told apart "
                 "from chance (expected agreement is 1)")
    assert cohen_kappa(one_label, "a", "b") == Coefficient(None, 1.0, 1.0, 3, 6, undefined)
    assert krippendorff_alpha(one_label) == Coefficient(None, 1.0, 1.0, 3, 8, undefined)
    # One coder with one label throughout, the other not: defined (and no better than chance).
    lopsided = cohen_kappa(from_rows(a="x x x x", b="x y x x"), "a", "b")
    assert lopsided.value == 0.0


def test_multiple_choice_codings_by_set_or_label_by_label() -> None:
    sets = {1: {"a": frozenset({"warm", "curious"}), "b": frozenset({"curious", "warm"})},
            2: {"a": frozenset({"warm"}), "b": frozenset({"warm", "curious"})},
            3: {"a": frozenset({"cold"}), "b": frozenset({"cold"})},
            4: {"a": frozenset({"cold", "curious"}), "b": None}}
    assert confusion(sets, "a", "b").agreed == 2
    warm = presence(sets, "warm")
    assert warm[2] == {"a": True, "b": True} and warm[3] == {"a": False, "b": False}
    assert warm[4] == {"a": False, "b": None}
    assert krippendorff_alpha(warm).value == 1.0
    curious = presence(sets, "curious")
    assert cohen_kappa(curious, "a", "b").units == 3


# -- properties ----------------------------------------------------------------------------------

LABELS = st.sampled_from("abcd")
CODERS = ("p", "q", "r", "s")


def two_coders(missing: bool = False) -> st.SearchStrategy[Table]:
    value = st.one_of(st.none(), LABELS) if missing else LABELS
    pair = st.fixed_dictionaries({"p": value, "q": value})
    return st.lists(pair, min_size=1, max_size=40).map(lambda units: dict(enumerate(units)))


MANY = st.lists(st.fixed_dictionaries({c: st.one_of(st.none(), LABELS) for c in CODERS}),
                min_size=1, max_size=25).map(lambda units: dict(enumerate(units)))


@given(two_coders(missing=True))
def test_kappa_is_symmetric_and_bounded(table: Table) -> None:
    forward, backward = cohen_kappa(table, "p", "q"), cohen_kappa(table, "q", "p")
    assert forward == backward
    if forward.value is not None:
        assert -1.0 <= forward.value <= 1.0


@given(MANY, st.permutations(CODERS))
def test_alpha_does_not_depend_on_who_is_who(table: Table, order: list[str]) -> None:
    renamed = {unit: {order[CODERS.index(c)]: v for c, v in coded.items()}
               for unit, coded in table.items()}
    assert krippendorff_alpha(renamed) == krippendorff_alpha(table)
    shuffled = dict(reversed(list(table.items())))
    assert krippendorff_alpha(shuffled) == krippendorff_alpha(table)


@given(MANY, st.permutations("abcd"))
def test_alpha_does_not_depend_on_what_the_labels_are_called(table: Table,
                                                             names: list[str]) -> None:
    renamed = {unit: {c: None if v is None else names["abcd".index(v)] for c, v in coded.items()}
               for unit, coded in table.items()}
    assert krippendorff_alpha(renamed) == krippendorff_alpha(table)


@given(st.lists(st.tuples(LABELS, st.integers(0, 3)), min_size=1, max_size=20))
def test_perfect_agreement_is_one(units: list[tuple[str, int]]) -> None:
    # each unit coded alike by 1 to 4 coders
    table = {u: {CODERS[i]: label for i in range(width + 1)}
             for u, (label, width) in enumerate(units)}
    alpha = krippendorff_alpha(table)
    if len({label for label, width in units if width}) >= 2:
        assert alpha.value == 1.0
        assert cohen_kappa(table, "p", "q").value in (1.0, None)
    else:
        assert alpha.value is None


def scotts_pi(table: Table) -> Fraction:
    values = [v for coded in table.values() for v in coded.values()]
    n = len(table)
    observed = Fraction(sum(coded["p"] == coded["q"] for coded in table.values()), n)
    expected = sum(Fraction(c, 2 * n) ** 2 for c in Counter(values).values())
    return (observed - expected) / (1 - expected)


@given(two_coders())
def test_alpha_of_two_coders_without_missing_values_is_scotts_pi_corrected(table: Table) -> None:
    # Krippendorff (2011), section A: for two coders and no missing values,
    # alpha = 1 - (2N - 1)/(2N) * (1 - pi), N units; so alpha tends to pi as N grows.
    alpha = krippendorff_alpha(table)
    if alpha.value is None:
        return
    n = len(table)
    expected = 1 - Fraction(2 * n - 1, 2 * n) * (1 - scotts_pi(table))
    assert alpha.value == float(expected)
    assert 0 <= alpha.value - float(scotts_pi(table)) <= 1 / n + 1e-12


def pairwise_alpha(table: Table) -> float | None:
    """Alpha from its definition over pairs of values, not through the coincidence matrix:
    1 - D_o / D_e, D_o the mismatching share of ordered pairs within units (each unit's pairs
    weighted 1/(m_u - 1)), D_e the mismatching share of ordered pairs of all pairable values."""
    units = [[v for v in coded.values() if v is not None] for coded in table.values()]
    units = [values for values in units if len(values) >= 2]
    pooled = [v for values in units for v in values]
    n = len(pooled)
    within = sum(Fraction(sum(a != b for a, b in permutations(values, 2)), len(values) - 1)
                 for values in units)
    between = sum(a != b for a, b in permutations(pooled, 2))
    if not units or between == 0:
        return None
    return float(1 - (within / n) / Fraction(between, n * (n - 1)))


@given(MANY)
def test_alpha_agrees_with_its_definition_over_pairs(table: Table) -> None:
    assert krippendorff_alpha(table).value == pairwise_alpha(table)


def test_the_worked_example_agrees_with_the_definition_over_pairs_too() -> None:
    assert krippendorff_alpha(KRIPPENDORFF_C).value == pairwise_alpha(KRIPPENDORFF_C)


@given(MANY)
def test_units_with_one_value_do_not_count(table: Table) -> None:
    lonely = dict(table)
    for n in range(5):
        lonely[1000 + n] = {"p": "a"}
    assert krippendorff_alpha(lonely) == krippendorff_alpha(table)


@given(MANY, st.sets(st.sampled_from(CODERS), min_size=2))
def test_alpha_of_chosen_coders_is_alpha_of_their_data(table: Table, chosen: set[str]) -> None:
    only = {u: {c: v for c, v in coded.items() if c in chosen} for u, coded in table.items()}
    assert krippendorff_alpha(table, chosen) == krippendorff_alpha(only)
