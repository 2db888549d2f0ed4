"""The exact rank-sum difference test against brute force, an independent convolution and Eisinga's check value."""

from __future__ import annotations

import itertools
import math
from collections import Counter
from fractions import Fraction

import numpy as np
import pytest
from scipy import stats

from erc.evaluation.friedman import bonferroni, count_at_least, exact_pvalue, exact_pvalue_fraction, omnibus, rank_rows


def brute_force_tail(k: int, n: int) -> tuple[Counter, int]:
    """Distribution of D = R_1 - R_2 by enumerating every ranking of k instances in each of n blocks."""
    per_block = [perm[0] - perm[1] for perm in itertools.permutations(range(1, k + 1))]
    counts = Counter(sum(choice) for choice in itertools.product(per_block, repeat=n))
    return counts, math.factorial(k) ** n


def convolution_counts(k: int, n: int) -> dict[int, int]:
    """Counts of D over the (k(k-1))^n ordered rank pairs by repeated polynomial multiplication (exact ints)."""
    block = {t: k - abs(t) for t in range(-(k - 1), k) if t != 0}
    dist = {0: 1}
    for _ in range(n):
        nxt: dict[int, int] = {}
        for s, c in dist.items():
            for t, w in block.items():
                nxt[s + t] = nxt.get(s + t, 0) + c * w
        dist = nxt
    return dist


def test_eisinga_check_value():
    # The check value printed by Eisinga et al.'s published code: k = n = d = 100.
    assert round(exact_pvalue(100, 100, 100), 7) == 0.8085251


@pytest.mark.parametrize("k,n", [(2, 3), (3, 2), (3, 3), (3, 4), (4, 2), (4, 3), (5, 2)])
def test_matches_brute_force_enumeration_of_all_rankings(k, n):
    counts, total = brute_force_tail(k, n)
    for d in range(0, n * (k - 1) + 2):
        expected = Fraction(sum(c for diff, c in counts.items() if abs(diff) >= d), total)
        assert exact_pvalue_fraction(d, k, n) == expected, (k, n, d)
        if d >= 1:
            one_sided = Fraction(sum(c for diff, c in counts.items() if diff >= d), total)
            assert Fraction(count_at_least(d, k, n), (k * (k - 1)) ** n) == one_sided


