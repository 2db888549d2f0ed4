"""What makes a resumed job the same job: random streams that depend only on where training is, checkpoints
that are whole or absent, and unreadable checkpoints set aside instead of failing every requeue.

Random streams. At the start of every training epoch, Python's, numpy's and torch's (every CUDA device's
too) generators are reseeded from ``(seed, stream, epoch)`` (``stream``: ``pretrain``, ``finetune``,
``finetune/teacher``, ...); the classifier's initial weights come from ``(seed, "init")`` and the start
of each phase from ``(seed, phase, "start")``. What an epoch draws (dropout masks, a teacher's initial
weights) thus never depends on what ran before it in the process: a run resumed at epoch 3 of
fine-tuning, after its pretraining was reused from an earlier process, draws exactly what the
uninterrupted run drew. DataLoaders get their own seeded generator (:mod:`erc.training.data`): making an
iterator draws a worker seed, and Lightning makes a resumed run's first iterator before the epoch's
reseed but an uninterrupted run's after it, which would shift every later draw by one. The data order is
a function of ``(seed, epoch)``, drawn at an epoch's first batch. Checkpoints are written at epoch ends
only, so the generators' states at that moment are never needed again: the epoch number, which the
checkpoint carries, is all a resumed run needs to continue every stream (so they are not stored).

Checkpoints are written to a temporary file and renamed (:class:`AtomicCheckpointIO`), so a kill leaves
the previous ``last.ckpt`` or the new one, never half of one. A ``last.ckpt`` that cannot be read
anyway (copied half-way, written by an older version) is moved aside by :func:`set_aside` and its phase
restarts: training is deterministic, so the results are those of an uninterrupted run, at the cost of
the epochs lost.
"""

from __future__ import annotations

import hashlib
import logging
import random
from pathlib import Path
from typing import Any

import numpy as np
import pytorch_lightning as pl
import torch
from pytorch_lightning.callbacks import Callback
from pytorch_lightning.plugins.io import TorchCheckpointIO

from erc.io import move_aside, write_atomic

log = logging.getLogger(__name__)


def stream_seed(seed: int, *where: str | int) -> int:
    """A 32-bit seed for the random stream at ``where`` (e.g. ``"finetune", 3``) of a job seeded ``seed``;
    stable across processes and Python versions (no ``hash()``)."""
    digest = hashlib.sha256(repr((int(seed), *where)).encode()).digest()
    return int.from_bytes(digest[:4], "little")


def seed_everything_at(seed: int, *where: str | int) -> None:
    """Reseed Python, numpy and torch (CPU and every CUDA device) for the stream at ``where``."""
    value = stream_seed(seed, *where)
    random.seed(value)
    np.random.seed(value)
    torch.manual_seed(value)              # also seeds every CUDA device


def loader_generator(seed: int, *where: str | int) -> torch.Generator:
    """A DataLoader's own generator (worker seeds), so creating its iterator leaves the global stream alone."""
    return torch.Generator().manual_seed(stream_seed(seed, "loader", *where))


class EpochSeeds(Callback):
    """Reseeds every generator at the start of each training epoch from ``(seed, stream, epoch)``."""

    def __init__(self, seed: int, stream: str) -> None:
        self.seed, self.stream = int(seed), stream

    def on_train_epoch_start(self, trainer: pl.Trainer, module: pl.LightningModule) -> None:
        seed_everything_at(self.seed, self.stream, trainer.current_epoch)


class AtomicCheckpointIO(TorchCheckpointIO):
    """Lightning's checkpoint writer, writing through :func:`erc.io.write_atomic` (temporary file + rename)."""

    def save_checkpoint(self, checkpoint: dict[str, Any], path: Any, storage_options: Any | None = None) -> None:
        if storage_options is not None:
            raise TypeError(f"{type(self).__name__} does not take storage_options")
        write_atomic(path, lambda handle: torch.save(checkpoint, handle), binary=True)


def set_aside(path: Path, reason: str) -> Path:
    """Move the unreadable checkpoint ``path`` to ``<path>.corrupt`` (replacing an older one), warning with
    the file and ``reason``; returns where it went."""
    aside = move_aside(path)
    log.warning("%s: cannot resume from it: %s; moved to %s, this phase restarts from its first epoch (the "
                "result is the same: training is deterministic)", path, reason, aside)
    return aside


def completed_epochs(path: Path) -> int:
    """How many epochs the full checkpoint at ``path`` has finished (storages are memory-mapped, not read)."""
    return int(torch.load(path, map_location="cpu", mmap=True, weights_only=False)["epoch"]) + 1
