"""Shared fixtures. Real benchmark text lives beside the project in ``../shared/data`` (read-only);
tests that need it skip, saying so, only when it is absent."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest

import erc  # noqa: F401  (registers the config resolvers)
from erc.paths import PROJECT_ROOT

SHARED_DATA = Path(os.environ.get("ERC_SHARED_DATA", PROJECT_ROOT.parent / "shared" / "data"))
FIXTURES = Path(__file__).parent / "fixtures"


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever talks to a W&B server."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture(scope="session")
def shared_data() -> Path:
    """The real benchmark files; skip when the shared folder is absent."""
    if not (SHARED_DATA / "meld").is_dir():
        pytest.skip(f"real benchmark data not found at {SHARED_DATA} (set ERC_SHARED_DATA)")
    return SHARED_DATA


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return FIXTURES


@pytest.fixture(autouse=True)
def _one_torch_thread():
    """One torch thread in tests: on a machine shared with other work, OpenMP threads spin-wait and a tiny
    model trains tens of times slower (see bench/train_throughput.py)."""
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture
def data_dir(tmp_path: Path, shared_data: Path, fixtures_dir: Path) -> Path:
    """A data folder for training tests: real MELD (a link to the shared copy, never written to) and the
    small synthetic ``meld_bal`` fixture."""
    root = tmp_path / "data"
    (root / "synthetic").mkdir(parents=True)
    (root / "meld").symlink_to(shared_data / "meld")
    shutil.copytree(FIXTURES / "synthetic" / "meld_bal", root / "synthetic" / "meld_bal")
    return root
