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
    check_trainer(cfg.trainer)


# What Lightning 2.x's Trainer takes as ``precision`` (its _PRECISION_INPUT) and ``accelerator`` (beside its registry).
PRECISIONS = ("64-true", "32-true", "16-mixed", "bf16-mixed", "16-true", "bf16-true", "transformer-engine",
              "transformer-engine-float16", "64", "32", "16", "bf16", 64, 32, 16)
ACCELERATORS = ("cpu", "gpu", "cuda", "mps", "tpu", "auto")


def check_trainer(trainer: DictConfig) -> None:
    """``trainer.accelerator``, ``devices``, ``precision`` and ``strategy`` as Lightning takes them: Lightning would
    refuse them only after the data are read and encoded. Whether this machine has the accelerator is
    :func:`check_accelerator_present`'s (a config is valid on a machine without it, as the docs' GPU commands are)."""
    from pytorch_lightning.strategies import StrategyRegistry

    accelerator = trainer.get("accelerator", "auto")
    if accelerator not in ACCELERATORS:
        raise ConfigError(f"trainer.accelerator must be one of {', '.join(ACCELERATORS)}, got {accelerator!r}")
    devices = trainer.get("devices", "auto")
    listed = list(devices) if not isinstance(devices, int | str) else None
    if not (devices == "auto" or (_integer(devices) and (devices >= 1 or devices == -1))
            or (isinstance(devices, str) and all(d.strip().isdigit() for d in devices.split(",") if d.strip()))
            or (listed is not None and listed and all(_integer(d) and d >= 0 for d in listed))):
        raise ConfigError(f"trainer.devices must be a positive integer, -1 (all), auto or a list of device indices, "
                          f"got {devices!r}")
    precision = trainer.get("precision", "32-true")
    if precision not in PRECISIONS or isinstance(precision, bool):
        raise ConfigError(f"trainer.precision must be one of {', '.join(map(str, PRECISIONS[:8]))}, got "
                          f"{precision!r}")
    strategy = trainer.get("strategy", "auto")
    if strategy != "auto" and strategy not in StrategyRegistry.available_strategies():
        raise ConfigError(f"trainer.strategy must be auto or one of Lightning's strategies "
                          f"({', '.join(StrategyRegistry.available_strategies()[:6])}, ...), got {strategy!r}")


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


def check_accelerator_present(trainer: DictConfig) -> None:
    """The accelerator (and number of GPUs) ``trainer`` asks for is on this machine, before any data are read:
    Lightning would refuse a missing one after the data are read and encoded, with a traceback."""
    import torch

    accelerator, devices = trainer.get("accelerator", "auto"), trainer.get("devices", "auto")
    if accelerator in ("gpu", "cuda"):
        if not torch.cuda.is_available():
            build = f"a CUDA {torch.version.cuda} build" if torch.version.cuda else "a CPU-only build"
            raise ConfigError(f"trainer.accelerator={accelerator} (trainer=gpu or ddp), but torch sees no CUDA GPU "
                              f"here (torch {torch.__version__}, {build}): train with trainer=cpu, or on a GPU "
                              f"machine with a CUDA build of torch (docs/full-scale.md)")
        if _integer(devices) and devices > torch.cuda.device_count():
            raise ConfigError(f"trainer.devices={devices}, but torch sees {torch.cuda.device_count()} CUDA GPU(s) "
                              f"here: lower trainer.devices (or auto)")
    if accelerator == "mps" and not torch.backends.mps.is_available():
        raise ConfigError("trainer.accelerator=mps, but torch sees no Apple GPU here: train with trainer=cpu")
