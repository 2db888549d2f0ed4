"""W&B grouping of a sweep: ``hydra.mode`` compared with Hydra's RunMode, and by name when that import is gone."""

from __future__ import annotations

import copy
import sys

import pytest
from hydra.core.hydra_config import HydraConfig
from hydra.types import RunMode

from erc.training.reporting import is_multirun, sweep_group

from helpers.config import compose_config


@pytest.mark.parametrize("hydra_types_importable", [True, False])
def test_multirun_is_recognised_with_or_without_hydra_types(monkeypatch, hydra_types_importable) -> None:
    if not hydra_types_importable:
        monkeypatch.setitem(sys.modules, "hydra.types", None)     # `from hydra.types import ...` raises ImportError
        with pytest.raises(ImportError):
            from hydra.types import RunMode as _  # noqa: F401
    assert is_multirun(RunMode.MULTIRUN) and is_multirun("MULTIRUN") and is_multirun("multirun")
    assert not is_multirun(RunMode.RUN) and not is_multirun(None) and not is_multirun("RUN")


def test_sweep_group_is_the_multirun_folder_and_none_for_a_single_run(monkeypatch) -> None:
    cfg = compose_config("train", [
        "logger=wandb", "hydra.sweep.dir=/x/outputs/train/multiruns/2026-12-02_10-00-00"], return_hydra_config=True)
    monkeypatch.setattr(HydraConfig.instance(), "cfg", None)       # restored after the test
    assert sweep_group(cfg) is None                                 # train() called directly: no Hydra job
    for mode, group in ((RunMode.RUN, None), (RunMode.MULTIRUN, "train-2026-12-02_10-00-00")):
        job = copy.deepcopy(cfg)
        job.hydra.mode = mode
        HydraConfig.instance().set_config(job)                      # what Hydra does for each job it launches
        assert sweep_group(job) == group, mode
    cfg.logger.group = "mine"
    assert sweep_group(cfg) == "mine"
