"""W&B reporting of a job: its run (named, grouped per sweep, continued on resume), test confusion matrices and the
final summary. Everything here runs on rank 0 only; ``logger=none`` makes every call a no-op, and results.json never
depends on it (:mod:`erc.training.tracking` builds the logger and its mode).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from erc.tracking import wandb_mode
from erc.training.tracking import make_wandb_logger, offline_runs

log = logging.getLogger(__name__)


def is_multirun(mode: Any) -> bool:
    """Whether Hydra's ``hydra.mode`` (``HydraConfig.get().mode``) is a multirun.

    ``mode`` is a ``hydra.types.RunMode``, an enum in a module Hydra does not document as public API. It is
    compared with that enum when the import works and, failing that, by the member's name (also what a plain
    string mode gives), so a Hydra release that moves or renames the module still groups sweeps instead of
    failing every job with an ImportError."""
    try:
        from hydra.types import RunMode
    except ImportError:
        RunMode = None
    if RunMode is not None and mode == RunMode.MULTIRUN:
        return True
    return str(getattr(mode, "name", mode)).upper() == "MULTIRUN"


def sweep_group(cfg: DictConfig) -> str | None:
    """W&B group: ``logger.group`` if set, else the multirun folder's name (one group per sweep)."""
    if cfg.logger.get("group"):
        return str(cfg.logger.group)
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():           # train() called directly, not through train.py
        return None
    hydra_cfg = HydraConfig.get()
    if is_multirun(hydra_cfg.mode):
        return f"{cfg.task_name}-{Path(hydra_cfg.sweep.dir).name}"
    return None


class Reporter:
    """The W&B side of one job; ``lightning_logger`` is what its Trainers log to (None with ``logger=none``)."""

    def __init__(self, lightning_logger: Any = None) -> None:
        self.lightning_logger = lightning_logger

    @classmethod
    def start(cls, cfg: DictConfig, identity: dict[str, Any], config: dict[str, Any], work_dir: Path, key: str,
              finished: bool = False) -> Reporter:
        """The job's run (``config``: the public config it records), or a silent reporter for ``logger=none``.

        The run lives in the job's own folder (``work_dir``, named by the job key, beside its checkpoints), not in
        the folder of one invocation: every run of the job finds it there. A resumed job continues its W&B run
        (its id is the job key); offline, wandb writes each process's part as a folder of its own in
        ``work_dir/wandb/``, and ``wandb sync`` uploads a resumed run's folders in start order as one run. A fresh
        start (``resume=false``) gets a run of its own.

        ``finished``: every step was done by an earlier run, so this one has nothing new to log: when that run's
        offline folder is there, no run is started (each rerun would add a copy of the same run, every one of
        which ``wandb sync`` would upload again)."""
        if cfg.logger.get("name", "none") != "wandb":
            return cls()
        run_id = key if cfg.resume else f"{key}-{time.strftime('%Y%m%d-%H%M%S')}"
        if finished and cfg.resume and wandb_mode(cfg.logger.get("mode")) == "offline":
            earlier = offline_runs(work_dir, run_id)
            if earlier:
                log.info("W&B: every step of this job was done before and its offline run is in %s; no new run",
                         earlier[-1])
                return cls()
        return cls(make_wandb_logger(cfg.logger, identity, config, work_dir, run_id=run_id, group=sweep_group(cfg),
                                     job_type="pretrain+finetune" if cfg.data.pretrain else "finetune"))

    @rank_zero_only
    def confusion(self, prefix: str, y_true: list[int], y_pred: list[int], labels: list[str]) -> None:
        """A test set's confusion matrix as a W&B plot (``<prefix>/confusion``)."""
        if self.lightning_logger is None:
            return
        import wandb

        self.lightning_logger.experiment.log({f"{prefix}/confusion": wandb.plot.confusion_matrix(
            y_true=y_true, preds=y_pred, class_names=labels, title=f"{prefix} confusion")})

    @rank_zero_only
    def summary(self, metrics: dict[str, float]) -> None:
        """The run summary: the final test metrics."""
        if self.lightning_logger is not None:
            self.lightning_logger.experiment.summary.update({k: v for k, v in metrics.items() if k.startswith("test/")})

    @rank_zero_only
    def finish(self) -> None:
        if self.lightning_logger is not None:
            self.lightning_logger.experiment.finish()
