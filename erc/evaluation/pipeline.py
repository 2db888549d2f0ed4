"""``evaluate(cfg)``: read a sweep (or a scores CSV, or W&B), write Table III, Table IV, friedman.json and plots.

This is the plain function behind ``python evaluate.py``; tests call it directly with a composed
config. Everything goes into ``cfg.paths.output_dir`` (the Hydra job's output folder).
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from erc.data import SOURCES, DataError
from erc.errors import ConfigError
from erc.evaluation.analysis import (
    AGGREGATION,
    TIES_HANDLING,
    IncompleteResultsError,
    RankAnalysis,
    cell_stats,
    comparison_pairs,
    rank_analysis,
    score_matrix,
)
from erc.evaluation.collect import check_select, read_scores_csv, read_sweep, read_wandb, select_rows
from erc.evaluation.completeness import Gaps, complete_columns, find_gaps, planned_comparisons
from erc.evaluation.plots import plot_cd_diagram, plot_rank_heatmap
from erc.evaluation.tables import Display, table3_frame, write_table3, write_table4
from erc.io import write_text_atomic
from erc.secrets import public_config
from erc.tracking import wandb_mode, wandb_settings

log = logging.getLogger(__name__)
METHOD = ("Friedman rank sums over test sets (1 = best); two-sided exact p-values for pairwise rank-sum "
          "differences (Eisinga et al. 2017, BMC Bioinformatics 18:68) computed in exact integer arithmetic; "
          "Bonferroni over the comparisons made, capped at 1")


def check_config(cfg: DictConfig) -> None:
    """Every evaluate.yaml value that could fail later, checked before any file is read."""
    if cfg.sweep and cfg.scores:
        raise ConfigError("give either sweep=<folder> or scores=<csv>, not both")
    choices = {"scores_unit": ("auto", "percent", "fraction"), "comparisons.mode": ("control", "all"),
               "comparisons.control": SOURCES, "display.p_mode": ("truncate", "round")}
    for key, valid in choices.items():
        value = OmegaConf.select(cfg, key)
        if value not in valid:
            raise ConfigError(f"{key} must be one of {', '.join(valid)}, got {value!r}")
    alpha = cfg.alpha
    if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not 0 < alpha < 1:
        raise ConfigError(f"alpha must be a number between 0 and 1 (exclusive), got {alpha!r}")
    digits = cfg.display.p_digits
    if isinstance(digits, bool) or not isinstance(digits, int) or digits < 1:
        raise ConfigError(f"display.p_digits must be a positive integer, got {digits!r}")
    if not isinstance(cfg.get("allow_partial"), bool):
        raise ConfigError(f"allow_partial must be true or false, got {cfg.get('allow_partial')!r}")
    if cfg.get("select") is not None and not OmegaConf.is_dict(cfg.select):
        raise ConfigError(f"select must be a mapping such as +select.seed=[1,2], got {cfg.select!r}")
    check_select(_selection(cfg))


def _selection(cfg: DictConfig) -> dict[str, Any]:
    return OmegaConf.to_container(cfg.select, resolve=True) if cfg.get("select") else {}  # type: ignore[return-value]


def load_table(cfg: DictConfig) -> tuple[pd.DataFrame, list[str], dict[str, Any]]:
    """The long score table, the jobs that reported nothing, and a description of the input."""
    select = _selection(cfg)
    if cfg.sweep:
        table, unfinished = read_sweep(cfg.sweep, select)
        return table, unfinished, {"kind": "sweep", "path": str(Path(cfg.sweep).resolve())}
    if cfg.scores:
        table = read_scores_csv(cfg.scores, cfg.scores_unit)
        return select_rows(table, select), [], {"kind": "scores", "path": str(Path(cfg.scores).resolve())}
    table, unfinished = read_wandb(cfg.wandb.project, cfg.wandb.entity, cfg.wandb.group, select)
    return table, unfinished, {"kind": "wandb", "project": cfg.wandb.project, "entity": cfg.wandb.entity,
                               "group": cfg.wandb.group}


def _display(cfg: DictConfig) -> Display:
    names = OmegaConf.to_container(cfg.display.names, resolve=True) if cfg.display.get("names") else {}
    return Display(p_digits=int(cfg.display.p_digits), p_mode=str(cfg.display.p_mode), names=names)


def _finite(value: Any) -> Any:
    """JSON has no infinity or NaN: a degenerate statistic is written as null (its note says why)."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_finite(v) for v in value]
    return value


