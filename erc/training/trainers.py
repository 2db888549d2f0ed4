"""The trainer factory: every Lightning Trainer of a job, from ``conf/trainer`` plus a phase's schedule.

One place decides what a fit looks like (epochs, clipping, accumulation, atomic checkpoints, no sanity steps, the
runner's own batch samplers) and what selects its model (best dev score, per-epoch reseeding, early stopping), so a
classifier's phase and an auxiliary fit inside it (EmoOne's teacher) are trained the same way.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint

from erc.models.base import PhaseSchedule
from erc.training.progress_bar import progress_callbacks
from erc.training.resume import AtomicCheckpointIO, EpochSeeds
from erc.training.scoring import BestDevMetrics, Scorer


@dataclass
class SelectedFit:
    """A Trainer set up to fit with model selection, and where its outcome appears once it has fitted."""

    trainer: pl.Trainer
    checkpoint: ModelCheckpoint     # ``best_model_path``: the selected weights
    best: BestDevMetrics            # ``best``: every dev metric of the selected epoch


class TrainerFactory:
    """Trainers of one job (``trainer_cfg``: ``conf/trainer``; ``seed``: the job's seed, for per-epoch reseeding)."""

    def __init__(self, trainer_cfg: DictConfig, seed: int) -> None:
        self.trainer_cfg, self.seed = trainer_cfg, int(seed)

    def trainer(self, folder: Path, schedule: PhaseSchedule | None, callbacks: list[Callback], logger: Any
                ) -> pl.Trainer:
        """A Trainer from ``conf/trainer`` plus the phase's epochs, clipping and accumulation (none for testing)."""
        kwargs = OmegaConf.to_container(self.trainer_cfg, resolve=True)
        kwargs.update(default_root_dir=str(folder), callbacks=[*callbacks, *progress_callbacks(kwargs)],
                      logger=logger if logger else False,
                      num_sanity_val_steps=0, use_distributed_sampler=False, plugins=[AtomicCheckpointIO()])
        if schedule is not None:
            kwargs.update(max_epochs=schedule.epochs, gradient_clip_val=schedule.clip_norm,
                          accumulate_grad_batches=schedule.accumulate)
        return pl.Trainer(**kwargs)

    def selected_fit(self, tag: str, folder: Path, schedule: PhaseSchedule, stream: str, logger: Any) -> SelectedFit:
        """A Trainer for a fit scored as ``<tag>/dev/*`` and selected on ``<tag>/dev/<schedule.select>``: best
        weights by that score (``folder/best.ckpt``, weights only: all a later step needs), the full state after
        every epoch (``folder/last.ckpt``, to resume), the dev metrics at the best epoch, the random streams
        reseeded per epoch from ``(seed, stream, epoch)``, early stopping when the schedule asks for it."""
        monitor = f"{tag}/dev/{schedule.select}"
        scorer = Scorer(f"{tag}/dev")
        checkpoint = ModelCheckpoint(dirpath=str(folder), filename="best", monitor=monitor, mode="max", save_top_k=1,
                                     save_weights_only=True, auto_insert_metric_name=False,
                                     enable_version_counter=False)
        best = BestDevMetrics(scorer, monitor)
        callbacks: list[Callback] = [
            scorer, checkpoint,
            ModelCheckpoint(dirpath=str(folder), filename="last", monitor=None, save_top_k=1,
                            enable_version_counter=False),
            best, EpochSeeds(self.seed, stream)]
        if schedule.early_stopping_patience:
            callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=schedule.early_stopping_patience))
        return SelectedFit(self.trainer(folder, schedule, callbacks, logger), checkpoint, best)
