"""Experiment tracking: the W&B logger of a job, its resolved config without secrets, results.json, git revision.

The run's mode follows :func:`erc.tracking.wandb_mode` (online with an API key, else offline into the job's
output folder; ``logger.mode`` or ``WANDB_MODE`` override it). results.json never depends on a W&B server.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erc.paths import PROJECT_ROOT
from erc.tracking import wandb_mode, wandb_settings


def make_wandb_logger(logger_cfg: DictConfig, identity: dict[str, Any], config: dict[str, Any], save_dir: Path,
                      run_id: str, group: str | None, job_type: str) -> Any:
    """A Lightning ``WandbLogger`` named after the job; ``run_id`` is stable so a resumed job continues its run.

    The run is started here rather than by the logger: Lightning's ``WandbLogger`` hands ``wandb.init`` an
    ``anonymous`` argument, which wandb 0.31 answers with a deprecation warning on every run. Other DDP ranks get
    no run (Lightning gives them a dummy experiment)."""
    import wandb
    from pytorch_lightning.loggers import WandbLogger
    from pytorch_lightning.utilities import rank_zero_only

    name = f"{identity['classifier']}-{identity['data']}-s{identity['seed']}"
    if identity.get("variant"):
        name = f"{identity['classifier']}[{identity['variant']}]-{identity['data']}-s{identity['seed']}"
    tags = [identity["classifier"], identity["benchmark"], identity["source"], *list(logger_cfg.get("tags") or [])]
    save_dir.mkdir(parents=True, exist_ok=True)
    run = None
    if rank_zero_only.rank == 0:
        run = wandb.init(project=logger_cfg.project, entity=logger_cfg.get("entity"), group=group, job_type=job_type,
                         name=name, tags=tags, id=run_id, resume="allow", dir=str(save_dir), config=config,
                         mode=wandb_mode(logger_cfg.get("mode")), settings=wandb_settings())
        # The step axis WandbLogger sets up when it starts a run itself.
        run.define_metric("trainer/global_step")
        run.define_metric("*", step_metric="trainer/global_step", step_sync=True)
    return WandbLogger(experiment=run, save_dir=str(save_dir), log_model=False)


def offline_runs(save_dir: Path, run_id: str) -> list[Path]:
    """The offline W&B folders of run ``run_id`` in ``save_dir`` (``wandb/offline-run-<time>-<id>[-<n>]``)."""
    pattern = re.compile(rf"offline-run-\d{{8}}_\d{{6}}-{re.escape(run_id)}(-\d+)?")
    return sorted(p for p in (save_dir / "wandb").glob("offline-run-*") if pattern.fullmatch(p.name))


def git_revision() -> str | None:
    """The project's git commit (with ``-dirty`` when tracked files changed), or None outside a checkout."""
    try:
        rev = subprocess.run(["git", "rev-parse", "HEAD"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                             check=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=PROJECT_ROOT,
                               capture_output=True, text=True, timeout=10).stdout.strip()
        return rev + ("-dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return None
