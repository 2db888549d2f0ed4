"""Every training config value checked before any data is encoded or any model built, each failure a
:class:`erc.errors.ConfigError` naming the key and what it accepts (``data.limit_dialogues=-5`` would
otherwise keep all but the last 5 dialogues of every split, and ``schedule.lr=abc`` die mid-run)."""

from __future__ import annotations

from typing import Any

from omegaconf import DictConfig

from erc.data.names import check_axes, dataset_name, parse_dataset, pretrain_set
from erc.errors import ConfigError, DataError
from erc.models.backbone import check_backbone_name, check_fast_path
from erc.pretrained import BACKBONE_KEYS
from erc.training.schedule import PHASES, phase_schedule


def _integer(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def validate_train_config(cfg: DictConfig) -> None:
    """Raise :class:`ConfigError` for the first value of ``cfg`` that cannot work (see the module docstring)."""
    if not _integer(cfg.seed):
        raise ConfigError(f"seed must be an integer, got {cfg.seed!r}")
    if not isinstance(cfg.resume, bool):
        raise ConfigError(f"resume must be true or false, got {cfg.resume!r}")
    check_data_axes(cfg.data)
    limit = cfg.data.get("limit_dialogues")
    if limit is not None and not (_integer(limit) and limit > 0):
        raise ConfigError(f"data.limit_dialogues must be a positive integer or null (every dialogue), got {limit!r}")
    workers = cfg.data.get("num_workers", 0)
    if not (_integer(workers) and workers >= 0):
        raise ConfigError(f"data.num_workers must be an integer >= 0, got {workers!r}")
    for phase in PHASES:
        phase_schedule(cfg.schedule, phase)
    for option in BACKBONE_KEYS:
        if cfg.classifier.get(option) is not None:
            check_backbone_name(str(cfg.classifier[option]), f"classifier.{option}")
    if "fast_path" in cfg.classifier:
        check_fast_path(cfg.classifier.fast_path)


def _hydra_data_choice() -> str | None:
    """The ``data=...`` choice of the running Hydra job, None when train() is called without Hydra."""
    from hydra.core.hydra_config import HydraConfig

    if not HydraConfig.initialized():
        return None
    return HydraConfig.get().runtime.choices.get("data")


def check_data_axes(data: DictConfig) -> None:
    """The experiment is its two axes, ``data.benchmark`` and ``data.source``; every derived key must agree with
    them (``conf/data/_dataset.yaml``), and a ``data=<benchmark>_<source>`` choice with the axes it names, so that
    ``data=meld_bal data.benchmark=iemocap`` is refused instead of being trained under a misleading name."""
    try:
        check_axes(str(data.benchmark), str(data.source))
    except DataError as err:
        raise ConfigError(str(err)) from err
    benchmark, source = str(data.benchmark), str(data.source)
    name = dataset_name(benchmark, source)
    choice = _hydra_data_choice()
    try:
        chosen = parse_dataset(choice) if choice else None
    except DataError:
        chosen = None                    # a data config of the user's own, named freely
    if chosen and choice != name:
        raise ConfigError(f"data={choice} is benchmark {chosen[0]} with source {chosen[1]}, but the overrides make it "
                          f"data.benchmark={benchmark} data.source={source}: choose data={name} instead")
    expected = {"name": name, "pretrain": pretrain_set(benchmark, source), "finetune": benchmark}
    for key, value in expected.items():
        if data.get(key) != value:
            raise ConfigError(f"data.{key}={data.get(key)!r} contradicts data.benchmark={benchmark} and "
                              f"data.source={source} (it must be {value!r}); change the benchmark or the source "
                              f"(e.g. data={name}), not data.{key}")
    tests = list(data.test or [])
    for test in tests:
        try:
            test_benchmark, _ = parse_dataset(str(test))
        except DataError as err:
            raise ConfigError(f"data.test: {err}") from err
        if test_benchmark != benchmark:
            raise ConfigError(f"data.test holds {test!r}, a dataset of {test_benchmark}, but the experiment's "
                              f"benchmark is {benchmark}; list only {benchmark}'s datasets")
    if benchmark not in tests:
        raise ConfigError(f"data.test={tests} must include the benchmark's own test split {benchmark!r}")