def _friedman_json(analysis: RankAnalysis, cfg: DictConfig, source: dict[str, Any], seeds: int,
                   gaps: Gaps, planned_m: int, left_out: list[str]) -> dict[str, Any]:
    comparisons = [{**row, "p_raw": float(raw), "p_adj": float(adj)}
                   for row, (raw, adj) in zip(analysis.comparisons.to_dict("records"), analysis.p_exact, strict=True)]
    return {
        "input": source,
        "method": METHOD,
        "aggregation": AGGREGATION, "max_seeds_per_cell": seeds,
        "complete": not gaps,
        "partial": None if not gaps else {
            "missing": gaps.describe(), "unfinished_jobs": gaps.unfinished_jobs, "missing_jobs": gaps.missing_jobs,
            "missing_controls": gaps.missing_controls, "missing_instances": gaps.missing_instances,
            "missing_test_sets": gaps.missing_test_sets, "missing_cells": gaps.missing_cells,
            "left_out_instances": left_out, "planned_instances": gaps.planned, "planned_m": planned_m},
        "k": analysis.k, "n": analysis.n,
        "instances": list(analysis.scores.columns), "test_sets": list(analysis.scores.index),
        "scores": {t: row.to_dict() for t, row in analysis.scores.iterrows()},
        "ranks": {t: row.to_dict() for t, row in analysis.ranks.iterrows()},
        "rank_sums": {c: float(v) for c, v in analysis.rank_sums.items()},
        "omnibus": analysis.omnibus,
        "comparisons": {"mode": cfg.comparisons.mode, "control": cfg.comparisons.control,
                        "correction": "bonferroni", "m": analysis.m, "alpha": analysis.alpha,
                        "critical_rank_sum_difference": analysis.critical_difference, "pairs": comparisons},
        "ties": analysis.ties, "ties_handling": TIES_HANDLING,
    }


def _log_to_wandb(cfg: DictConfig, out_dir: Path, table3: pd.DataFrame, analysis: RankAnalysis,
                  plots: list[Path], partial: str | None) -> str:
    """Log the tables (as ``wandb.Table``), the omnibus statistics, m and completeness, and the plots to a
    job_type=evaluate run."""
    import wandb

    run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, group=cfg.wandb.group,
                     job_type="evaluate", dir=str(out_dir), mode=wandb_mode(cfg.wandb.get("mode")),
                     config=public_config(cfg), settings=wandb_settings(), reinit="create_new")
    try:
        data: dict[str, Any] = {"table3": wandb.Table(dataframe=table3)}
        data["table4"] = wandb.Table(dataframe=analysis.comparisons)
        long = analysis.scores.stack().rename("wf1").reset_index().rename(columns={"level_1": "instance"})
        long["rank"] = analysis.ranks.stack().to_numpy()
        data["table4_ranks"] = wandb.Table(dataframe=long)
        run.summary.update({f"friedman/{k}": v for k, v in _finite(analysis.omnibus).items()})
        run.summary.update({"friedman/m": analysis.m, "friedman/complete": partial is None,
                            "friedman/partial": partial or ""})
        data.update({f"plots/{p.stem}": wandb.Image(str(p)) for p in plots})
        run.log(data)
        return run.dir
    finally:
        run.finish()


