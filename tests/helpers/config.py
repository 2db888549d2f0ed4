"""Composing the project's Hydra configs in tests, as the entry points do, without running a job."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from hydra import compose, initialize_config_dir
from omegaconf import DictConfig

from erc.paths import CONFIG_DIR


def compose_config(config_name: str, overrides: Sequence[str] = (), *, return_hydra_config: bool = False,
                   config_dir: Path = CONFIG_DIR) -> DictConfig:
    """``conf/<config_name>.yaml`` with ``overrides``, as ``python <entry point>.py <overrides>`` composes it.

    Hydra is initialized for this one call and cleared after it, so a test never sees another's search path.
    ``return_hydra_config`` keeps the ``hydra`` node (its ``runtime.choices``, ``job``), which the checks of a
    launched job read."""
    with initialize_config_dir(config_dir=str(config_dir), version_base="1.3"):
        return compose(config_name=config_name, overrides=list(overrides), return_hydra_config=return_hydra_config)


def compose_train(tmp_path: Path, data_dir: Path, overrides: Sequence[str]) -> DictConfig:
    """train.py's config for a job reading ``data_dir`` (its generated sets in ``data_dir/synthetic``) and writing
    only under ``tmp_path``."""
    return compose_config("train", [f"paths.data_dir={data_dir}", f"paths.synthetic_dir={data_dir / 'synthetic'}",
                                    f"paths.log_dir={tmp_path / 'logs'}",
                                    f"paths.output_dir={tmp_path / 'out'}", *overrides])
