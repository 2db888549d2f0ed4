"""Every ``quality.*`` and ``postprocess.*`` setting checked before any text is read or encoded: a bad value
found after minutes of encoding wastes them, and one that silently changes a metric (a sample of 0) is worse."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from erc.data.names import FILTER_OPTIONS
from erc.errors import ConfigError

# The filter of this package (erc.data.names.FILTERS also names the LLM judge's, asked for with judge.filter).
PROBE_FILTER = "probe"


def _get(cfg: Any, key: str) -> Any:
    value = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, (DictConfig, dict)) else None
    return value


def _number(cfg: Any, key: str, ok: Callable[[float], bool], need: str, integer: bool = False,
            nullable: bool = False, prefix: str = "quality.") -> None:
    value = _get(cfg, key)
    if value is None and nullable:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise ConfigError(f"{prefix}{key} must be {need}{' or null' if nullable else ''}, got {value!r}")


def check_quality_config(quality: Any) -> None:
    """Raise :class:`ConfigError` naming the first ``quality.*`` key that cannot work."""
    encoder = _get(quality, "encoder")
    if not isinstance(encoder, str) or not encoder.strip():
        raise ConfigError(f"quality.encoder must be 'minilm', a model folder or a model name, got {encoder!r}")
    for key in ("enabled", "wandb", "probe.context"):
        if not isinstance(_get(quality, key), bool):
            raise ConfigError(f"quality.{key} must be true or false, got {_get(quality, key)!r}")
    _number(quality, "batch_size", lambda v: v >= 1, "a positive integer", integer=True)
    _number(quality, "threads", lambda v: v >= 1, "a positive integer", integer=True, nullable=True)
    _number(quality, "seed", lambda v: True, "an integer", integer=True)
    _number(quality, "probe.C", lambda v: v > 0, "a number > 0")
    _number(quality, "probe.max_iter", lambda v: v >= 1, "a positive integer", integer=True)
    _number(quality, "probe.bootstrap", lambda v: v >= 0, "an integer >= 0 (0: no intervals)", integer=True)
    _number(quality, "suspicious", lambda v: v >= 0, "an integer >= 0", integer=True)
    _number(quality, "diversity.sample_utterances", lambda v: v >= 1, "a positive integer", integer=True)
    _number(quality, "diversity.self_bleu_utterances", lambda v: v >= 2, "an integer >= 2", integer=True)
    _number(quality, "length_cap", lambda v: v >= 1, "a positive integer (characters)", integer=True, nullable=True)
    _number(quality, "distance.nearest_k", lambda v: v >= 1, "a positive integer", integer=True)
    _number(quality, "distance.sample", lambda v: v > int(_get(quality, "distance.nearest_k")),
            f"an integer > distance.nearest_k ({_get(quality, 'distance.nearest_k')})", integer=True)


def check_filter_config(postprocess: Any) -> None:
    """``postprocess.filter`` (null or a filter name) and ``postprocess.max_rejected`` in [0, 1)."""
    name = _get(postprocess, "filter")
    if name is not None and name != PROBE_FILTER:
        raise ConfigError(f"postprocess.filter must be null (no filtered set) or {PROBE_FILTER} (the judge's filter is "
                          f"{FILTER_OPTIONS['judge']}), "
                          f"got {name!r}")
    _number(postprocess, "max_rejected", lambda v: 0 <= v < 1, "a number in [0, 1)", prefix="postprocess.")
