"""The resume machinery's parts on their own, in process and without training: the random streams' seeds, the epoch
count read from a checkpoint, and what a resumed step says in the log (the end-to-end kill tests are in
test_training_resume.py)."""

from __future__ import annotations

import logging

import pytest
import torch
from omegaconf import OmegaConf

from erc.training.progress_store import ProgressStore
from erc.training.resume import AtomicCheckpointIO, completed_epochs, stream_seed


def test_stream_seeds_use_the_whole_32_bit_range() -> None:
    """Each (seed, stream, epoch) gets a 32-bit seed (numpy's and torch's seeds take up to 2**32 - 1): over 256
    streams some lie in the top half, so streams are not squeezed into a smaller range where they collide sooner."""
    seeds = [stream_seed(4, "finetune", epoch) for epoch in range(256)]
    assert all(0 <= s < 2**32 for s in seeds)
    assert max(seeds) >= 2**31 and len(set(seeds)) == len(seeds)


def test_epochs_done_are_read_from_a_checkpoint_that_holds_config_objects(tmp_path) -> None:
    """Lightning checkpoints of our models carry their hyperparameters (OmegaConf objects), which torch's
    weights-only loader refuses: the epoch count is read from such a file all the same (epoch is 0-based)."""
    last = tmp_path / "last.ckpt"
    torch.save({"epoch": 4, "hyper_parameters": OmegaConf.create({"schedule": {"lr": 0.1}}), "state_dict": {}}, last)
    assert completed_epochs(last) == 5


def test_a_resumed_step_says_in_the_log_where_it_continues_from(tmp_path, caplog) -> None:
    """The log names the step, the checkpoint and the epochs already done, so a requeued job's output shows it did
    not start over."""
    last = tmp_path / "last.ckpt"
    torch.save({"epoch": 1, "state_dict": {}}, last)
    with caplog.at_level(logging.INFO, logger="erc.training.progress_store"):
        assert ProgressStore(tmp_path / "progress.json").resume_point("finetune", last, resume=True) == str(last)
    assert f"finetune: resuming from {last} (2 epoch(s) done)" in caplog.messages


def test_the_checkpoint_writer_refuses_storage_options_it_would_ignore(tmp_path) -> None:
    """Options meant for a remote store would be dropped silently by a local atomic write: refused, nothing written."""
    with pytest.raises(TypeError, match="AtomicCheckpointIO does not take storage_options"):
        AtomicCheckpointIO().save_checkpoint({"epoch": 0}, tmp_path / "last.ckpt", storage_options={"anon": True})
    assert not (tmp_path / "last.ckpt").exists()
