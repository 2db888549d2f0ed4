"""``evaluate(cfg)``: read a sweep (or a scores CSV, or W&B), write Table III, Table IV, friedman.json and plots.

This is the plain function behind ``python evaluate.py``; tests call it directly with a composed
config. Everything goes into ``cfg.paths.output_dir`` (the Hydra job's output folder).
"""

from __future__ import annotations

import json
import logging
import netrc
import os
from pathlib import Path
from typing import Any

import pandas as pd
from omegaconf import DictConfig, OmegaConf

from erc.data import DataError
from erc.evaluation.analysis import (AGGREGATION, TIES_HANDLING, MissingCellsError, RankAnalysis, cell_stats,
                                     comparison_pairs, rank_analysis, score_matrix)
from erc.evaluation.collect import read_scores_csv, read_sweep, read_wandb
from erc.evaluation.plots import plot_cd_diagram, plot_rank_heatmap
from erc.evaluation.tables import Display, table3_frame, write_table3, write_table4

log = logging.getLogger(__name__)
METHOD = ("Friedman rank sums over test sets (1 = best); two-sided exact p-values for pairwise rank-sum "
          "differences (Eisinga et al. 2017, BMC Bioinformatics 18:68) computed in exact integer arithmetic; "
          "Bonferroni over the comparisons made, capped at 1")


def load_table(cfg: DictConfig) -> tuple[pd.DataFrame, dict[str, Any]]:
    """The long score table and a description of where it came from (sweep, scores or W&B)."""
    select = OmegaConf.to_container(cfg.select, resolve=True) if cfg.get("select") else {}
    if cfg.sweep and cfg.scores:
        raise DataError("give either sweep=<folder> or scores=<csv>, not both")
    if cfg.sweep:
        return read_sweep(cfg.sweep, select), {"kind": "sweep", "path": str(Path(cfg.sweep).resolve())}
    if cfg.scores:
        return (read_scores_csv(cfg.scores, cfg.scores_unit),
                {"kind": "scores", "path": str(Path(cfg.scores).resolve())})
    table = read_wandb(cfg.wandb.project, cfg.wandb.entity, cfg.wandb.group, select)
    return table, {"kind": "wandb", "project": cfg.wandb.project, "entity": cfg.wandb.entity,
                   "group": cfg.wandb.group}


def _display(cfg: DictConfig) -> Display:
    names = OmegaConf.to_container(cfg.display.names, resolve=True) if cfg.display.get("names") else {}
    return Display(p_digits=int(cfg.display.p_digits), p_mode=str(cfg.display.p_mode), names=names)


def _friedman_json(analysis: RankAnalysis, cfg: DictConfig, source: dict[str, Any], seeds: int) -> dict[str, Any]:
    comparisons = [{**row, "p_raw": float(raw), "p_adj": float(adj)}
                   for row, (raw, adj) in zip(analysis.comparisons.to_dict("records"), analysis.p_exact)]
    return {
        "input": source,
        "method": METHOD,
        "aggregation": AGGREGATION, "max_seeds_per_cell": seeds,
        "k": analysis.k, "n": analysis.n,
        "instances": list(analysis.scores.columns), "test_sets": list(analysis.scores.index),
        "scores": {t: row.to_dict() for t, row in analysis.scores.iterrows()},
        "ranks": {t: row.to_dict() for t, row in analysis.ranks.iterrows()},
        "rank_sums": {c: float(v) for c, v in analysis.rank_sums.items()},
        "omnibus": analysis.omnibus,
        "comparisons": {"mode": cfg.comparisons.mode, "control": cfg.comparisons.control,
                        "correction": "bonferroni", "m": len(comparisons), "alpha": analysis.alpha,
                        "critical_rank_sum_difference": analysis.critical_difference, "pairs": comparisons},
        "ties": analysis.ties, "ties_handling": TIES_HANDLING,
    }


