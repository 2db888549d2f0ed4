"""What the quality report reads and keeps, without scoring anything: which generated sets ``quality.py`` finds
(in the order of its columns, empty ones skipped with a warning) or is told to score, the error that points at
sets left in the former place, and the embedding cache (one entry per list of texts encoded, texts already
encoded in this process never encoded twice, an entry of the wrong size encoded again)."""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf

from erc.data.schema import DataError
from erc.errors import ConfigError
from erc.plots import figure_png, plt
from erc.pretrained import folder_identity, minilm_folder, minilm_identity
from erc.quality.embeddings import EmbeddingCache, Encoder, resolve_encoder, texts_hash
from erc.quality.outputs import ROWS
from erc.quality.run import _chosen_sets, generated_set_folders
from erc.quality.tracking import log_report

from helpers.config import compose_config


def _set(folder: Path, text: str = '{"id": "x"}\n', split: str = "train") -> Path:
    """A set folder whose ``split`` file holds ``text`` (what is inside is not read here)."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / f"{split}.jsonl").write_text(text)
    return folder


def _cfg(data: Path, synthetic: Path, *overrides: str):
    return compose_config("quality", ["benchmark=meld", f"paths.data_dir={data}", f"paths.synthetic_dir={synthetic}",
                                      *overrides])


def test_every_set_of_the_benchmark_is_found_in_column_order_and_empty_ones_are_skipped(tmp_path, caplog) -> None:
    """Natural, balanced, the shipped filters' sets (probe before judge, nat before bal), then filters of the user's
    own by name; another benchmark's sets, folders without split files and names that are no set are left out."""
    root = tmp_path / "synthetic"
    for name in ("meld_bal_zz", "meld_nat_judge", "meld_bal", "meld_nat_aa", "meld_nat", "meld_bal_probe",
                 "iemocap_nat", "meld_nat_Bad", "meld_org_probe", "meld_nat_mm", "meld_bal_cc", "meld_nat_bb"):
        _set(root / name, split="dev" if name == "meld_bal" else "train")
    _set(root / "meld_nat_probe", "  \n")                  # emptied by its filter
    (root / "meld_bal_judge").mkdir()                      # no split file at all
    (root / "meld_bal_judge" / "card.json").write_text("{}")
    with caplog.at_level(logging.WARNING):
        found = generated_set_folders(root, "meld")
    assert [f.name for f in found] == ["meld_nat", "meld_bal", "meld_bal_probe", "meld_nat_judge", "meld_bal_cc",
                                       "meld_bal_zz", "meld_nat_aa", "meld_nat_bb", "meld_nat_mm"]
    assert f"{root / 'meld_nat_probe'} holds no dialogue: skipped" in caplog.text
    assert "meld_bal_judge" not in caplog.text


def test_sets_named_on_the_command_line_are_read_by_name_or_folder(tmp_path, monkeypatch) -> None:
    """``sets=[...]``: a name is a folder of ``paths.synthetic_dir``, an existing folder is itself (given whole or
    relative to the working folder); an empty one is skipped, a missing one kept (reading it names it)."""
    synthetic = tmp_path / "synthetic"
    own = _set(tmp_path / "elsewhere" / "mine")
    _set(tmp_path / "here" / "ours")
    _set(synthetic / "meld_nat")
    _set(synthetic / "meld_bal", "")
    monkeypatch.chdir(tmp_path)
    cfg = _cfg(tmp_path / "data", synthetic, f"sets=[meld_nat,{own},here/ours,meld_bal,meld_nat_gone]")
    assert _chosen_sets(cfg, "meld") == [synthetic / "meld_nat", own, Path("here/ours"), synthetic / "meld_nat_gone"]


def test_no_set_is_an_error_that_says_how_to_make_one_or_where_to_move_them(tmp_path) -> None:
    data, synthetic = tmp_path / "data", tmp_path / "synthetic"
    with pytest.raises(DataError, match=rf"^no generated set of meld in {synthetic}: make one with `python "
                                        r"generate.py benchmark=meld`, or name one with sets=\[<folder>\]$"):
        _chosen_sets(_cfg(data, synthetic), "meld")
    _set(data / "synthetic" / "meld_bal")                  # where generated sets used to go
    with pytest.raises(DataError, match=rf"but {data / 'synthetic'} holds some, the former place inside the "
                                        rf"benchmark folder: move them with `mkdir -p {synthetic} && mv "
                                        rf"{data / 'synthetic'}/meld_\* {synthetic}/`$"):
        _chosen_sets(_cfg(data, synthetic), "meld")
    # the former place is the synthetic folder itself: nothing to move, the set is found
    assert _chosen_sets(_cfg(data, data / "synthetic"), "meld") == [data / "synthetic" / "meld_bal"]


