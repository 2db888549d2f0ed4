"""One progress bar per training phase and one per test set, for a person to read.

Lightning's default bar draws a bar per epoch and another per validation run, and prints every metric logged for
the bar under its full name (``finetune/train/loss_step``, cut to fit and wrapped over several lines) plus the
logger's version. :class:`PhaseProgressBar` draws a single tqdm bar per phase on stderr, where the rest of the
console goes (:mod:`erc.console`): every training batch of every epoch, with its rate and time left, the epoch,
the running training loss and the dev score the phase selects on; then one bar per test set.
"""

from __future__ import annotations

import math
import sys
from typing import Any

import pytorch_lightning as pl
from pytorch_lightning.callbacks import ProgressBar
from tqdm.auto import tqdm


class PhaseProgressBar(ProgressBar):
    """The progress bar of every Trainer the runner makes (see :func:`progress_callbacks`)."""

    def __init__(self) -> None:
        super().__init__()
        self._enabled = True
        self._bar: Any = None

    def disable(self) -> None:
        self._enabled = False

    def enable(self) -> None:
        self._enabled = True

    @property
    def is_enabled(self) -> bool:
        return self._enabled

    def _open(self, label: str, total: float, initial: int = 0) -> None:
        self._close()
        self._bar = tqdm(total=total if math.isfinite(total) else None, initial=initial, desc=label, unit="batch",
                         dynamic_ncols=True, file=sys.stderr, disable=not self._enabled, leave=True)

    def _close(self) -> None:
        if self._bar is not None:
            self._bar.close()
            self._bar = None

    # ---- training: one bar over every epoch ----------------------------------------------------------
    def on_train_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        per_epoch = self.total_train_batches
        epochs = trainer.max_epochs if trainer.max_epochs and trainer.max_epochs > 0 else math.inf
        done = trainer.current_epoch * per_epoch if math.isfinite(per_epoch) else 0   # a resumed phase
        self._open(phase_label(trainer), per_epoch * epochs, int(done))

    def on_train_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                           batch_idx: int) -> None:
        if self._bar is not None:
            self._bar.set_postfix(train_postfix(trainer), refresh=False)
            self._bar.update(1)

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if self._bar is not None and not trainer.sanity_checking:
            self._bar.set_postfix(train_postfix(trainer))

    def on_train_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    # ---- testing: one bar per test set ---------------------------------------------------------------
    def on_test_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        total = sum(trainer.num_test_batches) if trainer.num_test_batches else math.inf
        self._open(test_set_label(trainer, pl_module), total)

    def on_test_batch_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule, outputs: Any, batch: Any,
                          batch_idx: int, dataloader_idx: int = 0) -> None:
        if self._bar is not None:
            self._bar.update(1)

    def on_test_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        self._close()

    def on_exception(self, trainer: pl.Trainer, pl_module: pl.LightningModule, exception: BaseException) -> None:
        self._close()


def phase_label(trainer: pl.Trainer) -> str:
    """The fit's name, from the dev score it selects on (``pretrain/dev/wf1`` -> ``pretrain``; EmoOne's teacher
    ``teacher/dev/...`` -> ``teacher``); ``train`` for a fit without model selection."""
    monitor = getattr(trainer.checkpoint_callback, "monitor", None)
    return monitor.split("/dev/")[0] if monitor else "train"


def test_set_label(trainer: pl.Trainer, pl_module: pl.LightningModule) -> str:
    """The test set's name as its metrics are prefixed (``test/meld_org``): the module's ``eval_prefix``, else the
    ``prefix`` of the trainer's scoring callback, else ``test``."""
    prefix = getattr(pl_module, "eval_prefix", None)
    if prefix is None:
        prefix = next((cb.prefix for cb in trainer.callbacks if isinstance(getattr(cb, "prefix", None), str)), None)
    return str(prefix or "test")


def train_postfix(trainer: pl.Trainer) -> dict[str, str]:
    """Epoch, running training loss and the selection score of the last dev run, under short names."""
    items = {"epoch": f"{trainer.current_epoch + 1}/{trainer.max_epochs}"}
    loss = next((value for key, value in trainer.progress_bar_metrics.items() if key.endswith("/train/loss_step")),
                None)
    if loss is not None:
        items["loss"] = f"{float(loss):.3f}"
    monitor = getattr(trainer.checkpoint_callback, "monitor", None)
    if monitor and monitor in trainer.callback_metrics:
        items[f"dev_{monitor.rsplit('/', 1)[-1]}"] = f"{float(trainer.callback_metrics[monitor]):.3f}"
    return items


def progress_callbacks(trainer_kwargs: dict[str, Any]) -> list[ProgressBar]:
    """``[PhaseProgressBar()]`` for a Trainer built from ``trainer_kwargs`` (``conf/trainer``), none when its
    ``enable_progress_bar`` is false (Lightning refuses a progress bar callback then)."""
    return [PhaseProgressBar()] if trainer_kwargs.get("enable_progress_bar", True) else []