def _wandb_mode(configured: str | None) -> str | None:
    """The configured mode, else WANDB_MODE (wandb reads it itself), else offline when no API key is known."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE") or os.environ.get("WANDB_API_KEY"):
        return None
    try:
        host = os.environ.get("WANDB_BASE_URL", "https://api.wandb.ai").split("://")[-1].split("/")[0]
        if netrc.netrc().authenticators(host):
            return None
    except (FileNotFoundError, netrc.NetrcParseError):
        pass
    return "offline"


def _log_to_wandb(cfg: DictConfig, out_dir: Path, table3: pd.DataFrame, analysis: RankAnalysis | None,
                  plots: list[Path]) -> str:
    """Log the tables (as ``wandb.Table``), the omnibus statistics and the plots to a job_type=evaluate run."""
    import wandb

    run = wandb.init(project=cfg.wandb.project, entity=cfg.wandb.entity, group=cfg.wandb.group,
                     job_type="evaluate", dir=str(out_dir), mode=_wandb_mode(cfg.wandb.get("mode")),
                     config=OmegaConf.to_container(cfg, resolve=True), reinit="create_new")
    try:
        data: dict[str, Any] = {"table3": wandb.Table(dataframe=table3)}
        if analysis is not None:
            data["table4"] = wandb.Table(dataframe=analysis.comparisons)
            long = analysis.scores.stack().rename("wf1").reset_index().rename(columns={"level_1": "instance"})
            long["rank"] = analysis.ranks.stack().to_numpy()
            data["table4_ranks"] = wandb.Table(dataframe=long)
            run.summary.update({f"friedman/{k}": v for k, v in analysis.omnibus.items()})
        data.update({f"plots/{p.stem}": wandb.Image(str(p)) for p in plots})
        run.log(data)
        return run.dir
    finally:
        run.finish()


def evaluate(cfg: DictConfig) -> dict[str, Any]:
    """Write table3.*, table4.*, friedman.json and the rank plots for the configured input.

    Returns the Friedman results (rank sums, comparisons, omnibus statistics) and the written files.
    When cells are missing, the tables are still written with the gaps marked, and then
    :class:`~erc.evaluation.analysis.MissingCellsError` names every missing (classifier, source, test set).
    """
    out_dir = Path(cfg.paths.output_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    table, source = load_table(cfg)
    if table.empty:
        raise DataError(f"no test W-F1 scores found in {source}")
    display = _display(cfg)
    scores = score_matrix(table)
    seeds = int(cell_stats(table)["n"].max())
    files = write_table3(table, out_dir, display)
    pairs = comparison_pairs(list(scores.columns), str(cfg.comparisons.mode), str(cfg.comparisons.control))
    try:
        analysis = rank_analysis(scores, pairs, float(cfg.alpha))
    except MissingCellsError as err:
        files += write_table4(scores, None, out_dir, display, seeds, refused=str(err))
        _announce(out_dir, files)
        raise
    files += write_table4(scores, analysis, out_dir, display, seeds)
    summary = _friedman_json(analysis, cfg, source, seeds)
    json_path = out_dir / "friedman.json"
    json_path.write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    plots = [plot_cd_diagram(analysis, display, out_dir / "cd_diagram.png"),
             plot_rank_heatmap(analysis, display, out_dir / "ranks.png")]
    files += [json_path, *plots]
    result: dict[str, Any] = {**summary, "output_dir": str(out_dir), "files": [str(f) for f in files]}
    if cfg.wandb.get("log"):
        result["wandb_dir"] = _log_to_wandb(cfg, out_dir, table3_frame(table), analysis, plots)
    print((out_dir / "table4.md").read_text(encoding="utf-8"))
    _announce(out_dir, files)
    return result


def _announce(out_dir: Path, files: list[Path]) -> None:
    listing = "\n".join(f"  {f.name}" for f in files)
    log.info(f"Evaluation outputs in {out_dir}:\n{listing}")
