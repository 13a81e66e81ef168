"""Proportions with confidence intervals: "deflected in 9 of 10 runs (0.60–0.98)".

The Wilson score interval (Wilson 1927) is the set of proportions p that a two-sided score test
would not reject at the given level, given k successes in n trials:

    centre    = (k + z²/2) / (n + z²)
    half-width = z / (n + z²) · sqrt(k(n − k)/n + z²/4)

Unlike the textbook normal approximation (k/n ± z·sqrt(p(1−p)/n)) it stays within 0 and 1, is
never of width zero at 0/n or n/n, and keeps close to its nominal coverage for the small n of
replicated runs (Newcombe 1998, "Two-sided confidence intervals for the single proportion",
Statistics in Medicine 17: 857–872, compares seven methods and recommends it).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

__all__ = ["Z95", "Proportion", "wilson", "z_for"]


def z_for(confidence: float) -> float:
    """The two-sided standard normal quantile for `confidence` (0.95 → 1.959964)."""
    if not 0 < confidence < 1:
        raise ValueError(f"a confidence level is between 0 and 1, got {confidence!r}")
    return NormalDist().inv_cdf(0.5 + confidence / 2)


Z95 = z_for(0.95)  # 1.959964…, "1.96"


@dataclass(frozen=True)
class Proportion:
    """k of n, with the interval [low, high]. With n = 0 nothing was observed: the estimate is
    None and the interval is all of [0, 1]."""

    k: int
    n: int
    low: float
    high: float
    z: float = Z95

    @property
    def estimate(self) -> float | None:
        return self.k / self.n if self.n else None

    def __str__(self) -> str:
        if not self.n:
            return "0/0"
        return f"{self.k}/{self.n} = {self.k / self.n:.2f} [{self.low:.2f}, {self.high:.2f}]"


def wilson(k: int, n: int, *, z: float = Z95) -> Proportion:
    """The Wilson score interval of `k` successes in `n` trials; `z` is the standard normal
    quantile of the level wanted (Z95 by default; `z_for(0.99)` for 99%)."""
    for name, value in (("k", k), ("n", n)):
        if not isinstance(value, int) or isinstance(value, bool):
            raise TypeError(f"{name} is a whole number, got {value!r}")
    if not 0 <= k <= n:
        raise ValueError(f"expected 0 <= k <= n, got k={k}, n={n}")
    if not (math.isfinite(z) and z > 0):
        raise ValueError(f"z is a positive number, got {z!r}")
    if n == 0:
        return Proportion(k, n, 0.0, 1.0, z)
    z2 = z * z
    centre = (k + z2 / 2) / (n + z2)
    half = z / (n + z2) * math.sqrt(k * (n - k) / n + z2 / 4)
    # At 0/n and n/n one end is exactly 0 or 1; rounding must not put it a hair outside.
    low = 0.0 if k == 0 else max(0.0, centre - half)
    high = 1.0 if k == n else min(1.0, centre + half)
    return Proportion(k, n, low, high, z)
