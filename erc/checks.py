"""The checks every entry point runs on its config values before any expensive work, in one place.

Each raises :class:`erc.errors.ConfigError` naming the key as the user writes it on the command line, so a typo in
``llm.max_retries`` or ``quality.batch_size`` says which key and what it must be.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from omegaconf import DictConfig

from erc.errors import ConfigError


def config_value(cfg: Any, key: str) -> Any:
    """``cfg[key]`` for a dotted ``key`` (None where a part is missing), in a DictConfig or a plain dict."""
    value: Any = cfg
    for part in key.split("."):
        value = value.get(part) if isinstance(value, (DictConfig, dict)) else None
    return value


def check_number(cfg: Any, key: str, ok: Callable[[float], bool], need: str, integer: bool = False,
                 nullable: bool = False, prefix: str = "") -> None:
    """``cfg[key]`` is a number (an int when ``integer``; null allowed when ``nullable``) with ``ok(value)``;
    the message names ``prefix + key`` (the key's full name when ``cfg`` is a sub-config)."""
    value = config_value(cfg, key)
    if value is None and nullable:
        return
    kind = int if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kind) or not ok(value):
        raise ConfigError(f"{prefix}{key} must be {need}{' or null' if nullable else ''}, got {value!r}")
