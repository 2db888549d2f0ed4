"""The whole contract between an ERC classifier and the training runner; a new classifier needs only this file.

A classifier (``erc/models/<name>.py``) subclasses :class:`ERCClassifier` and implements its four abstract methods;
phases, batching, metrics, checkpoints, resuming, W&B and results.json are the runner's (``erc/training``, which
depends on this module and on ``conf/classifier/<name>.yaml``'s ``_target_``; nothing here imports it):

``encode(dialogues) -> list[sample]``
    Dialogues into training samples, once per dataset split (tokenize here, never per step). A sample is whatever
    the classifier needs: CoMPM and EmoOne make one per target utterance, TODKAT one per dialogue. Per-sample
    extras (EmoOne's gray label) live on the sample.
``sample_length(sample) -> int``
    A cost proxy (tokens) for length bucketing: batches hold samples of similar length.
``collate(samples) -> dict``
    One batch (dynamic padding, attention masks). It holds ``"labels"``: a LongTensor of the gold class ids of the
    N predictions the batch yields, in the order ``forward`` returns them.
``forward(batch) -> Tensor``
    Logits (N, C), C = ``len(self.labels)``, aligned with ``batch["labels"]``.

Optional overrides: :meth:`ERCClassifier.loss` (default cross-entropy; EmoOne adds its gray term),
:meth:`ERCClassifier.parameter_groups` (what gets weight decay or its own learning rate: TODKAT's topic model) and
:meth:`ERCClassifier.before_fit` (work before a phase is fitted, with a :class:`FitContext`: EmoOne trains and caches
its teacher there).

How the runner drives a classifier, all through methods (it sets no attribute on one, so everything a classifier
depends on is in this file's signatures):

1. it builds it with ``hydra.utils.instantiate`` (keyword options from the config, plus ``benchmark``);
2. before each phase it calls :meth:`ERCClassifier.configure_phase` with the phase's name and :class:`PhaseSchedule`:
   the name prefixes the logged training loss (``pretrain/train/loss``), the schedule makes the optimizer;
3. it calls ``before_fit(ctx)``, then fits with Lightning;
4. after every validation and test epoch, a callback the runner owns takes the gold and predicted ids with
   :meth:`ERCClassifier.take_predictions` and scores and logs them under the runner's own names
   (``pretrain/dev/wf1``, ``test/meld_org/wf1``): a classifier never sees metric names or metrics.

Class ids are positions in ``label_set(benchmark)``, the benchmark's fixed class order. A worked example of a new
classifier, step by step: ``docs/adding-a-classifier.md``.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, runtime_checkable

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from erc.data import Dialogue, label_set


@dataclass
class PhaseSchedule:
    """Settings of one training phase (``conf/schedule``; :func:`erc.training.schedule.phase_schedule` builds one
    per phase and checks every value). The classifier's optimizer reads the AdamW and warmup fields; the runner
    reads the rest (epochs, batch sizes, clipping, selection). ``batch_size`` counts samples (a target utterance for
    CoMPM/EmoOne, a dialogue for TODKAT). Warmup is ``warmup_epochs`` epochs (CoMPM: 1) or, when that is null, the
    fraction ``warmup_ratio`` of all steps (TODKAT: 0.5); the LR then decays linearly to 0."""

    epochs: int = 1
    batch_size: int = 8
    eval_batch_size: int = 32
    lr: float = 1e-5
    eps: float = 1e-8
    betas: tuple[float, float] = (0.9, 0.999)
    weight_decay: float = 0.01
    no_decay: list[str] = field(default_factory=list)
    warmup_epochs: float | None = 1.0
    warmup_ratio: float = 0.0
    clip_norm: float | None = None
    accumulate: int = 1
    select: str = "wf1"
    early_stopping_patience: int | None = None
    bucket_batches: int = 50

    def warmup_steps(self, total_steps: int) -> int:
        """Warmup length in optimizer steps for a phase of ``total_steps`` steps."""
        if self.warmup_epochs is not None:
            return min(total_steps, round(self.warmup_epochs * total_steps / max(self.epochs, 1)))
        return min(total_steps, math.ceil(self.warmup_ratio * total_steps))


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 over ``warmup`` steps, then linear decay to 0 at ``total`` (HF's
    ``get_linear_schedule_with_warmup``, which both CoMPM and TODKAT use)."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def fused_adamw(precision: str, parameters: Iterable[torch.nn.Parameter]) -> bool:
    """Whether AdamW should be its fused kernel: one pass over all parameters instead of a loop of small ops, which
    dominates a step of a large model on a CPU (docs/performance.md). Only in full precision (``32-true``, ``64-true``,
    ``bf16-true``...): under ``*-mixed`` Lightning refuses gradient clipping with an optimizer that unscales
    gradients itself, which the fused one does; and only where torch has the kernel (CPU, CUDA)."""
    return not str(precision).endswith("mixed") and all(
        p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in parameters)


@dataclass(frozen=True)
class Predictions:
    """Gold and predicted class ids of one evaluation (every DDP rank's batches), in batch order."""

    y_true: list[int]
    y_pred: list[int]


@runtime_checkable
class FitContext(Protocol):
    """What :meth:`ERCClassifier.before_fit` may ask of the runner about the phase about to be fitted.

    The runner implements it (:class:`erc.training.phases.PhaseContext`); a classifier never builds Trainers,
    DataModules or devices itself, so extra models it needs (EmoOne's teacher) are trained, checkpointed, resumed
    and run on the phase's hardware exactly like the phase's own model."""

    @property
    def phase(self) -> str:
        """``pretrain`` or ``finetune``."""

    @property
    def work_dir(self) -> Path:
        """This phase's checkpoint folder (``<checkpoints>/<job>/<phase>``), for files a classifier caches."""

    @property
    def resume(self) -> bool:
        """Whether the job reuses what earlier runs left (``resume=true``); false: start over, ignore caches."""

    def train_samples(self) -> list[Any]:
        """This phase's training samples as this classifier encoded them: the very objects it will be trained on,
        so what ``before_fit`` attaches to them (EmoOne's gray labels) reaches the training batches."""

    def fit_auxiliary(self, model: ERCClassifier, tag: str) -> ERCClassifier:
        """Train ``model`` on this phase's train split with the phase's schedule, selecting on its dev split
        (``<tag>/dev/<select>``), with checkpoints in ``work_dir/<tag>/`` (``best.ckpt``; ``last.ckpt`` to resume an
        interrupted run); returns it with the selected weights loaded, on the CPU."""

    def predict(self, model: ERCClassifier, samples: list[Any]) -> torch.Tensor:
        """``model``'s class probabilities for every sample (N, C), on the CPU: :meth:`ERCClassifier.probabilities`
        on the phase's device, over all samples on every DDP rank (not a rank's shard)."""


class ERCClassifier(pl.LightningModule, ABC):
    """Shared base of the ERC classifiers (see the module docstring for what a subclass provides)."""

    def __init__(self, benchmark: str) -> None:
        super().__init__()
        self.benchmark = benchmark
        self.labels: list[str] = label_set(benchmark)
        self.num_labels = len(self.labels)
        self._phase: str | None = None
        self._schedule: PhaseSchedule | None = None
        self._eval_true: list[torch.Tensor] = []
        self._eval_pred: list[torch.Tensor] = []

    # ---- what a classifier provides -------------------------------------------------------------
    @abstractmethod
    def encode(self, dialogues: list[Dialogue]) -> list[Any]:
        """Samples of ``dialogues`` (see the module docstring)."""

    @abstractmethod
    def sample_length(self, sample: Any) -> int:
        """A sample's cost in tokens, for length bucketing."""

    @abstractmethod
    def collate(self, samples: list[Any]) -> dict[str, Any]:
        """One batch, holding ``"labels"`` (N,)."""

    @abstractmethod
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        """Logits (N, C) aligned with ``batch["labels"]``."""

    def loss(self, batch: dict[str, Any], logits: torch.Tensor) -> torch.Tensor:
        """The training objective (cross-entropy on the gold labels)."""
        return F.cross_entropy(logits.float(), batch["labels"])

    def before_fit(self, ctx: FitContext) -> None:
        """Called by the runner before each phase is fitted (after :meth:`configure_phase`)."""

    def parameter_groups(self, schedule: PhaseSchedule) -> list[dict[str, Any]]:
        """Trainable parameters in two groups: with weight decay, and without (names matching
        ``schedule.no_decay``, e.g. ``bias`` and ``LayerNorm.weight`` for TODKAT; CoMPM decays all)."""
        decay, no_decay = [], []
        for name, param in self.named_parameters():
            if not param.requires_grad:
                continue
            (no_decay if any(key in name for key in schedule.no_decay) else decay).append(param)
        groups = [{"params": decay, "weight_decay": schedule.weight_decay}]
        if no_decay:
            groups.append({"params": no_decay, "weight_decay": 0.0})
        return groups

    # ---- what the runner calls ------------------------------------------------------------------
    def configure_phase(self, phase: str, schedule: PhaseSchedule) -> None:
        """Set up the next fit: ``phase`` names its logged training loss (``<phase>/train/loss``), ``schedule``
        makes its optimizer and LR schedule. One explicit call instead of attributes set from outside, so a
        classifier cannot be fitted with a stale or missing schedule."""
        self._phase, self._schedule = phase, schedule

    @property
    def phase(self) -> str:
        """The phase being fitted (see :meth:`configure_phase`)."""
        if self._phase is None:
            raise RuntimeError(f"{type(self).__name__}: configure_phase(phase, schedule) was not called before fitting")
        return self._phase

    @property
    def schedule(self) -> PhaseSchedule:
        """The schedule of the phase being fitted (see :meth:`configure_phase`)."""
        if self._schedule is None:
            raise RuntimeError(f"{type(self).__name__}: configure_phase(phase, schedule) was not called before fitting")
        return self._schedule

    def take_predictions(self) -> Predictions:
        """Gold and predicted ids of the evaluation epoch that just ended, from every DDP rank (each rank saw
        disjoint batches), and forget them. Every rank must call it (it gathers)."""
        y_true = torch.cat(self._eval_true).tolist() if self._eval_true else []
        y_pred = torch.cat(self._eval_pred).tolist() if self._eval_pred else []
        self._eval_true, self._eval_pred = [], []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, (y_true, y_pred))
            y_true = [y for part in parts for y in part[0]]
            y_pred = [y for part in parts for y in part[1]]
        return Predictions(y_true, y_pred)

    @torch.no_grad()
    def probabilities(self, samples: list[Any], batches: Iterable[list[int]]) -> torch.Tensor:
        """Softmax of this model's logits for every sample, ``(len(samples), C)`` on the CPU, in eval mode (dropout
        off; the training mode is restored after). ``batches`` yields lists of sample indices covering them all."""
        was_training = self.training
        self.eval()
        probs = torch.empty(len(samples), self.num_labels)
        for indices in batches:
            batch = self.collate([samples[i] for i in indices])
            batch = {k: v.to(self.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            probs[indices] = torch.softmax(self(batch).float(), dim=-1).cpu()
        self.train(was_training)
        return probs

    # ---- Lightning hooks: shared training and evaluation ----------------------------------------
    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        logits = self(batch)
        loss = self.loss(batch, logits)
        n = int(batch["labels"].numel())
        self.log(f"{self.phase}/train/loss", loss, on_step=True, on_epoch=True, prog_bar=True, batch_size=n)
        return loss

    def _collect(self, batch: dict[str, Any]) -> None:
        logits = self(batch)
        self._eval_true.append(batch["labels"].detach().cpu())
        self._eval_pred.append(logits.argmax(-1).detach().cpu())

    def validation_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect(batch)

    def test_step(self, batch: dict[str, Any], batch_idx: int) -> None:
        self._collect(batch)

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.schedule
        optimizer = torch.optim.AdamW(self.parameter_groups(s), lr=s.lr, eps=s.eps, betas=s.betas,
                                      fused=fused_adamw(self.trainer.precision, self.parameters()))
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = linear_warmup_decay(optimizer, s.warmup_steps(total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
