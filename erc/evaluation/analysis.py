"""From the long score table to the numbers of the paper's Table III and Table IV.

Table IV ranks *model instances* (a model and its pretraining source, e.g. ``compm_bal``) within
each *test set* (``meld_org``, ``meld_nat``, ...), sums the ranks, and compares each synthetic-
pretrained instance with its own Org instance by the exact test of :mod:`erc.evaluation.friedman`.
With several seeds, a cell is the mean W-F1 over its seeds (the ranking needs one number per cell).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import Any

import numpy as np
import pandas as pd

from erc.data import SOURCES, DataError
from erc.evaluation import friedman
from erc.evaluation.collect import add_models, order_classifiers, order_test_sets

AGGREGATION = "mean W-F1 over seeds per (classifier, source, test set)"
TIES_HANDLING = ("tied scores get the average of the ranks they span; exact p-values use the untied "
                 "null distribution with P(|D| >= d) = P(|D| >= ceil(d)), since D is integer-valued")


class IncompleteResultsError(DataError):
    """A job, instance, control, test set or cell of the design is missing (see
    :mod:`erc.evaluation.completeness`); the message lists each. The Friedman test needs every instance
    scored on every test set."""


def instance_name(model: str, source: str) -> str:
    return f"{model}_{source}"


def cell_stats(table: pd.DataFrame) -> pd.DataFrame:
    """Mean, sample standard deviation (NaN for one seed) and seed count per (model, source, test set)."""
    table = add_models(table)
    grouped = table.groupby(["model", "source", "test_set"], sort=False)["wf1"]
    stats = grouped.agg(mean="mean", std="std", n="count")  # NaN-skipping; std is the sample std (ddof=1)
    return stats.reset_index()


def instances_in_order(table: pd.DataFrame) -> list[tuple[str, str]]:
    """(model, source) pairs: models in the paper's order, sources org, nat, bal within each model."""
    table = add_models(table)
    models = order_classifiers(table["model"])
    present = set(zip(table["model"], table["source"], strict=True))
    return [(m, s) for m in models for s in SOURCES if (m, s) in present]


def score_matrix(table: pd.DataFrame) -> pd.DataFrame:
    """Test sets x instances of mean W-F1 (fractions); NaN where no run reported a value."""
    stats = cell_stats(table)
    instances = instances_in_order(table)
    test_sets = order_test_sets(table["test_set"])
    matrix = pd.DataFrame(np.nan, index=pd.Index(test_sets, name="test_set"),
                          columns=[instance_name(m, s) for m, s in instances])
    for row in stats.itertuples(index=False):
        if not math.isnan(row.mean):
            matrix.loc[row.test_set, instance_name(row.model, row.source)] = row.mean
    return matrix


def missing_cells(matrix: pd.DataFrame) -> list[tuple[str, str, str]]:
    """(model, source, test set) of every empty cell, in table order."""
    gaps = []
    for column in matrix.columns:
        model, _, source = column.rpartition("_")
        for test_set in matrix.index[matrix[column].isna()]:
            gaps.append((model, source, test_set))
    return gaps


def comparison_pairs(columns: list[str], mode: str = "control", control: str = "org") -> list[tuple[str, str]]:
    """The (instance, control) pairs to test.

    ``control`` mode (the paper's): each instance of another source against the same model's
    ``control``-source instance; a model without that instance is not compared. ``all`` mode:
    every pair of instances (the earlier column is the control), e.g. for a full CD diagram.
    """
    if mode == "all":
        return [(b, a) for i, a in enumerate(columns) for b in columns[i + 1:]]
    if mode != "control":
        raise DataError(f"comparisons.mode must be 'control' or 'all', got {mode!r}")
    pairs = []
    for column in columns:
        model, _, source = column.rpartition("_")
        reference = instance_name(model, control)
        if source != control and reference in columns:
            pairs.append((column, reference))
    return pairs


