"""The base LightningModule every ERC classifier extends: shared training, evaluation, metrics and optimizer.

A classifier (``erc/models/<name>.py``) subclasses :class:`ERCClassifier` and provides four things;
everything else (phases, batching, metrics, logging, checkpoints, W&B, results.json) is the runner's:

``encode(dialogues) -> list[sample]``
    Turn dialogues into training samples, once per dataset split (tokenize here, never per step).
    A sample is whatever the classifier needs: CoMPM and EmoOne make one per target utterance (with a
    reference to its tokenized dialogue), TODKAT one per dialogue. Per-sample extras (EmoOne's
    utterance sentiment, its cached teacher distribution) live on the sample.
``sample_length(sample) -> int``
    A cost proxy (tokens) for length bucketing: batches hold samples of similar length.
``collate(samples) -> dict``
    Build one batch (dynamic padding, attention masks). It must hold ``"labels"``: a LongTensor of the
    gold class ids of the N predictions the batch yields, in the order ``forward`` returns them.
``forward(batch) -> Tensor``
    Logits of shape (N, C), C = ``len(self.labels)``, aligned with ``batch["labels"]``.

Optional overrides: ``loss(batch, logits)`` (default cross-entropy; EmoOne adds its gray term),
``before_fit(ctx)`` (called before each phase is fitted, e.g. EmoOne's teacher pre-pass; ``ctx`` is a
:class:`erc.training.phases.FitContext`), ``parameter_groups(schedule)`` (which parameters are trained and
which get weight decay; CoMPM(f) leaves the PM out), ``extra_metrics()``.

Class ids are positions in ``label_set(benchmark)``; metric names are ``<phase>/<split>/<metric>``
(``pretrain/dev/wf1``, ``finetune/train/loss``, ``test/meld_org/wf1``): the runner sets
``self.phase`` and ``self.eval_prefix`` before each fit and test.
"""

from __future__ import annotations

from typing import Any

import pytorch_lightning as pl
import torch
import torch.nn.functional as F

from erc.data import Dialogue, label_set
from erc.training.metrics import classification_metrics
from erc.training.schedule import PhaseSchedule, linear_warmup_decay


class ERCClassifier(pl.LightningModule):
    """Shared base of the ERC classifiers (see the module docstring for what a subclass provides)."""

    def __init__(self, benchmark: str) -> None:
        super().__init__()
        self.benchmark = benchmark
        self.labels: list[str] = label_set(benchmark)
        self.num_labels = len(self.labels)
        self.phase = "finetune"
        self.eval_prefix = "finetune/dev"
        self.schedule = PhaseSchedule()
        self.last_eval: dict[str, Any] = {}
        self._eval_true: list[torch.Tensor] = []
        self._eval_pred: list[torch.Tensor] = []

    # ---- what a classifier provides -------------------------------------------------------------
    def encode(self, dialogues: list[Dialogue]) -> list[Any]:
        raise NotImplementedError

    def sample_length(self, sample: Any) -> int:
        raise NotImplementedError

    def collate(self, samples: list[Any]) -> dict[str, Any]:
        raise NotImplementedError

    def loss(self, batch: dict[str, Any], logits: torch.Tensor) -> torch.Tensor:
        return F.cross_entropy(logits.float(), batch["labels"])

    def before_fit(self, ctx: Any) -> None:
        """Hook run by the runner before fitting a phase (``ctx``: :class:`erc.training.phases.FitContext`)."""

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

    # ---- shared training and evaluation -------------------------------------------------------
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

    def _gathered(self) -> tuple[list[int], list[int]]:
        """Gold and predicted ids of this evaluation, from every DDP rank (each rank saw disjoint batches)."""
        y_true = torch.cat(self._eval_true).tolist() if self._eval_true else []
        y_pred = torch.cat(self._eval_pred).tolist() if self._eval_pred else []
        self._eval_true, self._eval_pred = [], []
        if torch.distributed.is_available() and torch.distributed.is_initialized():
            parts: list[Any] = [None] * torch.distributed.get_world_size()
            torch.distributed.all_gather_object(parts, (y_true, y_pred))
            y_true = [y for part in parts for y in part[0]]
            y_pred = [y for part in parts for y in part[1]]
        return y_true, y_pred

    def _finish_eval(self) -> None:
        y_true, y_pred = self._gathered()
        metrics = classification_metrics(y_true, y_pred, self.labels)
        scalars = {f"{self.eval_prefix}/{k}": v for k, v in metrics.items() if k != "confusion"}
        # Every rank holds the same gathered figures; sync_dist only keeps Lightning's DDP bookkeeping quiet.
        self.log_dict(scalars, batch_size=len(y_true), sync_dist=self.trainer.world_size > 1)
        self.last_eval = {"prefix": self.eval_prefix, "metrics": metrics, "y_true": y_true, "y_pred": y_pred}

    def on_validation_epoch_end(self) -> None:
        if not self.trainer.sanity_checking:
            self._finish_eval()
        self._eval_true, self._eval_pred = [], []

    def on_test_epoch_end(self) -> None:
        self._finish_eval()

    def configure_optimizers(self) -> dict[str, Any]:
        s = self.schedule
        optimizer = torch.optim.AdamW(self.parameter_groups(s), lr=s.lr, eps=s.eps, betas=s.betas)
        total = max(1, int(self.trainer.estimated_stepping_batches))
        scheduler = linear_warmup_decay(optimizer, s.warmup_steps(total), total)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": scheduler, "interval": "step"}}
