"""Where the runner meets a classifier: building it from its config group, and :class:`PhaseContext`, the runner's
side of the :class:`erc.models.base.FitContext` a classifier's ``before_fit`` receives."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import hydra
import torch
from omegaconf import DictConfig, OmegaConf

from erc.models.base import ERCClassifier, PhaseSchedule
from erc.training.data import BucketBatchSampler, ERCDataModule
from erc.training.progress_store import ProgressStore
from erc.training.trainers import TrainerFactory

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
class PhaseContext:
    """The :class:`erc.models.base.FitContext` of one phase: auxiliary models are fitted like the phase itself.

    ``work_dir`` is the phase's checkpoint folder, ``datamodule`` its data encoded by the classifier being fitted,
    ``device`` where the phase trains (``predict`` runs there), ``trainers`` and ``progress`` the job's trainer
    factory and progress store (an auxiliary fit's resume is recorded as ``<phase>/<tag>``)."""

    phase: str
    work_dir: Path
    resume: bool
    schedule: PhaseSchedule
    datamodule: ERCDataModule
    device: torch.device
    trainers: TrainerFactory
    progress: ProgressStore

    def train_samples(self) -> list[Any]:
        self.datamodule.setup()
        return self.datamodule.train_samples

    def fit_auxiliary(self, model: ERCClassifier, tag: str) -> ERCClassifier:
        """Fit ``model`` as ``<phase>/<tag>``: the phase's schedule and data, selection on ``<tag>/dev``, checkpoints
        in ``work_dir/<tag>/``, continued from its ``last.ckpt`` when a run was interrupted, its random streams
        reseeded per epoch from ``(seed, "<phase>/<tag>", epoch)``; no logger (only the phase's model is reported)."""
        folder = self.work_dir / tag
        step = f"{self.phase}/{tag}"
        model.configure_phase(tag, self.schedule)
        fit = self.trainers.selected_fit(tag, folder, self.schedule, stream=step, logger=None)
        resume_from = self.progress.resume_point(step, folder / "last.ckpt", self.resume)
        fit.trainer.fit(model, datamodule=self.datamodule.for_classifier(model), ckpt_path=resume_from)
        if fit.checkpoint.best_model_path:
            state = torch.load(fit.checkpoint.best_model_path, map_location="cpu", weights_only=False)["state_dict"]
            model.load_state_dict(state)
        return model.cpu()

    def predict(self, model: ERCClassifier, samples: list[Any]) -> torch.Tensor:
        # Every sample on every rank (not the rank's shard): each DDP rank needs all of them (EmoOne's gray labels).
        batches = BucketBatchSampler([model.sample_length(s) for s in samples], self.schedule.eval_batch_size,
                                     shuffle=False)
        probs = model.to(self.device).probabilities(samples, batches)
        model.cpu()
        return probs
