"""Building blocks the runner shares with classifiers: building a classifier from its config group,
and the :class:`FitContext` handed to ``ERCClassifier.before_fit`` before each phase is fitted."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf

from erc.training.data import ERCDataModule
from erc.training.module import ERCClassifier
from erc.training.schedule import PhaseSchedule

# Keys of conf/classifier/<name>.yaml that describe the experiment rather than the module.
RESERVED_CLASSIFIER_KEYS: tuple[str, ...] = ("name", "variant", "paper")


def build_classifier(classifier_cfg: DictConfig, benchmark: str) -> ERCClassifier:
    """Instantiate ``classifier_cfg._target_`` with its keys (minus the reserved ones) and ``benchmark``."""
    kwargs = OmegaConf.to_container(classifier_cfg, resolve=True)
    for key in RESERVED_CLASSIFIER_KEYS:
        kwargs.pop(key, None)
    module = hydra.utils.instantiate(kwargs, benchmark=benchmark, _convert_="all")
    if not isinstance(module, ERCClassifier):
        raise TypeError(f"classifier._target_={classifier_cfg._target_!r} is not an ERCClassifier")
    return module


@dataclass
class FitContext:
    """What a classifier's ``before_fit`` hook may use.

    ``make_trainer(tag, schedule)`` returns a Trainer set up like the phase's (accelerator, precision,
    clipping, epochs from ``schedule``), without logger, whose callbacks write ``work_dir/tag/best.ckpt``
    (weights only, best ``<tag>/dev/<schedule.select>``: set the module's ``eval_prefix`` to ``<tag>/dev``;
    ``trainer.checkpoint_callback.best_model_path``) and ``work_dir/tag/last.ckpt`` (full state, to resume).
    ``make_datamodule(classifier, schedule)`` returns a DataModule over this phase's train/dev dialogues
    encoded by another classifier (e.g. EmoOne's teacher).
    """

    phase: str
    schedule: PhaseSchedule
    datamodule: ERCDataModule
    work_dir: Path
    seed: int
    make_trainer: Callable[[str, PhaseSchedule], pl.Trainer]
    make_datamodule: Callable[[ERCClassifier, PhaseSchedule], ERCDataModule]
    extras: dict[str, Any]