# ---- the embedding cache ---------------------------------------------------------------------------------------
class _Model:
    """Stands in for the sentence-transformers model under the cache (the cache, not the model, is tested here; the
    real model runs in test_quality.py): one fixed vector per text."""

    def encode(self, texts: list[str], **options) -> np.ndarray:
        return np.array([[len(t), sum(map(ord, t)) % 97, 1.0, 0.0] for t in texts], dtype=np.float32)


@pytest.fixture
def minilm():
    """The shipped encoder's settings, its model stood in for (no load)."""
    encoder = Encoder("minilm", batch_size=2, threads=1)
    encoder._model = _Model()
    return encoder


def test_the_shipped_encoder_is_the_installed_minilm_loaded_only_when_asked() -> None:
    fresh = Encoder("minilm")
    assert (fresh.target, fresh.identity) == (str(minilm_folder("quality.encoder")), minilm_identity())
    assert (fresh.encoded, fresh._model) == (0, None)                  # nothing loaded or counted until asked


def test_the_cache_encodes_each_text_once_and_reencodes_an_entry_of_the_wrong_size(tmp_path, minilm,
                                                                                    caplog) -> None:
    cache = EmbeddingCache(tmp_path, minilm)
    start = minilm.encoded
    texts = ["Hi.", "Go away!", "Hi."]
    first = cache.embed(texts)
    assert minilm.encoded - start == 2 and (cache.hits, cache.misses) == (0, 1)   # the repeated text once
    np.testing.assert_array_equal(first[0], first[2])
    entry = cache.folder / f"{texts_hash(texts)}.npy"
    np.testing.assert_array_equal(np.load(entry), first)
    assert cache.folder.parent == tmp_path and cache.folder.name == minilm.identity
    # a new list of known texts: a new entry, nothing encoded; the same list again: read from its entry
    np.testing.assert_array_equal(cache.embed(["Go away!"])[0], first[1])
    again = EmbeddingCache(tmp_path, minilm)
    np.testing.assert_array_equal(again.embed(texts), first)
    assert minilm.encoded - start == 2 and (again.hits, again.misses) == (1, 0)
    np.testing.assert_array_equal(again.embed(["Hi."])[0], first[0])     # read from disk: known in memory too
    assert minilm.encoded - start == 2
    # an entry whose row count is not the texts' is encoded again, with a warning naming it
    np.save(entry, first[:2])
    fresh = EmbeddingCache(tmp_path, minilm)
    with caplog.at_level(logging.WARNING):
        np.testing.assert_allclose(fresh.embed(texts), first, atol=1e-6)
    assert f"{entry}: 2 rows for 3 texts; encoding again" in caplog.text and fresh.misses == 1
    assert np.load(entry).shape == (3, 4) and minilm.encoded - start == 4
    assert cache.embed([]).shape == (0, 0)


def test_a_cache_entry_is_the_texts_in_their_order(tmp_path, minilm) -> None:
    """The same texts in another order (a set rewritten with its dialogues shuffled) are another entry: each row is
    still its own text's embedding, never the row of the other order's entry."""
    first = EmbeddingCache(tmp_path, minilm).embed(["Hi.", "Go away!"])
    assert not np.array_equal(first[0], first[1])
    swapped = EmbeddingCache(tmp_path, minilm).embed(["Go away!", "Hi."])
    np.testing.assert_array_equal(swapped, first[::-1])


def test_an_encoder_folder_is_loaded_from_itself_and_a_missing_path_is_refused(tmp_path) -> None:
    model = tmp_path / "my-model"
    model.mkdir()
    (model / "config.json").write_text("{}")
    assert resolve_encoder(str(model)) == (str(model.resolve()), folder_identity(model))
    assert resolve_encoder("org/some-encoder") == ("org/some-encoder", "org/some-encoder")
    for missing in (str(tmp_path / "nothing"), "./nothing", "~/nothing-here-at-all"):
        with pytest.raises(ConfigError, match=rf"^quality.encoder='{missing}': no model folder there; give 'minilm'"):
            resolve_encoder(missing)


