"""Every training config value checked before any data is encoded or any model built, each failure a
:class:`erc.errors.ConfigError` naming the key and what it accepts (``data.limit_dialogues=-5`` would
otherwise keep all but the last 5 dialogues of every split, and ``schedule.lr=abc`` die mid-run)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from erc.errors import ConfigError
from erc.models.backbone import check_backbone_name
from erc.training.schedule import PHASES, phase_schedule


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_train_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value of ``cfg`` that cannot work (see the module docstring)."""
    if not _integer(cfg.seed):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    if not isinstance(cfg.resume, bool):
        raise ConfigError(f"resume must be true or false, got {cfg.resume!r}")
    limit = cfg.data.get("limit_dialogues")
    if limit is not None and not (_integer(limit) and limit > 0):
        raise ConfigError(f"data.limit_dialogues must be a positive integer or null (every dialogue), got {limit!r}")
    workers = cfg.data.get("num_workers", 0)
    if not (_integer(workers) and workers >= 0):
        raise ConfigError(f"data.num_workers must be an integer >= 0, got {workers!r}")
    for phase in PHASES:
        phase_schedule(cfg.schedule, phase)
    if cfg.classifier.get("backbone") is not None:
        check_backbone_name(str(cfg.classifier.backbone), "classifier.backbone")
