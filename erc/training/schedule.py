"""One training phase's settings from ``conf/schedule``: a :class:`erc.models.base.PhaseSchedule`, checked.

``conf/schedule/<name>.yaml`` has shared keys and a ``pretrain:`` and ``finetune:`` block that override
them per phase; :func:`phase_schedule` merges the two into a :class:`PhaseSchedule`, checking every value.
The dataclass itself is part of the classifier contract (:mod:`erc.models.base`): a classifier's optimizer reads it.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import fields
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erc.errors import ConfigError
from erc.models.base import PhaseSchedule

PHASES: tuple[str, ...] = ("pretrain", "finetune")
SELECT_METRICS: tuple[str, ...] = ("wf1", "acc", "mf1")


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


# What each PhaseSchedule field accepts: (test, description for the error message).
_CHECKS: dict[str, tuple[Callable[[Any], bool], str]] = {
    "epochs": (lambda v: _integer(v) and v >= 1, "a positive integer"),
    "batch_size": (lambda v: _integer(v) and v >= 1, "a positive integer"),
    "eval_batch_size": (lambda v: _integer(v) and v >= 1, "a positive integer"),
    "lr": (lambda v: _number(v) and v > 0, "a positive number"),
    "eps": (lambda v: _number(v) and v > 0, "a positive number"),
    "betas": (lambda v: isinstance(v, (list, tuple)) and len(v) == 2 and all(_number(b) and 0 <= b < 1 for b in v),
              "two numbers in [0, 1), e.g. [0.9, 0.999]"),
    "weight_decay": (lambda v: _number(v) and v >= 0, "a number >= 0"),
    "no_decay": (lambda v: isinstance(v, (list, tuple)) and all(isinstance(x, str) for x in v),
                 "a list of parameter-name substrings"),
    "warmup_epochs": (lambda v: v is None or (_number(v) and v >= 0), "a number >= 0 or null"),
    "warmup_ratio": (lambda v: _number(v) and 0 <= v <= 1, "a number in [0, 1]"),
    "clip_norm": (lambda v: v is None or (_number(v) and v > 0), "a positive number or null"),
    "accumulate": (lambda v: _integer(v) and v >= 1, "a positive integer"),
    "select": (lambda v: v in SELECT_METRICS, f"one of {', '.join(SELECT_METRICS)}"),
    "early_stopping_patience": (lambda v: v is None or (_integer(v) and v >= 1), "a positive integer or null"),
    "bucket_batches": (lambda v: _integer(v) and v >= 1, "a positive integer"),
}


def phase_schedule(schedule: DictConfig | dict, phase: str) -> PhaseSchedule:
    """Merge the shared keys of ``schedule`` with its ``<phase>`` block into a :class:`PhaseSchedule`.

    A phase block's null means "the shared value" (``conf/schedule/_phase.yaml`` lists every key as null,
    so ``schedule.finetune.lr=5e-6`` needs no ``+``). Every value is checked: a :class:`ConfigError` names
    the key it came from (``schedule.finetune.lr`` or ``schedule.lr``) and what it accepts."""
    if phase not in PHASES:
        raise ValueError(f"unknown phase {phase!r}; valid: {PHASES}")
    raw: dict[str, Any] = OmegaConf.to_container(schedule, resolve=True) if isinstance(schedule, DictConfig) \
        else dict(schedule)
    merged = {k: v for k, v in raw.items() if k not in PHASES and k != "name"}
    origin = {k: f"schedule.{k}" for k in merged}
    for key, value in (raw.get(phase) or {}).items():
        if value is not None:
            merged[key], origin[key] = value, f"schedule.{phase}.{key}"
    known = {f.name for f in fields(PhaseSchedule)}
    unknown = sorted(set(merged) - known)
    if unknown:
        raise ConfigError(f"schedule: unknown key(s) {', '.join(origin[k] for k in unknown)}; valid: "
                          f"{', '.join(sorted(known))}")
    for key, value in merged.items():
        test, expected = _CHECKS[key]
        if not test(value):
            raise ConfigError(f"{origin[key]} must be {expected}, got {value!r}")
    if "betas" in merged:
        merged["betas"] = tuple(merged["betas"])
    return PhaseSchedule(**merged)
