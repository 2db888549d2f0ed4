"""Every ``quality.*`` and ``postprocess.*`` setting checked before any text is read or encoded: a bad value
found after minutes of encoding wastes them, and one that silently changes a metric (a sample of 0) is worse."""

from __future__ import annotations

from functools import partial
from typing import Any

from omegaconf import DictConfig

from erc.checks import check_number, config_value
from erc.data.names import FILTER_OPTIONS
from erc.errors import ConfigError

# The filter of this package (erc.data.names.FILTERS also names the LLM judge's, asked for with judge.filter).
PROBE_FILTER = "probe"


def check_quality_config(quality: Any) -> None:
    """Raise :class:`ConfigError` naming the first ``quality.*`` key that cannot work."""
    number = partial(check_number, quality, prefix="quality.")
    encoder = config_value(quality, "encoder")
    if not isinstance(encoder, str) or not encoder.strip():
        raise ConfigError(f"quality.encoder must be 'minilm', a model folder or a model name, got {encoder!r}")
    for key in ("enabled", "wandb", "probe.context"):
        if not isinstance(config_value(quality, key), bool):
            raise ConfigError(f"quality.{key} must be true or false, got {config_value(quality, key)!r}")
    number("batch_size", lambda v: v >= 1, "a positive integer", integer=True)
    number("threads", lambda v: v >= 1, "a positive integer", integer=True, nullable=True)
    number("seed", lambda v: True, "an integer", integer=True)
    number("probe.C", lambda v: v > 0, "a number > 0")
    number("probe.max_iter", lambda v: v >= 1, "a positive integer", integer=True)
    number("probe.bootstrap", lambda v: v >= 0, "an integer >= 0 (0: no intervals)", integer=True)
    number("suspicious", lambda v: v >= 0, "an integer >= 0", integer=True)
    number("diversity.sample_utterances", lambda v: v >= 1, "a positive integer", integer=True)
    number("diversity.self_bleu_utterances", lambda v: v >= 2, "an integer >= 2", integer=True)
    number("length_cap", lambda v: v >= 1, "a positive integer (characters)", integer=True, nullable=True)
    number("distance.nearest_k", lambda v: v >= 1, "a positive integer", integer=True)
    number("distance.sample", lambda v: v > int(config_value(quality, "distance.nearest_k")),
            f"an integer > distance.nearest_k ({config_value(quality, 'distance.nearest_k')})", integer=True)


def check_filter_config(postprocess: Any) -> None:
    """``postprocess.filter`` (null or a filter name) and ``postprocess.max_rejected`` in [0, 1)."""
    name = config_value(postprocess, "filter")
    if name is not None and name != PROBE_FILTER:
        raise ConfigError(f"postprocess.filter must be null (no filtered set) or {PROBE_FILTER} (the judge's filter is "
                          f"{FILTER_OPTIONS['judge']}), "
                          f"got {name!r}")
    check_number(postprocess, "max_rejected", lambda v: 0 <= v < 1, "a number in [0, 1)", prefix="postprocess.")


def check_generate_quality_config(cfg: DictConfig) -> None:
    """The ``quality`` and ``postprocess`` keys of a generate config, checked before any request."""
    check_quality_config(cfg.quality)
    check_filter_config(cfg.postprocess)
