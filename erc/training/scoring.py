"""Scoring evaluations: the runner's callbacks that turn a classifier's predictions into named, logged metrics.

A classifier only collects gold and predicted ids (:meth:`erc.models.base.ERCClassifier.take_predictions`); the
names (``<phase>/dev/<metric>``, ``<phase>/test/<benchmark>_<source>/<metric>``), the metrics and the record of the
best dev epoch belong to the runner, so they live here and never on the classifier.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import Callback

from erc.models.base import ERCClassifier
from erc.training.metrics import classification_metrics


@dataclass(frozen=True)
class Evaluation:
    """One scored evaluation: its name prefix, :func:`classification_metrics` (confusion included), the ids."""

    prefix: str
    metrics: dict[str, Any]
    y_true: list[int]
    y_pred: list[int]

    def scalars(self) -> dict[str, float]:
        """``<prefix>/<metric>`` for every scalar metric (the confusion matrix left out)."""
        return {f"{self.prefix}/{k}": v for k, v in self.metrics.items() if k != "confusion"}


class Scorer(Callback):
    """Scores every validation and test epoch under ``prefix`` and logs the scalars through the module (so
    ``ModelCheckpoint``, ``EarlyStopping`` and the W&B logger see them); ``latest`` is the last evaluation.

    ``prefix`` is the runner's to set: ``<phase>/dev`` for a fit, the test set's name before each ``trainer.test``."""

    def __init__(self, prefix: str) -> None:
        self.prefix = prefix
        self.latest: Evaluation | None = None

    def _score(self, trainer: pl.Trainer, module: ERCClassifier) -> None:
        predictions = module.take_predictions()        # every rank gathers, also when the result is discarded
        if trainer.sanity_checking:
            return
        metrics = classification_metrics(predictions.y_true, predictions.y_pred, module.labels)
        self.latest = Evaluation(self.prefix, metrics, predictions.y_true, predictions.y_pred)
        # Every rank holds the same gathered figures; sync_dist only keeps Lightning's DDP bookkeeping quiet.
        module.log_dict(self.latest.scalars(), batch_size=len(predictions.y_true), sync_dist=trainer.world_size > 1)

    def on_validation_epoch_end(self, trainer: pl.Trainer, module: ERCClassifier) -> None:
        self._score(trainer, module)

    def on_test_epoch_end(self, trainer: pl.Trainer, module: ERCClassifier) -> None:
        self._score(trainer, module)


class BestDevMetrics(Callback):
    """Keeps every dev metric of the epoch with the best monitored score (saved in checkpoints, so it
    survives a resume): results.json reports dev figures of the selected model, not of the last epoch."""

    def __init__(self, scorer: Scorer, monitor: str) -> None:
        self.scorer, self.monitor, self.best_score, self.best = scorer, monitor, float("-inf"), {}

    def on_validation_end(self, trainer: pl.Trainer, module: ERCClassifier) -> None:
        # on_validation_end runs after every on_validation_epoch_end (where the scorer scored) and before
        # ModelCheckpoint saves, so this state is in the checkpoint of the same epoch.
        latest = self.scorer.latest
        if trainer.sanity_checking or latest is None:
            return
        score = latest.metrics.get(self.monitor.rsplit("/", 1)[-1])
        if score is not None and score > self.best_score:
            self.best_score = score
            self.best = {"epoch": trainer.current_epoch, **latest.metrics}

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best = state["best_score"], state["best"]
