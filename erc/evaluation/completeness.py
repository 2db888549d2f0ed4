"""What a sweep or scores file lacks compared with the design it implies, so that Table IV never tests less
than planned without saying so.

Ranks and the Bonferroni correction depend on every instance being scored on every test set: a failed
job that silently drops its column turns m = 6 comparisons into 5, and a missing Org control drops both
of its model's comparisons. The design is read from the input itself, since no other file states it:

- every model (classifier, or classifier[variant]) has every source seen anywhere, plus the control
  source in control mode, and so one instance column per (model, source);
- every benchmark has a test set for every split seen anywhere (``meld_org``, ``meld_nat``, ...);
- every instance has a job for every benchmark and every seed seen anywhere (sweep and W&B input);
- every (instance, test set) cell has a score;
- every job folder (or W&B run) reported: those without results are listed by the collector.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import pandas as pd

from erc.data import SOURCES, parse_test_set, test_set_name
from erc.evaluation.analysis import comparison_pairs, instance_name
from erc.evaluation.collect import add_models, order_classifiers


@dataclass
class Gaps:
    """Everything missing from the design, each entry already worded for the user."""

    unfinished_jobs: list[str] = field(default_factory=list)   # job folders / W&B runs that reported nothing
    missing_jobs: list[str] = field(default_factory=list)      # (model, source, benchmark, seed) with no results
    missing_controls: list[str] = field(default_factory=list)  # control instances, with who they control
    missing_instances: list[str] = field(default_factory=list)
    missing_test_sets: list[str] = field(default_factory=list)
    missing_cells: list[str] = field(default_factory=list)     # (model, source, test set)
    planned: list[str] = field(default_factory=list)           # instance columns of the full design

    def __bool__(self) -> bool:
        return any((self.unfinished_jobs, self.missing_jobs, self.missing_controls, self.missing_instances,
                    self.missing_test_sets, self.missing_cells))

    def describe(self) -> str:
        """One line: each kind of gap with its count and every entry."""
        parts = [(self.unfinished_jobs, "job(s) without results (failed, killed or unfinished)"),
                 (self.missing_jobs, "job(s) absent from the classifier x source x benchmark x seed grid"),
                 (self.missing_controls, "control instance(s) absent"),
                 (self.missing_instances, "model instance(s) absent"),
                 (self.missing_test_sets, "test set(s) absent"),
                 (self.missing_cells, "cell(s) without a score")]
        return "; ".join(f"{len(items)} {what}: {', '.join(items)}" for items, what in parts if items)


def _planned_instances(table: pd.DataFrame, mode: str, control: str) -> list[tuple[str, str]]:
    models = order_classifiers(table["model"])
    sources = set(table["source"]) | ({control} if mode == "control" else set())
    return [(m, s) for m in models for s in SOURCES if s in sources]


def find_gaps(table: pd.DataFrame, matrix: pd.DataFrame, unfinished: list[str], mode: str = "control",
              control: str = "org") -> Gaps:
    """Compare the long score table and its (test sets x instances) matrix with the design they imply."""
    table = add_models(table)
    gaps = Gaps(unfinished_jobs=list(unfinished))
    planned = _planned_instances(table, mode, control)
    gaps.planned = [instance_name(m, s) for m, s in planned]
    present = set(matrix.columns)
    for model, source in planned:
        column = instance_name(model, source)
        if column in present:
            continue
        if mode == "control" and source == control:
            compared = [instance_name(model, s) for s in SOURCES
                        if s != control and instance_name(model, s) in present]
            gaps.missing_controls.append(f"{column} (the control of {', '.join(compared) or 'no instance'})")
        else:
            gaps.missing_instances.append(column)

    parsed = [parse_test_set(t) for t in matrix.index]
    benchmarks = list(dict.fromkeys(b for b, _ in parsed if b))
    splits = {s for _, s in parsed if s}
    gaps.missing_test_sets = [test_set_name(b, s) for b in benchmarks for s in SOURCES
                              if s in splits and test_set_name(b, s) not in set(matrix.index)]

    reported = table.dropna(subset=["benchmark"])
    seeds = sorted({s for s in reported["seed"] if s is not None and not _is_nan(s)},
                   key=lambda s: (len(str(s)), str(s)))  # numeric order for integer seeds
    jobs = set(zip(reported["model"], reported["source"], reported["benchmark"], reported["seed"].astype(str),
                   strict=True))
    jobless = set()
    for model, source in planned:
        if instance_name(model, source) not in present:
            continue
        for benchmark in dict.fromkeys(reported["benchmark"]):
            missing = [s for s in seeds if (model, source, benchmark, str(s)) not in jobs]
            gaps.missing_jobs += [f"({model}, {source}, {benchmark}, seed {s})" for s in missing]
            if seeds and len(missing) == len(seeds):
                jobless.add((model, source, benchmark))

    for column in matrix.columns:
        model, _, source = column.rpartition("_")
        for test_set in matrix.index[matrix[column].isna()]:
            if (model, source, parse_test_set(test_set)[0]) not in jobless:  # else its job is listed already
                gaps.missing_cells.append(f"({model}, {source}, {test_set})")
    return gaps


def _is_nan(value: object) -> bool:
    return isinstance(value, float) and math.isnan(value)


def planned_comparisons(gaps: Gaps, mode: str, control: str) -> int:
    """m of the full design: the comparisons Table IV would make if nothing were missing."""
    return len(comparison_pairs(gaps.planned, mode, control))


def complete_columns(matrix: pd.DataFrame) -> list[str]:
    """Instances scored on every test set: what a partial table (allow_partial=true) ranks."""
    return [c for c in matrix.columns if not matrix[c].isna().any()]
