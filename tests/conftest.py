"""Shared fixtures. Tests that need the real benchmark text read it where users keep it, first found first used:
``$ERC_DATA_DIR``, then ``data/`` in the project (where ``make data`` puts it), then a read-only copy beside the
project (``../shared/data``, or ``$ERC_SHARED_DATA``); they skip, naming every place looked at, only when no copy
exists."""

from __future__ import annotations

import os
import shutil
import socket
from collections.abc import Iterator
from pathlib import Path

import pytest

import erc  # noqa: F401  (registers the config resolvers)
from erc.data import default_data_dir
from erc.paths import PROJECT_ROOT

FIXTURES = Path(__file__).parent / "fixtures"


def benchmark_data_candidates() -> list[Path]:
    """Where real MELD may be, first found first used: the project's own data folder (the rule of
    :func:`erc.data.default_data_dir`: ``$ERC_DATA_DIR``, else ``data/``), ``data/`` even when ``$ERC_DATA_DIR`` is
    set, then the shared read-only copy beside the project."""
    shared = Path(os.environ.get("ERC_SHARED_DATA") or PROJECT_ROOT.parent / "shared" / "data")
    return list(dict.fromkeys([default_data_dir(), PROJECT_ROOT / "data", shared]))


@pytest.fixture(autouse=True)
def _offline_wandb(monkeypatch: pytest.MonkeyPatch) -> None:
    """No test ever talks to a W&B server."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")


@pytest.fixture
def reachable_hub(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A Hugging Face hub endpoint that accepts connections (a listening loopback socket that is never asked
    anything), so that a hub backbone name passes the quick reachability check of the training config whether or
    not this machine has a network; its URL."""
    for var in ("HTTPS_PROXY", "https_proxy", "ALL_PROXY", "all_proxy", "HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"):
        monkeypatch.delenv(var, raising=False)
    with socket.socket() as hub:
        hub.bind(("127.0.0.1", 0))
        hub.listen()
        url = f"http://127.0.0.1:{hub.getsockname()[1]}"
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", url)
        yield url


@pytest.fixture(autouse=True)
def _generated_sets_in_tmp(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """No test writes or reads generated sets in the project's ``synthetic/``: they go where the tests' data
    folders keep them, ``<tmp_path>/data/synthetic`` (``paths.synthetic_dir``; a test that wants another place
    passes the override)."""
    monkeypatch.setenv("ERC_SYNTHETIC_DIR", str(tmp_path / "data" / "synthetic"))


@pytest.fixture(scope="session")
def benchmark_data() -> Path:
    """The folder holding the real benchmark files (never written to); skip when no copy of MELD is found."""
    candidates = benchmark_data_candidates()
    for folder in candidates:
        if (folder / "meld").is_dir():
            return folder
    looked = ", ".join(str(folder / "meld") for folder in candidates)
    pytest.skip(f"real benchmark data not found (looked at {looked}): run `make data`, or set ERC_DATA_DIR "
                "or ERC_SHARED_DATA to a folder holding meld/")


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
def data_dir(tmp_path: Path, benchmark_data: Path, fixtures_dir: Path) -> Path:
    """A data folder for training tests: real MELD (a link to the benchmark copy, never written to) and the
    small synthetic ``meld_bal`` fixture."""
    root = tmp_path / "data"
    (root / "synthetic").mkdir(parents=True)
    (root / "meld").symlink_to(benchmark_data / "meld")
    shutil.copytree(FIXTURES / "synthetic" / "meld_bal", root / "synthetic" / "meld_bal")
    return root
