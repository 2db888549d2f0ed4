"""Experiment tracking: the W&B logger of a job, its resolved config without secrets, results.json, git revision.

W&B runs online when an API key is configured (``WANDB_API_KEY`` or a ``~/.netrc`` entry for api.wandb.ai)
and offline otherwise (the run directory lands in the job's output folder; ``wandb sync <dir>`` uploads it
later); ``WANDB_MODE`` or ``logger.mode`` override that. results.json never depends on a W&B server.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erc.config import PROJECT_ROOT
from erc.secrets import wandb_api_key_configured, wandb_settings



def wandb_mode(configured: str | None = None) -> str:
    """``online`` when an API key is available, else ``offline`` (``configured``/``WANDB_MODE`` win)."""
    if configured:
        return configured
    if os.environ.get("WANDB_MODE"):
        return {"dryrun": "offline", "run": "online"}.get(os.environ["WANDB_MODE"], os.environ["WANDB_MODE"])
    return "online" if wandb_api_key_configured() else "offline"


def make_wandb_logger(logger_cfg: DictConfig, identity: dict[str, Any], config: dict[str, Any], save_dir: Path,
                      run_id: str, group: str | None, job_type: str) -> Any:
    """A Lightning ``WandbLogger`` named after the job; ``run_id`` is stable so a resumed job continues its run."""
    from pytorch_lightning.loggers import WandbLogger

    name = f"{identity['classifier']}-{identity['data']}-s{identity['seed']}"
    if identity.get("variant"):
        name = f"{identity['classifier']}[{identity['variant']}]-{identity['data']}-s{identity['seed']}"
    tags = [identity["classifier"], identity["benchmark"], identity["source"], *list(logger_cfg.get("tags") or [])]
    save_dir.mkdir(parents=True, exist_ok=True)
    return WandbLogger(project=logger_cfg.project, entity=logger_cfg.get("entity"), group=group, job_type=job_type,
                       name=name, tags=tags, id=run_id, resume="allow", save_dir=str(save_dir), config=config,
                       mode=wandb_mode(logger_cfg.get("mode")), log_model=False, settings=wandb_settings())


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