@dataclass
class RankAnalysis:
    """Everything Table IV, friedman.json and the rank plots show."""

    scores: pd.DataFrame          # test sets x instances, mean W-F1 (fractions)
    ranks: pd.DataFrame           # same shape, 1 = best, ties averaged
    rank_sums: pd.Series          # per instance
    comparisons: pd.DataFrame     # instance, control, rank_sum, control_rank_sum, diff, p_raw, p_adj, significant
    p_exact: list[tuple[Fraction, Fraction]]  # (raw, adjusted) per comparison, exact, for display truncation
    omnibus: dict[str, Any]
    ties: list[dict[str, Any]]
    alpha: float
    critical_difference: int | None  # smallest significant |rank-sum difference| after Bonferroni

    @property
    def k(self) -> int:
        return self.scores.shape[1]

    @property
    def n(self) -> int:
        return self.scores.shape[0]

    @property
    def m(self) -> int:
        """The number of comparisons made: the Bonferroni factor."""
        return len(self.comparisons)

    def smallest_adjusted_p(self) -> Fraction | None:
        """The adjusted p of the largest possible rank-sum difference, n(k-1): no comparison can do better,
        so when it exceeds alpha (few test sets, many comparisons) no result can be significant."""
        if self.m < 1:
            return None
        return friedman.bonferroni(friedman.exact_pvalue_fraction(self.n * (self.k - 1), self.k, self.n), self.m)


def critical_difference(k: int, n: int, m: int, alpha: float) -> int | None:
    """Smallest integer rank-sum difference whose Bonferroni-adjusted exact p-value is <= alpha.

    p falls as d grows, so a binary search over 1..n(k-1) needs O(log(nk)) exact p-values.
    """
    if m < 1:
        return None
    threshold = Fraction(alpha)
    low, high = 1, n * (k - 1)
    if friedman.bonferroni(friedman.exact_pvalue_fraction(high, k, n), m) > threshold:
        return None
    while low < high:
        middle = (low + high) // 2
        if friedman.bonferroni(friedman.exact_pvalue_fraction(middle, k, n), m) <= threshold:
            high = middle
        else:
            low = middle + 1
    return low


def rank_analysis(matrix: pd.DataFrame, pairs: list[tuple[str, str]], alpha: float = 0.05) -> RankAnalysis:
    """Rank every test set's row, sum the ranks and test the given pairs exactly (Bonferroni over them).

    Refuses (:class:`IncompleteResultsError`) when any cell is empty: the Friedman design needs
    every instance ranked on every test set, and silently dropping a row or column would change
    what is being tested. (:func:`erc.evaluation.pipeline.evaluate` checks the whole design first.)
    """
    gaps = missing_cells(matrix)
    if gaps:
        listed = "; ".join(f"({m}, {s}, {t})" for m, s, t in gaps)
        raise IncompleteResultsError(
            f"the Friedman test needs a score for every (classifier, source, test set); {len(gaps)} missing: "
            f"{listed}. Rerun the failed jobs, or leave out the incomplete instances with select=.")
    n, k = matrix.shape
    if k < 2:
        raise DataError(f"need at least 2 model instances to rank, got {k}: {list(matrix.columns)}")
    ranks = pd.DataFrame(friedman.rank_rows(matrix.to_numpy()), index=matrix.index, columns=matrix.columns)
    rank_sums = ranks.sum(axis=0)
    m = len(pairs)
    records, exact = [], []
    for instance, control in pairs:
        diff = float(rank_sums[control] - rank_sums[instance])  # > 0: the instance ranks better than its control
        p_raw = friedman.exact_pvalue_fraction(Fraction(diff), k, n)
        p_adj = friedman.bonferroni(p_raw, m)
        exact.append((p_raw, p_adj))
        records.append({"instance": instance, "control": control, "rank_sum": float(rank_sums[instance]),
                        "control_rank_sum": float(rank_sums[control]), "diff": diff,
                        "p_raw": float(p_raw), "p_adj": float(p_adj), "significant": bool(p_adj <= Fraction(alpha))})
    comparisons = pd.DataFrame(records, columns=["instance", "control", "rank_sum", "control_rank_sum", "diff",
                                                 "p_raw", "p_adj", "significant"])
    ties = []
    for test_set, row in ranks.iterrows():
        for rank, tied in row.groupby(row).groups.items():
            if len(tied) > 1:
                ties.append({"test_set": test_set, "instances": list(tied), "rank": float(rank)})
    if k < 3 or n < 2:
        needs = f"at least 3 instances (k = {k})" if k < 3 else f"at least 2 test sets (n = {n})"
        omnibus: dict[str, Any] = {"k": k, "n": n, "not_computed": f"Friedman's omnibus test needs {needs}"}
    else:
        omnibus = friedman.omnibus(matrix.to_numpy())
    return RankAnalysis(scores=matrix, ranks=ranks, rank_sums=rank_sums, comparisons=comparisons, p_exact=exact,
                        omnibus=omnibus, ties=ties, alpha=alpha,
                        critical_difference=critical_difference(k, n, m, alpha))