# ---- W&B --------------------------------------------------------------------------------------------------------
def test_wandb_gets_each_columns_numbers_as_summary_the_table_rows_and_only_png_pictures(tmp_path) -> None:
    """An offline run in the given folder, named for the benchmark, in quality.wandb_project: the metrics table (one
    row per report row, one column per set), each set's suspicious utterances, the PNGs (not quality.md), and every
    numeric figure as ``<column>/<key>``."""
    png = tmp_path / "quality_metrics.png"
    png.write_bytes(figure_png(plt.figure(figsize=(1, 1))))
    (tmp_path / "quality.md").write_text("| table |\n")
    report = {"benchmark": "meld", "columns": ["meld", "meld_nat"],
              "metrics": {"meld": {"kappa": 0.4, "sample_utterances": 300, "probe_wf1": 0.5},
                          "meld_nat": {"kappa": -0.1, "sample_utterances": 40, "probe_wf1": None,
                                       "wf1_interval": [0.1, 0.2]}},
              "suspicious": {"meld_nat": [{"id": "n1", "text": "Hi.", "label": "joy", "probe": "anger",
                                           "label_quality": 0.02}]}}
    quality = OmegaConf.create({"wandb_project": "erc-test", "wandb_mode": "offline"})
    run_dir = Path(log_report(quality, {"benchmark": "meld"}, report, [png, tmp_path / "quality.md"], tmp_path))
    assert run_dir.is_relative_to(tmp_path / "wandb")
    # the summary goes into the run's binary log (no JSON copy offline), its keys written there as text; W&B's
    # service writes it after finish() returns, so the log is read until the last key the run logs is in it
    (log,) = run_dir.parent.glob("run-*.wandb")
    deadline = time.monotonic() + 30
    while b"meld_nat/sample_utterances" not in (written := log.read_bytes()) and time.monotonic() < deadline:
        time.sleep(0.2)
    for key in ("meld/kappa", "meld/sample_utterances", "meld/probe_wf1", "meld_nat/kappa",
                "meld_nat/sample_utterances"):
        assert f'"{key}"'.encode() in written or key.encode() in written, key
    assert b"meld_nat/probe_wf1" not in written and b"wf1_interval" not in written     # None and a list: no summary
    assert b"quality-meld" in written and b"erc-test" in written           # the run's name and quality.wandb_project
    media = run_dir / "media"
    logged = {p.relative_to(media).parent / p.name.rsplit("_", 2)[0] for p in media.rglob("*") if p.is_file()}
    assert logged == {Path("images/quality/quality_metrics"), Path("table/quality/metrics"),
                      Path("table/quality/suspicious/meld_nat")}
    table = json.loads(next((media / "table" / "quality").glob("metrics_*.table.json")).read_text())
    assert table["columns"] == ["metric", "meld", "meld_nat"] and len(table["data"]) == len(ROWS)
    kappa = next(row for row in table["data"] if row[0] == "fidelity: Cohen's kappa")
    assert kappa == ["fidelity: Cohen's kappa", 0.4, -0.1]
    (suspicious,) = json.loads(next((media / "table" / "quality" / "suspicious").glob("meld_nat_*.table.json"))
                               .read_text())["data"]
    assert suspicious == ["n1", "Hi.", "joy", "anger", 0.02]


def test_the_encoder_runs_on_quality_threads_and_gives_torch_its_threads_back() -> None:
    """``quality.threads`` holds while the model encodes (a model standing in records it), and torch's own
    setting is back afterwards, an exception included."""
    class Recorder:
        def __init__(self) -> None:
            self.threads: list[int] = []

        def encode(self, texts, **options):
            self.threads.append(torch.get_num_threads())
            if texts == ["boom"]:
                raise RuntimeError("boom")
            return np.ones((len(texts), 2))

    before = torch.get_num_threads()
    encoder = Encoder("minilm", threads=before + 1)
    encoder._model = Recorder()
    try:
        assert encoder.encode(["a", "b"]).dtype == np.float32
        with pytest.raises(RuntimeError):
            encoder.encode(["boom"])
        assert torch.get_num_threads() == before and encoder._model.threads == [before + 1, before + 1]
        assert encoder.encoded == 2
    finally:
        torch.set_num_threads(before)
