"""How far coders agree on nominal labels: Cohen's kappa, Krippendorff's alpha, confusion matrices.

The data are codings: for each unit (a run, a turn, an answer), each coder's value, a label, or
None (or no entry) where that coder gave none. Values are compared for equality only (nominal
data). A multiple-choice coding can be compared as a whole set (pass a frozenset: two coders
agree only on the same set), or one label at a time with `presence`, which turns every coding into
"has this label" true or false.

- `cohen_kappa(codings, a, b)`: κ = (p_o − p_e) / (1 − p_e) over the units both coders coded,
  where p_o is the share of those units they agree on and p_e = Σ_c p_a(c)·p_b(c) the agreement
  expected if each coder labelled at random with their own label frequencies (Cohen 1960).
- `krippendorff_alpha(codings)`: α = 1 − D_o / D_e for nominal data, two or more coders, any
  values missing (Krippendorff 2011, "Computing Krippendorff's Alpha-Reliability"). From the
  coincidence matrix o_ck = Σ_u (pairs of values c, k in unit u) / (m_u − 1), over the units
  with m_u ≥ 2 values, with n_c = Σ_k o_ck and n = Σ_c n_c:
  α = 1 − (n − 1) · Σ_{c≠k} o_ck / Σ_{c≠k} n_c·n_k. Units with fewer than two values are not
  pairable and do not count.
- `confusion(codings, a, b)`: how often coder a's label c met coder b's label k, over the units
  both coded; `pairwise` gives it for every pair of coders (a judge against each person, say).

Every figure is computed with exact fractions, then rounded once to a float, so the same data give
the same result whatever the order of units or coders.

When a coefficient cannot be computed its `value` is None and `reason` says why, never a division
by zero:
- no unit was coded by both coders (kappa), or by two coders or more (alpha);
- every value in the data is one and the same label. Agreement is then perfect, but so is the
  agreement chance alone would give (p_e = 1, D_e = 0): the data hold no variation to tell
  reliability from luck, and the coefficient is 0/0. Report the raw agreement instead, and code
  units that differ.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Hashable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from fractions import Fraction
from itertools import combinations
from typing import TypeVar

__all__ = [
    "Codings",
    "Coefficient",
    "Confusion",
    "coders_of",
    "cohen_kappa",
    "confusion",
    "krippendorff_alpha",
    "pairwise",
    "presence",
]

U = TypeVar("U", bound=Hashable)  # a unit
C = TypeVar("C", bound=Hashable)  # a coder
V = TypeVar("V", bound=Hashable)  # a value (a label)

Codings = Mapping[U, Mapping[C, V | None]]

NO_PAIRS_KAPPA = "no unit was coded by both coders"
NO_PAIRS_ALPHA = "no unit was coded by two coders or more"
ONE_VALUE = ("undefined: every label given is the same, so agreement cannot be told apart from "
             "chance (expected agreement is 1)")


@dataclass(frozen=True)
class Coefficient:
    """An agreement coefficient. `observed` and `expected` are the agreement seen and the
    agreement chance alone would give (for alpha, 1 − D_o and 1 − D_e), so that
    value = (observed − expected) / (1 − expected) for both. `units` is how many units entered,
    `values` how many codings in them."""

    value: float | None
    observed: float | None
    expected: float | None
    units: int
    values: int
    reason: str = ""  # why `value` is None


@dataclass(frozen=True)
class Confusion:
    """Coder `first`'s labels (rows) against coder `second`'s (columns), over the units both
    coded. `categories` lists the labels in the order of the rows and columns."""

    first: Hashable
    second: Hashable
    categories: tuple[Hashable, ...]
    counts: tuple[tuple[int, ...], ...]

    @property
    def units(self) -> int:
        return sum(map(sum, self.counts))

    @property
    def agreed(self) -> int:
        return sum(self.counts[i][i] for i in range(len(self.categories)))

    def count(self, first_label: Hashable, second_label: Hashable) -> int:
        return self.counts[self.categories.index(first_label)][
            self.categories.index(second_label)]

    def kappa(self) -> Coefficient:
        """Cohen's kappa of this table."""
        total = self.units
        if total == 0:
            return Coefficient(None, None, None, 0, 0, NO_PAIRS_KAPPA)
        rows = [sum(row) for row in self.counts]
        columns = [sum(column) for column in zip(*self.counts, strict=True)]
        observed = Fraction(self.agreed, total)
        expected = Fraction(sum(r * c for r, c in zip(rows, columns, strict=True)), total * total)
        if expected == 1:
            return Coefficient(None, 1.0, 1.0, total, 2 * total, ONE_VALUE)
        value = (observed - expected) / (1 - expected)
        return Coefficient(float(value), float(observed), float(expected), total, 2 * total)