def _shrinkage(ranked: pd.DataFrame, pairs: list[tuple[str, str]], gaps: Gaps, planned_m: int) -> str:
    """What the complete part tests against what the design plans: instances k, test sets n, comparisons m."""
    n, k = ranked.shape
    return (f"k = {k} instances on n = {n} test sets with Bonferroni m = {len(pairs)}, instead of "
            f"k = {len(gaps.planned)}, n = {n + len(gaps.missing_test_sets)} and m = {planned_m}")


def _partial_note(ranked: pd.DataFrame, pairs: list[tuple[str, str]], gaps: Gaps, planned_m: int,
                  left_out: list[str]) -> str:
    left = f" Left out of the ranking as incomplete: {', '.join(left_out)}." if left_out else ""
    return f"{_shrinkage(ranked, pairs, gaps, planned_m)}. Gaps: {gaps.describe()}.{left}"


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Write table3.*, table4.*, friedman.json and the rank plots for the configured input.

    Returns the Friedman results (rank sums, comparisons, omnibus statistics) and the written files.
    When a job, instance, control, test set or cell of the design is missing (see
    :mod:`erc.evaluation.completeness`), Table III and Table IV are still written with the gaps marked,
    and then :class:`IncompleteResultsError` names each gap, unless ``allow_partial=true``: then the
    instances scored on every test set are ranked and every output says the table is partial.
    """
    check_config(cfg)
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, unfinished, source = load_table(cfg)
    if table.empty:
        raise DataError(f"no test W-F1 scores found in {source}")
    display = _display(cfg)
    mode, control = str(cfg.comparisons.mode), str(cfg.comparisons.control)
    scores = score_matrix(table)
    seeds = int(cell_stats(table)["n"].max())
    files = write_table3(table, out_dir, display)
    gaps = find_gaps(table, scores, unfinished, mode, control)
    planned_m = planned_comparisons(gaps, mode, control)
    ranked = scores[complete_columns(scores)] if gaps else scores
    pairs = comparison_pairs(list(ranked.columns), mode, control)
    if gaps and not cfg.allow_partial:
        shrunk = _shrinkage(ranked, pairs, gaps, planned_m)
        message = (f"the results are incomplete, so Table IV would test less than the design ({shrunk}): "
                   f"{gaps.describe()}. Rerun the failed jobs (finished ones are kept), narrow the input with "
                   "select=, or pass allow_partial=true for a table over the complete part, marked as partial.")
        files += write_table4(scores, None, out_dir, display, seeds, refused=message)
        _announce(out_dir, files)
        raise IncompleteResultsError(message)
    left_out = [c for c in scores.columns if c not in ranked.columns]
    partial = _partial_note(ranked, pairs, gaps, planned_m, left_out) if gaps else None
    analysis = rank_analysis(ranked, pairs, float(cfg.alpha))
    files += write_table4(ranked, analysis, out_dir, display, seeds, partial=partial)
    summary = _friedman_json(analysis, cfg, source, seeds, gaps, planned_m, left_out)
    json_path = write_text_atomic(out_dir / "friedman.json",
                                  json.dumps(_finite(summary), indent=2, allow_nan=False) + "\n")
    plots = [plot_cd_diagram(analysis, display, out_dir / "cd_diagram.png"),
             plot_rank_heatmap(analysis, display, out_dir / "ranks.png")]
    files += [json_path, *plots]
    result: dict[str, Any] = {**summary, "output_dir": str(out_dir), "files": [str(f) for f in files]}
    if cfg.wandb.get("log"):
        result["wandb_dir"] = _log_to_wandb(cfg, out_dir, table3_frame(table), analysis, plots, partial)
    print((out_dir / "table4.md").read_text(encoding="utf-8"))
    _announce(out_dir, files)
    return result


def _announce(out_dir: Path, files: list[Path]) -> None:
    listing = "\n".join(f"  {f.name}" for f in files)
    log.info(f"Evaluation outputs in {out_dir}:\n{listing}")
