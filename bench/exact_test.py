"""Benchmark the exact Friedman rank-sum test: one p-value for k = n = 100 (goal < 1 s) and the whole Table IV.

    python bench/exact_test.py

Prints wall-clock times (best and median of several repeats). "Table IV" is the full computation
that evaluate.py does for the paper's 9 x 9 matrix (read the CSV, rank, rank sums, 6 exact p-values,
Bonferroni, omnibus tests, critical difference) plus writing table4.{md,tex,csv}; a 100 x 99 random
design shows how it scales.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from erc.evaluation.analysis import comparison_pairs, rank_analysis, score_matrix
from erc.evaluation.collect import read_scores_csv
from erc.evaluation.friedman import count_at_least, exact_pvalue
from erc.evaluation.tables import Display, write_table4

PAPER_SCORES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "paper_table4_scores.csv"


def timed(label: str, work: Callable[[], object], repeats: int) -> tuple[object, float]:
    """Best and median wall time (best returned, in seconds, with the result); the exact-count cache is
    cleared first so every run computes from scratch."""
    times, result = [], None
    for _ in range(repeats):
        count_at_least.cache_clear()
        start = time.perf_counter()
        result = work()
        times.append(time.perf_counter() - start)
    print(f"{label:<58} best {min(times) * 1000:10.3f} ms   median {statistics.median(times) * 1000:10.3f} ms "
          f"({repeats} runs)")
    return result, min(times)


def table_iv(scores: pd.DataFrame, out_dir: Path) -> object:
    matrix = score_matrix(scores)
    analysis = rank_analysis(matrix, comparison_pairs(list(matrix.columns)))
    write_table4(matrix, analysis, out_dir, Display(), seeds=1)
    return analysis


def main() -> None:
    p, seconds = timed("exact_pvalue(d=100, k=100, n=100)", lambda: exact_pvalue(100, 100, 100), 5)
    print(f"  -> {p:.7f} (Eisinga's check value 0.8085251); goal < 1 s")
    print(f"summary: exact test, exact_pvalue(d=k=n=100) = {p:.7f} in {seconds * 1000:.0f} ms (goal < 1 s)")
    timed("exact_pvalue(d=1000, k=100, n=100)", lambda: exact_pvalue(1000, 100, 100), 5)
    timed("exact_pvalue(d=39, k=9, n=9)", lambda: exact_pvalue(39, 9, 9), 20)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp)
        _, seconds = timed("Table IV, paper (k=n=9): read CSV + statistics + files",
                           lambda: table_iv(read_scores_csv(PAPER_SCORES), out), 10)
        print(f"summary: exact test, the paper's whole Table IV in {seconds * 1000:.0f} ms")
        rng = np.random.default_rng(0)
        models = [f"m{i:02d}" for i in range(33)]
        rows = [{"classifier": m, "variant": None, "source": s, "benchmark": None, "test_set": f"set{t:03d}",
                 "seed": None, "wf1": rng.random(), "origin": "random"}
                for m in models for s in ("org", "nat", "bal") for t in range(100)]
        big = pd.DataFrame(rows)
        timed("Table IV, random (k=99 instances, n=100 test sets, m=66)", lambda: table_iv(big, out), 3)


if __name__ == "__main__":
    main()
