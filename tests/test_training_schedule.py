"""What each schedule key accepts, at its boundaries, in the shared block and in a phase block: the value a phase
gets, or one error naming the key it came from (``schedule.<key>`` or ``schedule.<phase>.<key>``)."""

from __future__ import annotations

import math

import pytest
from omegaconf import OmegaConf

from erc.errors import ConfigError
from erc.training.schedule import phase_schedule

# Values exactly at each boundary that is allowed (dyadic, so no rounding decides), and the nearest refused ones.
ACCEPTED = [("epochs", 1), ("batch_size", 1), ("eval_batch_size", 1), ("lr", 2.0**-20), ("eps", 2.0**-40),
            ("betas", [0, 0.5]), ("betas", [0.5, 1 - 2.0**-10]), ("weight_decay", 0), ("no_decay", []),
            ("no_decay", ["bias", "LayerNorm.weight"]), ("warmup_epochs", 0), ("warmup_epochs", None),
            ("warmup_epochs", 0.5), ("warmup_ratio", 0), ("warmup_ratio", 1), ("warmup_ratio", 0.25),
            ("clip_norm", None), ("clip_norm", 0.25), ("accumulate", 1), ("select", "wf1"), ("select", "acc"),
            ("select", "mf1"), ("early_stopping_patience", None), ("early_stopping_patience", 1),
            ("bucket_batches", 1)]
REFUSED = [("epochs", 0), ("epochs", 1.5), ("epochs", True), ("batch_size", 0), ("eval_batch_size", 0),
           ("lr", 0), ("lr", -0.25), ("lr", math.inf), ("lr", math.nan), ("lr", "abc"), ("eps", 0),
           ("betas", [0.5, 1]), ("betas", [-0.25, 0.5]), ("betas", [0.5]), ("betas", [0.5, 0.5, 0.5]),
           ("weight_decay", -0.25), ("no_decay", "bias"), ("no_decay", [1]), ("warmup_epochs", -0.25),
           ("warmup_ratio", -0.25), ("warmup_ratio", 1.25), ("clip_norm", 0), ("accumulate", 0),
           ("select", "f1"), ("select", "WF1"), ("early_stopping_patience", 0), ("bucket_batches", 0)]


@pytest.mark.parametrize("phase", ["pretrain", "finetune"])
def test_each_schedule_value_at_its_boundary_is_taken_from_the_shared_or_the_phase_block(phase) -> None:
    other = "finetune" if phase == "pretrain" else "pretrain"
    for key, value in ACCEPTED:
        expected = tuple(value) if key == "betas" else value
        assert getattr(phase_schedule({key: value}, phase), key) == expected, (key, value)
        if value is not None:                        # a phase block's null means the shared value (tested below)
            assert getattr(phase_schedule({phase: {key: value}}, phase), key) == expected, (key, value)
        # a value of the other phase's block does not reach this one
        assert getattr(phase_schedule({other: {key: value}}, phase), key) == getattr(phase_schedule({}, phase), key)


@pytest.mark.parametrize("key, value", REFUSED)
def test_each_schedule_value_past_its_boundary_is_refused_naming_its_key(key, value) -> None:
    with pytest.raises(ConfigError, match=rf"^schedule\.{key} must be "):
        phase_schedule({key: value}, "pretrain")
    with pytest.raises(ConfigError, match=rf"^schedule\.finetune\.{key} must be "):
        phase_schedule({"lr": 1e-5, "finetune": {key: value}}, "finetune")
    assert phase_schedule({"finetune": {key: value}}, "pretrain").lr == 1e-5     # not read by the other phase


def test_a_phase_block_null_takes_the_shared_value_and_the_name_is_no_setting() -> None:
    """``conf/schedule/_phase.yaml`` lists every key as null in each block; ``name`` names the schedule file."""
    schedule = OmegaConf.create({"name": "mine", "lr": 2.0**-10, "epochs": 3,
                                 "pretrain": {"lr": None, "epochs": 2}, "finetune": {"lr": 2.0**-12, "epochs": None}})
    assert (phase_schedule(schedule, "pretrain").lr, phase_schedule(schedule, "pretrain").epochs) == (2.0**-10, 2)
    assert (phase_schedule(schedule, "finetune").lr, phase_schedule(schedule, "finetune").epochs) == (2.0**-12, 3)
    with pytest.raises(ConfigError, match=r"unknown key\(s\) schedule\.finetune\.lrate, schedule\.warmup; valid: "):
        phase_schedule({"warmup": 1, "finetune": {"lrate": 1}}, "finetune")
    with pytest.raises(ValueError, match="unknown phase 'test'"):
        phase_schedule({}, "test")
