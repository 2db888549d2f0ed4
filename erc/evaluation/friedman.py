r"""Friedman rank statistics: exact p-values for pairwise rank-sum differences, ranks and the omnibus test.

Why exact: the paper compares 9 model instances over 9 test sets. With so few blocks the normal
(or chi-square) approximation to a rank-sum difference is visibly off, and Eisinga et al. (2017,
"Exact p-values for pairwise comparison of Friedman rank sums, with application to comparing
classifiers", BMC Bioinformatics 18:68) give the exact distribution instead. Their closed form is
an alternating sum of huge binomial terms that cancels catastrophically in floating point, so we
evaluate it in Python integers (exact) and only convert the final probability to ``float``.

Derivation (the one :func:`exact_pvalue` implements)
------------------------------------------------------
Null hypothesis: in each of the ``n`` blocks (test sets) every ranking of the ``k`` instances is
equally likely, independently across blocks. Take two instances ``i`` and ``j``. In one block
their ranks ``(a, b)`` are a uniformly random ordered pair of *distinct* values of ``1..k``:
``k(k-1)`` equally likely pairs. The per-block difference ``t = a - b`` is never 0, and exactly
``k - |t|`` pairs give ``t`` (for ``1 <= |t| <= k-1``). Its counting generating function is

    g(x) = sum_{t != 0} (k - |t|) x^t = x^{-(k-1)} S(x)^2 - k,    S(x) = 1 + x + ... + x^{k-1},

because ``x^{-(k-1)} S(x)^2 = sum_{|t| <= k-1} (k - |t|) x^t`` includes the ``t = 0`` term ``k``.
The rank-sum difference ``D = R_i - R_j`` adds ``n`` independent block differences, so the
number of the ``(k(k-1))^n`` equally likely outcomes with ``D = d`` is the coefficient of
``x^d`` in ``g(x)^n``. Expanding the power binomially,

    g(x)^n = sum_{h=0}^{n} C(n, h) (-k)^{n-h} x^{-h(k-1)} S(x)^{2h},

and, with ``S(x) = (1 - x^k) / (1 - x)``, the coefficients of ``S^{2h}`` (``h >= 1``) are

    [x^m] S(x)^{2h} = sum_{i >= 0, ik <= m} (-1)^i C(2h, i) C(m - ik + 2h - 1, 2h - 1).

For the upper tail we need, per ``h``, the coefficients of ``S^{2h}`` at ``m >= M`` with
``M = d + h(k-1)``. They total ``S(1)^{2h} = k^{2h}`` minus those below ``M``; summing the
inner binomial over ``m = ik .. M-1`` by the hockey-stick identity
``sum_{j=0}^{J} C(j + r, r) = C(J + r + 1, r + 1)`` gives

    #{D >= d} = sum_{h=1}^{n} C(n, h) (-k)^{n-h} [ k^{2h}
                 - sum_{i=0}^{min(2h, floor((M-1)/k))} (-1)^i C(2h, i) C(M - ik + 2h - 1, 2h) ]

for ``d >= 1`` (the ``h = 0`` term is the constant ``(-k)^n``, which only counts towards
``D >= d`` when ``d <= 0``). ``D`` is symmetric about 0, so the two-sided p-value is

    P(|D| >= d) = 2 #{D >= d} / (k(k-1))^n    for d >= 1,    and 1 for d = 0.

That is O(n^2) exact binomials, well under a second for k = n = 100. The tests check it against
brute-force enumeration of all rankings for small k, n, against direct polynomial convolution of
the block distribution, and against the check value of Eisinga's published code
(k = n = d = 100 gives 0.8085251).

Ties: the exact distribution assumes untied rankings. Tied scores get averaged ranks (standard
Friedman practice), which can make a rank-sum difference a half-integer; since ``D`` is integer
under the null, ``P(|D| >= d) = P(|D| >= ceil(d))`` and that is what we report.
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from numbers import Real
from typing import Any

import numpy as np
from scipy import stats


def _check_kn(k: int, n: int) -> None:
    if not (isinstance(k, (int, np.integer)) and isinstance(n, (int, np.integer))):
        raise TypeError(f"k and n must be integers, got k={k!r}, n={n!r}")
    if k < 2:
        raise ValueError(f"k (number of instances) must be >= 2, got {k}")
    if n < 1:
        raise ValueError(f"n (number of blocks/test sets) must be >= 1, got {n}")


@lru_cache(maxsize=4096)
def count_at_least(d: int, k: int, n: int) -> int:
    """Number of the ``(k(k-1))^n`` equally likely outcomes with rank-sum difference ``D >= d``.

    One-sided and exact (Python integers); ``d`` must be an integer >= 1. See the module docstring
    for the derivation of the closed form. Cached: a table's comparisons and the critical-difference
    search often ask for the same (d, k, n).
    """
    _check_kn(k, n)
    if d < 1:
        raise ValueError(f"count_at_least needs d >= 1, got {d}")
    if d > n * (k - 1):
        return 0
    total = 0
    for h in range(1, n + 1):
        m = d + h * (k - 1)  # coefficients of S^{2h} at exponents >= m count towards D >= d
        below = 0
        for i in range(0, min(2 * h, (m - 1) // k) + 1):
            term = math.comb(2 * h, i) * math.comb(m - i * k + 2 * h - 1, 2 * h)
            below += -term if i % 2 else term
        total += math.comb(n, h) * (-k) ** (n - h) * (k ** (2 * h) - below)
    return total


def exact_pvalue_fraction(d: Real, k: int, n: int) -> Fraction:
    """Two-sided exact p-value ``P(|D| >= |d|)`` as an exact :class:`~fractions.Fraction`.

    ``D`` is the difference of two instances' Friedman rank sums with ``k`` instances ranked in
    ``n`` blocks. A non-integer ``d`` (from averaged tied ranks) is rounded up, which is exact
    because ``D`` only takes integer values under the null. Use this where the p-value is
    multiplied (Bonferroni) or truncated for display, so that no float error can flip a digit.
    """
    _check_kn(k, n)
    d_abs = abs(Fraction(d))
    if d_abs == 0:
        return Fraction(1)
    d_int = math.ceil(d_abs)
    return Fraction(2 * count_at_least(d_int, k, n), (k * (k - 1)) ** n)


def exact_pvalue(d: Real, k: int, n: int) -> float:
    """Two-sided exact p-value ``P(|D| >= |d|)`` for a difference ``d`` of two Friedman rank sums.

    Eisinga et al. (2017): ``k`` instances (classifiers) are ranked within each of ``n`` blocks
    (data sets); ``d`` is the observed difference of two instances' rank sums. Computed exactly in
    integer arithmetic (see the module docstring), returned as a float.

    >>> round(exact_pvalue(100, 100, 100), 7)
    0.8085251
    """
    return float(exact_pvalue_fraction(d, k, n))


def bonferroni(p: Fraction, m: int) -> Fraction:
    """Bonferroni-adjusted p-value for ``m`` comparisons: ``min(1, m p)``, kept exact."""
    if m < 1:
        raise ValueError(f"number of comparisons must be >= 1, got {m}")
    return min(Fraction(1), p * m)


def rank_rows(scores: np.ndarray) -> np.ndarray:
    """Rank each row of a (blocks x instances) score matrix: 1 = highest score, ties averaged."""
    scores = np.asarray(scores, dtype=float)
    if np.isnan(scores).any():
        raise ValueError("cannot rank a score matrix with missing values")
    return np.vstack([stats.rankdata(-row, method="average") for row in scores])


def omnibus(scores: np.ndarray) -> dict[str, Any]:
    """Friedman's chi-square test over all instances and its Iman-Davenport F refinement.

    ``scores`` is (n blocks x k instances). The chi-square comes from scipy (with its tie
    correction); Iman & Davenport's ``F = (n-1) chi2 / (n(k-1) - chi2)`` with ``(k-1, (k-1)(n-1))``
    degrees of freedom is less conservative than chi-square for few blocks.

    Two designs are degenerate, and ``degenerate`` then says why (it is None otherwise):

    - every block ranks the instances identically: chi-square is at its maximum ``n(k-1)``, so F
      divides by zero. In floating point the denominator comes out as rounding noise and F as a
      huge finite number (1.9e15 for k = n = 6), which would read as a measurement; F is reported
      as infinite and its p-value as the limit 0 instead.
    - every block ties all instances: there is no ranking information, chi-square is 0/0 and both
      statistics and p-values are undefined (NaN).
    """
    scores = np.asarray(scores, dtype=float)
    n, k = scores.shape
    if k < 3:
        raise ValueError(f"Friedman's omnibus test needs at least 3 instances, got {k}")
    if n < 2:
        raise ValueError(f"Friedman's omnibus test needs at least 2 test sets, got {n}")
    df1, df2 = k - 1, (k - 1) * (n - 1)
    result: dict[str, Any] = {"k": int(k), "n": int(n), "chi2_df": int(df1), "f_df1": int(df1), "f_df2": int(df2)}
    if (scores == scores[:, :1]).all():
        return {**result, "chi2": math.nan, "chi2_p": math.nan, "iman_davenport_f": math.nan, "f_p": math.nan,
                "degenerate": "every test set ties all instances: no ranking information, so Friedman's "
                              "chi-square (0/0) and the Iman-Davenport F are undefined"}
    chi2, p_chi2 = stats.friedmanchisquare(*scores.T)
    maximum = n * (k - 1)
    if chi2 >= maximum * (1 - 1e-9):  # identical rankings in every block, up to float rounding
        return {**result, "chi2": float(maximum), "chi2_p": float(stats.chi2.sf(maximum, df1)),
                "iman_davenport_f": math.inf, "f_p": 0.0,
                "degenerate": f"every test set ranks the instances identically, so Friedman's chi-square is at "
                              f"its maximum n(k-1) = {maximum} and the Iman-Davenport F is infinite (its "
                              "denominator n(k-1) - chi-square is 0; its p-value is the limit 0)"}
    f_value = (n - 1) * chi2 / (maximum - chi2)
    return {**result, "chi2": float(chi2), "chi2_p": float(p_chi2), "iman_davenport_f": float(f_value),
            "f_p": float(stats.f.sf(f_value, df1, df2)), "degenerate": None}
