"""The training config values accepted at each boundary and refused just past it, checked on their own (no job run):
the trainer's accelerator, devices, precision and strategy as Lightning takes them, and the job's seed, resume flag,
dialogue limit and DataLoader workers. Each refusal is one ConfigError naming the key."""

from __future__ import annotations

import re
from typing import get_args

import pytest
from lightning_fabric.plugins.precision.precision import _PRECISION_INPUT
from omegaconf import OmegaConf

from erc.errors import ConfigError
from erc.training.validation import check_trainer, validate_train_config

from helpers.config import compose_config

TRAINER_ACCEPTED = [("accelerator", "cpu"), ("accelerator", "gpu"), ("accelerator", "cuda"), ("accelerator", "auto"),
                    ("devices", "auto"), ("devices", 1), ("devices", -1), ("devices", 3), ("devices", "1"),
                    ("devices", "0,1"), ("devices", "0, 2,"), ("devices", [0]), ("devices", [0, 3]),
                    ("precision", "32-true"), ("precision", "bf16-mixed"), ("precision", "16-mixed"),
                    ("precision", 16), ("precision", 32), ("precision", "64"), ("strategy", "auto"),
                    ("strategy", "ddp"), ("strategy", "ddp_spawn")]
TRAINER_REFUSED = [("accelerator", "gpus"), ("accelerator", "GPU"), ("devices", 0), ("devices", -2),
                   ("devices", True), ("devices", "a"), ("devices", "0,a"), ("devices", []), ("devices", [-1]),
                   ("devices", [0, 1.5]), ("precision", 8), ("precision", "8"), ("precision", True),
                   ("precision", "bf32"), ("strategy", "dpp"), ("strategy", "DDP")]


@pytest.mark.parametrize("key, value", TRAINER_ACCEPTED)
def test_trainer_values_lightning_takes_are_accepted(key, value) -> None:
    check_trainer(OmegaConf.create({"accelerator": "cpu", "devices": 1, key: value}))


def test_every_precision_lightning_takes_and_every_accelerator_type_is_accepted() -> None:
    """Lightning's own list of precision inputs (ints, strings and their aliases), read from Lightning."""
    precisions = [value for literal in get_args(_PRECISION_INPUT) for value in get_args(literal)]
    assert len(precisions) >= 15
    for precision in precisions:
        check_trainer(OmegaConf.create({"precision": precision}))
    for accelerator in ("cpu", "gpu", "cuda", "mps", "tpu", "auto"):
        check_trainer(OmegaConf.create({"accelerator": accelerator}))


@pytest.mark.parametrize("key, value", TRAINER_REFUSED)
def test_trainer_values_lightning_refuses_are_refused_naming_the_key(key, value) -> None:
    with pytest.raises(ConfigError, match=rf"^trainer\.{key} must be "):
        check_trainer(OmegaConf.create({"accelerator": "cpu", "devices": 1, key: value}))


@pytest.fixture(scope="module")
def train_cfg():
    return compose_config("train", ["classifier=compm", "classifier.backbone=tiny", "data=meld_bal"])


@pytest.mark.parametrize("key, value, error", [
    ("seed", 0, None), ("seed", True, "seed must be an integer, got True"),
    ("seed", 1.5, "seed must be an integer, got 1.5"), ("resume", False, None),
    ("resume", "false", "resume must be true or false, got 'false'"),
    ("data.limit_dialogues", 1, None), ("data.limit_dialogues", None, None),
    ("data.limit_dialogues", 0, "data.limit_dialogues must be a positive integer or null (every dialogue), got 0"),
    ("data.limit_dialogues", True, "data.limit_dialogues must be a positive integer"),
    ("data.num_workers", 0, None),
    ("data.num_workers", -1, "data.num_workers must be an integer >= 0, got -1"),
    ("data.num_workers", 0.5, "data.num_workers must be an integer >= 0, got 0.5"),
    ("classifier.fast_path", "off", None), ("classifier.fast_path", "Off", "classifier.fast_path must be one of"),
])
def test_job_values_at_their_boundaries(train_cfg, key, value, error) -> None:
    cfg = train_cfg.copy()
    OmegaConf.update(cfg, key, value)
    if error is None:
        validate_train_config(cfg)
    else:
        with pytest.raises(ConfigError, match="^" + re.escape(error)):
            validate_train_config(cfg)
