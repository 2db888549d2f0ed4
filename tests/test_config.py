"""Compose-based checks of the shared config groups."""

from omegaconf import OmegaConf

from erc.data import label_set
from erc.paths import CONFIG_DIR, PROJECT_ROOT

from helpers.config import compose_config


def _paths(monkeypatch, env=None):
    if env is None:
        monkeypatch.delenv("ERC_DATA_DIR", raising=False)
    else:
        monkeypatch.setenv("ERC_DATA_DIR", env)
    cfg = OmegaConf.load(CONFIG_DIR / "paths" / "default.yaml")
    return OmegaConf.create({"paths": cfg}).paths


def test_data_dir_defaults_to_project_data_and_follows_env(monkeypatch, tmp_path):
    assert _paths(monkeypatch).data_dir == str(PROJECT_ROOT / "data")
    assert _paths(monkeypatch, str(tmp_path)).data_dir == str(tmp_path)


def test_generated_sets_have_a_root_of_their_own_apart_from_the_benchmarks(monkeypatch, tmp_path):
    """With ERC_DATA_DIR pointing at a (shared, read-only) benchmark copy, generate.py must not write into it."""
    monkeypatch.delenv("ERC_SYNTHETIC_DIR")
    assert _paths(monkeypatch, str(tmp_path)).synthetic_dir == str(PROJECT_ROOT / "synthetic")
    monkeypatch.setenv("ERC_SYNTHETIC_DIR", str(tmp_path / "sets"))
    assert _paths(monkeypatch, str(tmp_path)).synthetic_dir == str(tmp_path / "sets")


def test_benchmark_configs_compose_and_agree_with_label_set():
    for name in ("meld", "emorynlp", "iemocap"):
        cfg = compose_config(name, config_dir=CONFIG_DIR / "benchmark")
        assert list(cfg.labels) == label_set(name)
        assert set(cfg.sentiment) == set(cfg.labels)
        assert cfg.speakers.kind in ("multi_party", "dyadic")
