"""One training phase's optimisation settings (``conf/schedule``) and the optimizer/LR schedule they make.

``conf/schedule/<name>.yaml`` has shared keys and a ``pretrain:`` and ``finetune:`` block that override
them per phase; :func:`phase_schedule` merges the two into a :class:`PhaseSchedule`.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field, fields
from typing import Any

import torch
from omegaconf import DictConfig, OmegaConf

PHASES: tuple[str, ...] = ("pretrain", "finetune")


@dataclass
class PhaseSchedule:
    """Settings of one phase. ``batch_size`` counts samples (a target utterance for CoMPM/EmoOne, a
    dialogue for TODKAT). Warmup is ``warmup_epochs`` epochs (CoMPM: 1) or, when that is null, the
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


def phase_schedule(schedule: DictConfig | dict, phase: str) -> PhaseSchedule:
    """Merge the shared keys of ``schedule`` with its ``<phase>`` block into a :class:`PhaseSchedule`."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; valid: {PHASES}")
    raw: dict[str, Any] = OmegaConf.to_container(schedule, resolve=True) if isinstance(schedule, DictConfig) \
        else dict(schedule)
    merged = {k: v for k, v in raw.items() if k not in PHASES and k != "name"}
    merged.update(raw.get(phase) or {})
    known = {f.name for f in fields(PhaseSchedule)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ValueError(f"schedule: unknown key(s) {unknown}; valid: {sorted(known)}")
    if "betas" in merged:
        merged["betas"] = tuple(merged["betas"])
    return PhaseSchedule(**merged)


def linear_warmup_decay(optimizer: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warmup from 0 over ``warmup`` steps, then linear decay to 0 at ``total`` (HF's
    ``get_linear_schedule_with_warmup``, which both CoMPM and TODKAT use)."""

    def factor(step: int) -> float:
        if step < warmup:
            return step / max(1, warmup)
        return max(0.0, (total - step) / max(1, total - warmup))

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)