def coders_of(codings: Codings[U, C, V]) -> list[C]:
    """Every coder who coded at least one unit, in order of first appearance."""
    seen: dict[C, None] = {}
    for coded in codings.values():
        for coder, value in coded.items():
            if value is not None:
                seen.setdefault(coder)
    return list(seen)


def confusion(codings: Codings[U, C, V], first: C, second: C,
              categories: Sequence[V] | None = None) -> Confusion:
    """The confusion matrix of two coders. `categories` orders the rows and columns (a scheme's
    labels, say); labels found in the data but not in it follow, in order of appearance."""
    pairs = [(coded[first], coded[second]) for coded in codings.values()
             if coded.get(first) is not None and coded.get(second) is not None]
    order: dict[Hashable, int] = {}
    for label in (*(categories or ()), *(v for pair in pairs for v in pair)):
        order.setdefault(label, len(order))
    counts = [[0] * len(order) for _ in order]
    for a, b in pairs:
        counts[order[a]][order[b]] += 1
    return Confusion(first, second, tuple(order), tuple(tuple(row) for row in counts))


def cohen_kappa(codings: Codings[U, C, V], first: C, second: C) -> Coefficient:
    """Cohen's kappa of two coders over the units both coded."""
    return confusion(codings, first, second).kappa()


def pairwise(codings: Codings[U, C, V], coders: Sequence[C] | None = None,
             categories: Sequence[V] | None = None) -> list[Confusion]:
    """The confusion matrix of every pair of `coders` (by default every coder in the data), in
    the order they are given or first appear."""
    chosen = list(coders) if coders is not None else coders_of(codings)
    return [confusion(codings, a, b, categories) for a, b in combinations(chosen, 2)]


def krippendorff_alpha(codings: Codings[U, C, V],
                       coders: Iterable[C] | None = None) -> Coefficient:
    """Krippendorff's alpha for nominal data, over `coders` (by default all), missing values
    allowed."""
    chosen = None if coders is None else set(coders)
    totals: Counter[Hashable] = Counter()  # n_c
    agreeing = Fraction(0)  # Σ_c o_cc
    units = 0
    for coded in codings.values():
        values = Counter(value for coder, value in coded.items()
                         if value is not None and (chosen is None or coder in chosen))
        m = sum(values.values())
        if m < 2:
            continue  # a unit with one value has nothing to agree with
        units += 1
        totals.update(values)
        agreeing += Fraction(sum(count * (count - 1) for count in values.values()), m - 1)
    n = sum(totals.values())
    if units == 0:
        return Coefficient(None, None, None, 0, 0, NO_PAIRS_ALPHA)
    if len(totals) == 1:
        return Coefficient(None, 1.0, 1.0, units, n, ONE_VALUE)
    disagreeing = n - agreeing  # Σ_{c≠k} o_ck
    expected_pairs = n * n - sum(count * count for count in totals.values())  # Σ_{c≠k} n_c n_k
    observed = 1 - disagreeing / n  # 1 − D_o
    expected = 1 - Fraction(expected_pairs, n * (n - 1))  # 1 − D_e
    value = 1 - (n - 1) * disagreeing / expected_pairs
    return Coefficient(float(value), float(observed), float(expected), units, n)


def presence(codings: Mapping[U, Mapping[C, Iterable[V] | None]],
             label: V) -> dict[U, dict[C, bool | None]]:
    """Multiple-choice codings as "has `label`": true or false for each coding, None kept for
    a missing one. Agreement on each label of a multiple-choice scheme is agreement on these."""
    return {unit: {coder: None if labels is None else label in set(labels)
                   for coder, labels in coded.items()}
            for unit, coded in codings.items()}