@pytest.mark.parametrize("k,n", [(9, 9), (20, 15), (6, 30)])
def test_matches_exact_convolution_of_the_block_distribution(k, n):
    dist = convolution_counts(k, n)
    total = (k * (k - 1)) ** n
    assert sum(dist.values()) == total
    for d in range(1, n * (k - 1) + 1, max(1, n * (k - 1) // 40)):
        tail = sum(c for diff, c in dist.items() if abs(diff) >= d)
        assert exact_pvalue_fraction(d, k, n) == Fraction(tail, total), (k, n, d)


def test_the_closed_form_in_floating_point_breaks_down_where_the_exact_one_does_not():
    # Why integers: the same alternating sum evaluated in floats cancels catastrophically.
    k, n, d = 50, 50, 300
    total = 0.0
    for h in range(1, n + 1):
        m = d + h * (k - 1)
        below = sum((-1) ** i * float(math.comb(2 * h, i)) * float(math.comb(m - i * k + 2 * h - 1, 2 * h))
                    for i in range(0, min(2 * h, (m - 1) // k) + 1))
        total += float(math.comb(n, h)) * float(-k) ** (n - h) * (float(k) ** (2 * h) - below)
    floating = 2 * total / float(k * (k - 1)) ** n
    assert not 0 <= floating <= 1, "float evaluation unexpectedly gave a probability"
    exact = exact_pvalue(d, k, n)
    z = (d - 0.5) / math.sqrt(n * k * (k + 1) / 6)
    assert exact == pytest.approx(2 * stats.norm.sf(z), abs=2e-3)


def test_properties_of_the_p_value():
    k, n = 9, 9
    ps = [exact_pvalue_fraction(d, k, n) for d in range(0, n * (k - 1) + 1)]
    assert ps[0] == 1
    assert all(a >= b for a, b in itertools.pairwise(ps)), "p must not increase with d"
    assert ps[-1] == Fraction(2, (k * (k - 1)) ** n), "only the two extreme outcomes reach d = n(k-1)"
    assert exact_pvalue_fraction(n * (k - 1) + 1, k, n) == 0
    assert exact_pvalue_fraction(-39, k, n) == exact_pvalue_fraction(39, k, n), "two-sided"
    # averaged tied ranks: D is integer under the null, so P(|D| >= 38.5) = P(|D| >= 39)
    assert exact_pvalue_fraction(Fraction(77, 2), k, n) == exact_pvalue_fraction(39, k, n)
    assert exact_pvalue_fraction(38.5, k, n) == exact_pvalue_fraction(39, k, n)


def test_normal_approximation_agrees_for_many_blocks_but_not_exactly():
    # Var(D) = n k (k+1) / 6; for large n the exact tail approaches the continuity-corrected normal tail.
    k, n, d = 5, 200, 60
    z = (d - 0.5) / math.sqrt(n * k * (k + 1) / 6)
    assert exact_pvalue(d, k, n) == pytest.approx(2 * stats.norm.sf(z), abs=2e-3)
    assert exact_pvalue(d, k, n) != 2 * stats.norm.sf(z)


@pytest.mark.parametrize("k,n", [(1, 5), (5, 0)])
def test_rejects_impossible_designs(k, n):
    with pytest.raises(ValueError, match="must be"):
        exact_pvalue(1, k, n)
    with pytest.raises(ValueError, match="must be"):
        exact_pvalue(0, k, n)              # a zero difference too, though its p would be 1
    with pytest.raises(ValueError, match="must be"):
        count_at_least(1, k, n)


def test_bonferroni_multiplies_and_caps_at_one():
    assert bonferroni(Fraction(1, 100), 6) == Fraction(6, 100)
    assert bonferroni(Fraction(1, 4), 6) == 1
    with pytest.raises(ValueError):
        bonferroni(Fraction(1, 4), 0)


def test_ranks_one_is_best_and_ties_are_averaged():
    ranks = rank_rows(np.array([[0.5, 0.7, 0.6, 0.1], [0.3, 0.3, 0.9, 0.3]]))
    assert ranks.tolist() == [[3, 1, 2, 4], [3, 3, 1, 3]]
    assert rank_rows([[0.5, 0.7], [1, 0]]).tolist() == [[2, 1], [1, 2]]      # a plain nested list, ints too
    with pytest.raises(ValueError, match="missing"):
        rank_rows(np.array([[0.5, np.nan]]))


def test_omnibus_matches_the_textbook_formulas_without_ties():
    rng = np.random.default_rng(0)
    scores = rng.random((7, 5))
    n, k = scores.shape
    rank_sums = rank_rows(scores).sum(axis=0)
    chi2 = 12 / (n * k * (k + 1)) * float((rank_sums ** 2).sum()) - 3 * n * (k + 1)
    result = omnibus(scores)
    assert result["chi2"] == pytest.approx(chi2)
    assert result["chi2_p"] == pytest.approx(stats.chi2.sf(chi2, k - 1))
    f = (n - 1) * chi2 / (n * (k - 1) - chi2)
    assert result["iman_davenport_f"] == pytest.approx(f)
    assert result["f_p"] == pytest.approx(stats.f.sf(f, k - 1, (k - 1) * (n - 1)))
    assert (result["f_df1"], result["f_df2"]) == (k - 1, (k - 1) * (n - 1))


@pytest.mark.parametrize("row", [[0.9, 0.8, 0.7, 0.6], [0.9, 0.8, 0.8, 0.6, 0.5, 0.4]])  # with a tie too
def test_omnibus_with_identical_rankings_everywhere_is_degenerate_not_a_huge_number(row):
    scores = np.tile(np.array(row), (5, 1))
    n, k = scores.shape
    result = omnibus(scores)
    assert result["chi2"] == n * (k - 1), "chi-square at its maximum, exactly"
    assert math.isinf(result["iman_davenport_f"]) and result["f_p"] == 0.0
    assert f"maximum n(k-1) = {n * (k - 1)}" in result["degenerate"]


def test_omnibus_with_every_block_all_tied_is_undefined(recwarn):
    result = omnibus(np.full((4, 5), 0.5))
    assert all(math.isnan(result[key]) for key in ("chi2", "chi2_p", "iman_davenport_f", "f_p"))
    assert "no ranking information" in result["degenerate"]
    assert not [w for w in recwarn if issubclass(w.category, RuntimeWarning)], "no 0/0 reaches scipy"


def test_omnibus_of_an_ordinary_design_is_not_degenerate():
    assert omnibus(np.random.default_rng(1).random((6, 4)))["degenerate"] is None


@pytest.mark.parametrize("k,n,m", [(3, 4, 2), (9, 9, 6), (4, 6, 3)])
def test_the_critical_difference_is_the_smallest_significant_rank_sum_difference(k, n, m) -> None:
    from erc.evaluation.analysis import critical_difference

    cd = critical_difference(k, n, m, 0.05)
    assert bonferroni(exact_pvalue_fraction(cd, k, n), m) <= Fraction(0.05)
    assert bonferroni(exact_pvalue_fraction(cd - 1, k, n), m) > Fraction(0.05)


def test_the_critical_difference_is_met_by_a_p_exactly_at_alpha() -> None:
    """The same rule as a comparison's (p <= alpha): k = 2 instances over n = 3 test sets, D is a sum of three +-1,
    so P(|D| >= 2) = P(|D| = 3) = 2/8; at alpha = 0.25 a difference of 2 is already significant."""
    from erc.evaluation.analysis import critical_difference

    assert exact_pvalue_fraction(2, 2, 3) == Fraction(1, 4) and exact_pvalue_fraction(1, 2, 3) == 1
    assert critical_difference(2, 3, 1, 0.25) == 2


@pytest.mark.parametrize("k,n,m,alpha", [(2, 2, 1, 0.5), (2, 3, 1, 0.25), (3, 2, 1, 0.05), (3, 4, 2, 0.05),
                                          (5, 3, 3, 0.1), (9, 9, 6, 0.05), (4, 1, 1, 0.5)])
def test_the_critical_difference_is_what_scanning_every_difference_finds(k, n, m, alpha) -> None:
    """The binary search agrees with a plain scan of d = 1 .. n(k-1), and ends (a search that stops narrowing
    would hang the suite), at designs whose answer is 1 (k = 2, n = 2: P(|D| >= 1) = 1/2 = alpha), a p exactly at
    alpha, an inner difference, or none at all."""
    from erc.evaluation.analysis import critical_difference

    from helpers.deadline import deadline

    significant = [d for d in range(1, n * (k - 1) + 1) if bonferroni(exact_pvalue_fraction(d, k, n), m)
                   <= Fraction(alpha)]
    with deadline(10, "the critical-difference search"):
        assert critical_difference(k, n, m, alpha) == (significant[0] if significant else None)


def test_a_comparison_whose_adjusted_p_equals_alpha_is_significant() -> None:
    """p <= alpha: two instances over three test sets give dyadic p-values, so alpha can be exactly one of them."""
    import pandas as pd

    from erc.evaluation.analysis import rank_analysis

    matrix = pd.DataFrame({"a_org": [0.1, 0.2, 0.3], "a_bal": [0.2, 0.3, 0.4]}, index=["x_org", "x_nat", "x_bal"])
    p_adj = bonferroni(exact_pvalue_fraction(3, 2, 3), 1)
    (row,) = rank_analysis(matrix, [("a_bal", "a_org")], alpha=float(p_adj)).comparisons.itertuples()
    assert Fraction(row.p_adj) == p_adj and row.significant


@pytest.mark.parametrize("m,expected", [(1, Fraction(1, 18)), (2, Fraction(1, 9))])
def test_the_best_adjusted_p_a_design_allows_is_that_of_the_largest_rank_sum_difference(m, expected) -> None:
    """k = 3 instances on n = 2 test sets: the largest difference, n(k-1) = 4, needs rank 1 against rank 3 in both
    (1 of the 6 ordered pairs each time), so P(|D| >= 4) = 2/36; times m after Bonferroni. Above alpha = 0.05, no
    comparison can be significant and there is no critical difference, even with a single comparison."""
    import pandas as pd

    from erc.evaluation.analysis import rank_analysis

    matrix = pd.DataFrame({"a_org": [0.1, 0.2], "a_nat": [0.3, 0.1], "a_bal": [0.2, 0.3]}, index=["x_org", "x_bal"])
    pairs = [("a_nat", "a_org"), ("a_bal", "a_org")][:m]
    analysis = rank_analysis(matrix, pairs)
    assert analysis.smallest_adjusted_p() == expected and analysis.critical_difference is None


@pytest.mark.parametrize("k,n", [(5, 2.0), (2.0, 5)])
def test_rejects_a_design_size_that_is_not_an_integer(k, n):
    with pytest.raises(TypeError, match="k and n must be integers"):
        exact_pvalue(1, k, n)


def test_the_smallest_designs_are_computed():
    """Two instances, or one test set, are designs too: with k = 2 and n = 1, D is +-1, so P(|D| >= 1) = 1; with
    k = 3 and n = 1, |D| = 2 only for ranks (1, 3) or (3, 1), 2 of the 6 ordered pairs."""
    assert exact_pvalue_fraction(1, 2, 1) == 1
    assert exact_pvalue_fraction(2, 3, 1) == Fraction(1, 3) and exact_pvalue_fraction(1, 3, 1) == 1


def test_the_one_sided_count_needs_a_positive_difference():
    """D >= 0 includes the D = 0 outcomes the closed form leaves out: refused rather than miscounted."""
    with pytest.raises(ValueError, match="count_at_least needs d >= 1, got 0"):
        count_at_least(0, 3, 2)


@pytest.mark.parametrize("shape,message", [((4, 2), "needs at least 3 instances, got 2"),
                                           ((1, 3), "needs at least 2 test sets, got 1")])
def test_the_omnibus_test_refuses_designs_too_small_for_it(shape, message):
    scores = np.arange(shape[0] * shape[1], dtype=float).reshape(shape)
    with pytest.raises(ValueError, match=message):
        omnibus(scores)


def test_bonferroni_needs_at_least_one_comparison():
    with pytest.raises(ValueError, match="number of comparisons must be >= 1, got 0"):
        bonferroni(Fraction(1, 2), 0)


def test_the_omnibus_test_takes_a_plain_nested_list():
    rows = [[0.1, 0.3, 0.2], [0.2, 0.1, 0.3], [0.3, 0.2, 0.1], [0.1, 0.2, 0.3]]
    assert omnibus(rows) == omnibus(np.array(rows))


@pytest.mark.parametrize("rows,not_computed", [
    ([[0.1, 0.3, 0.2], [0.2, 0.1, 0.3]], None),           # k = 3, n = 2: the smallest design the test takes
    ([[0.1, 0.3, 0.2]], "Friedman's omnibus test needs at least 2 test sets (n = 1)"),
    ([[0.1, 0.3], [0.2, 0.1]], "Friedman's omnibus test needs at least 3 instances (k = 2)"),
])
def test_the_analysis_runs_the_omnibus_test_on_every_design_large_enough(rows, not_computed) -> None:
    """Table IV's omnibus line: computed (scipy's Friedman chi-square) from k = 3 instances on n = 2 test sets
    up, otherwise named for the axis that is too small."""
    import pandas as pd

    from erc.evaluation.analysis import rank_analysis

    columns = ["a_org", "a_nat", "a_bal"][:len(rows[0])]
    analysis = rank_analysis(pd.DataFrame(rows, columns=columns, index=[f"x_{s}" for s in "abc"][:len(rows)]), [])
    assert analysis.omnibus.get("not_computed") == not_computed
    if not_computed is None:
        expected = stats.friedmanchisquare(*np.array(rows).T)
        assert analysis.omnibus["chi2"] == pytest.approx(expected.statistic)
        assert analysis.omnibus["chi2_p"] == pytest.approx(expected.pvalue)


def test_an_unknown_comparison_mode_is_refused_naming_the_key() -> None:
    from erc.data import DataError
    from erc.evaluation.analysis import comparison_pairs

    assert comparison_pairs(["a_org", "a_bal", "b_bal"]) == [("a_bal", "a_org")]
    with pytest.raises(DataError, match=r"comparisons\.mode must be 'control' or 'all', got 'pairs'"):
        comparison_pairs(["a_org", "a_bal"], mode="pairs")


def test_a_single_instance_is_refused_naming_it() -> None:
    import pandas as pd

    from erc.data import DataError
    from erc.evaluation.analysis import rank_analysis

    with pytest.raises(DataError, match=r"need at least 2 model instances to rank, got 1: \['a_org'\]"):
        rank_analysis(pd.DataFrame({"a_org": [0.5, 0.6]}, index=["x_org", "x_bal"]), [])


def test_a_design_one_swap_short_of_identical_rankings_has_a_finite_f() -> None:
    """20 instances ranked alike on 20 test sets but for one adjacent swap: chi-square is 0.014 % below its maximum
    n(k-1), a real (if extreme) result, so F is the Iman-Davenport formula's finite value, not the degenerate
    infinity."""
    scores = np.tile(np.arange(20, 0, -1.0), (20, 1))
    scores[0, [0, 1]] = scores[0, [1, 0]]
    chi2 = stats.friedmanchisquare(*scores.T)[0]
    result = omnibus(scores)
    assert result["degenerate"] is None and result["chi2"] == pytest.approx(chi2, rel=1e-9)
    assert result["iman_davenport_f"] == pytest.approx(19 * chi2 / (20 * 19 - chi2), rel=1e-6)


def test_ties_are_listed_per_test_set_in_table_order() -> None:
    """The instances sharing a rank are named as the table orders its columns (not alphabetically), with the rank
    they share."""
    import pandas as pd

    from erc.evaluation.analysis import rank_analysis

    matrix = pd.DataFrame({"b_org": [0.5, 0.7], "a_org": [0.5, 0.6], "a_bal": [0.4, 0.6]}, index=["x_org", "x_bal"])
    assert rank_analysis(matrix, []).ties == [{"test_set": "x_org", "instances": ["b_org", "a_org"], "rank": 1.5},
                                             {"test_set": "x_bal", "instances": ["a_org", "a_bal"], "rank": 2.5}]
