"""Evaluation: the paper's Table III and Table IV from a sweep, with exact Friedman rank statistics.

- :mod:`erc.evaluation.friedman`: the exact p-value of a rank-sum difference (Eisinga et al. 2017),
  ranks and the omnibus Friedman / Iman-Davenport tests;
- :mod:`erc.evaluation.collect`: results.json sweep folders, scores CSVs and W&B runs into one table;
- :mod:`erc.evaluation.analysis`: score matrix, ranks, rank sums and Bonferroni-corrected comparisons;
- :mod:`erc.evaluation.tables` and :mod:`erc.evaluation.plots`: Markdown/CSV/LaTeX tables and PNG diagrams;
- :func:`evaluate`: all of the above for ``python evaluate.py``.
"""

from erc.evaluation.friedman import exact_pvalue, exact_pvalue_fraction
from erc.evaluation.pipeline import evaluate

__all__ = ["evaluate", "exact_pvalue", "exact_pvalue_fraction"]
