"""The quality report's figures, table, files and ``quality.json`` on tiny hand-made inputs, without encoding any
text: the embedding distance is prdc's and the Fréchet distance on equal samples of both sides, self-BLEU is
scored on its own sample, every figure a column holds is a row of the table (shown as its kind says), the files
hold the report and are left untouched by a rewrite of the same bytes, ``quality.json`` carries the number
settings, the confusion counts (label by the probe's choice) and the lowest-quality utterances, and a smaller set
brings every column's sample down to its size."""

from __future__ import annotations

import json
import os
from dataclasses import replace
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf
from sacrebleu.metrics import BLEU
from sklearn.metrics import confusion_matrix

from erc.data import Dialogue, Utterance
from erc.data.labels import label_set
from erc.data.schema import SPLITS
from erc.paths import CONFIG_DIR
from erc.quality.corpus import Corpus, read_generated_set
from erc.quality.distance import embedding_distance, frechet_distance
from erc.quality.diversity import diversity, sampled_figures, self_bleu, tokenize
from erc.quality.fidelity import Fidelity
from erc.quality.outputs import ROWS, markdown_report, write_report
from erc.quality.report import QualityReport, ScoredSet, judge_figures

MELD7 = label_set("meld")
DEDUP = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "dedup" / "default.yaml"))      # the defaults
TEXTS = ["I can not believe you did that.", "You did that to me again!", "Oh, I did not mean it.",
         "Well, you did it again.", "Can we talk about it?", "No, we can not talk now."]


def _corpus(dialogues: dict[str, list[tuple[str, str]]], name: str = "meld_nat") -> Corpus:
    """A corpus of dialogues {id: [(text, label), ...]}, speakers A and B taking turns, every dialogue in train."""
    return Corpus.from_dialogues(name, "meld", [
        Dialogue(id=key, benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("AB"[t % 2], text, label) for t, (text, label) in enumerate(rows)])
        for key, rows in dialogues.items()])


# ---- distance ----------------------------------------------------------------------------------------------------
def test_the_embedding_distance_is_prdcs_and_the_frechet_distance_on_equal_samples_of_both_sides() -> None:
    """With the sample at least both sides' size, every row is taken: the figures are prdc's (real as real, the
    set as fake) and the Fréchet distance of the two clouds. The larger side is sampled down to the smaller one's
    size (or to the configured size), each row at most once: a cloud against itself is at distance 0."""
    from prdc import compute_prdc

    rng = np.random.default_rng(3)
    real, fake = rng.normal(size=(40, 4)), rng.normal(loc=0.4, scale=1.5, size=(40, 4)).astype(np.float32)
    whole = embedding_distance(real, fake, size=400, nearest_k=3, seed=0)
    expected = compute_prdc(real_features=real, fake_features=fake.astype(np.float64), nearest_k=3)
    assert expected["precision"] != pytest.approx(expected["recall"], abs=0.05)      # a swap would show
    assert {key: whole[key] for key in expected} == pytest.approx(expected, abs=1e-12)
    assert whole["frechet"] == pytest.approx(frechet_distance(real, fake.astype(np.float64)), rel=1e-12)
    assert whole["distance_sample"] == 40
    assert embedding_distance(real, fake[:25], size=400, nearest_k=3, seed=0)["distance_sample"] == 25
    assert embedding_distance(real[:25], fake, size=400, nearest_k=3, seed=0)["distance_sample"] == 25
    assert embedding_distance(real, fake[:25], size=20, nearest_k=3, seed=0)["distance_sample"] == 20
    itself = embedding_distance(real, real.copy(), size=400, nearest_k=3, seed=0)
    assert itself["frechet"] == pytest.approx(0, abs=1e-9)
    assert itself["precision"] == itself["recall"] == itself["coverage"] == 1.0


# ---- diversity ---------------------------------------------------------------------------------------------------
def test_self_bleu_is_scored_on_its_own_sample_and_the_counts_are_the_sets() -> None:
    """distinct-n on a sample of 2 and self-BLEU on one of 6 (all six texts): self-BLEU is sacrebleu's mean
    sentence BLEU of each of the six against the other five, not of the distinct-n sample; the set's utterances
    and dialogues are counted whole."""
    corpus = _corpus({"a": [(t, "joy") for t in TEXTS[:4]], "b": [(t, "anger") for t in TEXTS[4:]]})
    bleu = BLEU(effective_order=True)
    expected = np.mean([bleu.sentence_score(t, TEXTS[:i] + TEXTS[i + 1:]).score for i, t in enumerate(TEXTS)])
    figures = sampled_figures(corpus, tokenize(corpus.texts), 2, 6, seed=0)
    assert figures["self_bleu"] == pytest.approx(expected, abs=1e-9) and expected > 5
    assert (figures["sample_utterances"], figures["self_bleu_utterances"]) == (2, 6)
    whole = diversity(corpus, sample_utterances=2, self_bleu_utterances=6, length_cap=None, seed=0, dedup=DEDUP)
    assert whole["self_bleu"] == figures["self_bleu"]
    assert (whole["utterances"], whole["dialogues"]) == (6, 2)


# ---- the table and the files -------------------------------------------------------------------------------------
# what a column holds but the table does not show as a row of its own: the intervals (in their W-F1 cells), the
# per-label agreement (rows of their own after the metrics), the mean label quality (the suspicious list shows it),
# the cap (in the row's title's stead) and the near count against train (a synthetic set is meant to read like it)
NOT_ROWS = {"probe_wf1_ci", "real_plus_synthetic_wf1_ci", "agreement_per_label", "label_quality", "length_cap",
            "contamination_near_train"}

# the figures that are shares (of utterances, dialogues, n-grams or test rows): shown in percent
SHARES = {"agreement", "chance", "flagged", "majority_wf1", "distinct_1", "distinct_2", "distinct_3",
          "duplicate_dialogues_exact", "duplicate_dialogues_near", "duplicate_utterances", "at_length_cap",
          "ends_mid_word", "judge_accuracy"}


def _figures(tmp_path: Path) -> dict:
    """One column of every figure the report computes, from its own functions on tiny inputs."""
    corpus = _corpus({"a": [(t, "joy") for t in TEXTS[:4]], "b": [(t, "anger") for t in TEXTS[4:]]})
    fidelity = Fidelity(labels=np.array([1, 1, 3, 3]), predicted=np.array([1, 3, 3, 3]), quality=np.ones(4),
                        flagged=np.zeros(4, dtype=bool))
    rng = np.random.default_rng(0)
    report = QualityReport.__new__(QualityReport)        # _usefulness reads only these
    report.names, report.seed, report.majority_wf1 = MELD7, 0, 0.25
    report.settings = {"probe": {"bootstrap": 10}}
    report.test_y = np.array([0, 1, 1, 3])
    (tmp_path / "judge").mkdir()
    (tmp_path / "judge" / "agreement.json").write_text(json.dumps({"accuracy": 0.5, "kappa": 0.25}))
    return {**fidelity.summary(MELD7), "fidelity_ratio": 0.5, **report._usefulness(np.array([0, 1, 3, 3]), None),
            **diversity(corpus, sample_utterances=5, self_bleu_utterances=6, length_cap=20, seed=0, dedup=DEDUP),
            "label_js": 0.1, **embedding_distance(rng.normal(size=(9, 3)), rng.normal(size=(8, 3)), 400, 3, 0),
            **{f"contamination_{split}": 1 for split in SPLITS},
            **{f"contamination_near_{split}": 1 for split in SPLITS}, **judge_figures(tmp_path), "too_small": True}


def test_every_figure_a_column_holds_is_one_row_of_the_table_shown_as_its_kind(tmp_path) -> None:
    """Each figure is one row (none left out, none twice, no row for a figure no column can hold); counts show as
    integers, the too-small flag as yes, shares in percent (a share lies in [0, 1]; every share is one, W-F1 shown
    with its interval); figures beyond [0, 1] (self-BLEU, token counts, the Fréchet distance) are no share."""
    figures = _figures(tmp_path)
    keys = [key for key, _, _ in ROWS]
    assert len(keys) == len(set(keys))
    assert set(keys) == set(figures) - NOT_ROWS
    for key, _, kind in ROWS:
        value = figures[key]
        if kind == "i":
            assert isinstance(value, int) and not isinstance(value, bool), key
        elif kind == "flag":
            assert value is True, key
        elif kind in ("%", "wf1"):
            assert value is None or 0 <= value <= 1, key
    shown = {key: kind for key, _, kind in ROWS}
    assert {shown[k] for k in ("self_bleu", "tokens_mean", "tokens_p95", "turns_mean", "frechet")} == {"f"}
    assert {shown[k] for k in ("utterances", "dialogues", "vocabulary", "sample_utterances", "distance_sample",
                               "self_bleu_utterances", "contamination_test")} == {"i"}
    assert {key for key, kind in shown.items() if kind == "%"} == SHARES
    assert {key for key, kind in shown.items() if kind == "wf1"} == {"probe_wf1", "real_plus_synthetic_wf1"}


# rows of one kind, each named for its own variant: the words in its title that no sibling's title holds
SIBLINGS = (
    {"agreement": "agreement with the probe", "chance": "chance agreement", "kappa": "Cohen's kappa",
     "fidelity_ratio": "kappa / real kappa", "flagged": "flagged by cleanlab"},
    {"probe_wf1": "probe W-F1", "real_plus_synthetic_wf1": "real + synthetic", "majority_wf1": "majority class"},
    {f"distinct_{n}": f"distinct-{n}" for n in (1, 2, 3)},
    {"sample_utterances": "distinct-n sample", "self_bleu_utterances": "self-BLEU sample",
     "distance_sample": "sample per side", "self_bleu": "self-BLEU (0-100)"},
    {"tokens_mean": "(mean)", "tokens_p95": "(95th pct)"},
    {"duplicate_dialogues_exact": "exact duplicate", "duplicate_dialogues_near": "near-duplicate",
     "duplicate_utterances": "repeated utterances"},
    {key: f"{key} (PRDC)" for key in ("precision", "recall", "density", "coverage")},
    {**{f"contamination_{split}": f"with a {split} line" for split in SPLITS},
     **{f"contamination_near_{split}": f"near a {split} line" for split in ("test", "dev")}},
    {"judge_accuracy": "agreement with the blind LLM judge", "judge_kappa": "kappa with the judge"},
    {"utterances": "size: utterances", "dialogues": "size: dialogues", "too_small": "too small"},
)


def test_each_row_is_titled_with_its_own_variant_of_a_figure() -> None:
    """Rows of one kind (distinct-1/2/3, contamination against each split, exact or near duplicates, the PRDC
    figures, the samples' sizes) are told apart by their titles: each names its own variant, and no sibling
    row's title does."""
    titles = {key: title for key, title, _ in ROWS}
    for group in SIBLINGS:
        for key, words in group.items():
            assert [other for other in group if words in titles[other]] == [key], (key, words)


def test_the_report_files_hold_the_report_and_a_rewrite_of_the_same_bytes_leaves_them_untouched(tmp_path) -> None:
    """quality.json is the report (non-ASCII text kept as it is), quality.md its markdown, each plot its bytes;
    a second write of the same report touches no file, a changed report rewrites quality.json."""
    report = {"columns": ["meld", "meld_nat"], "labels": ["neutral", "joy"],
              "encoder": {"name": "minilm", "identity": "enc-1"},
              "metrics": {"meld": {"kappa": 0.4, "agreement_per_label": {}},
                          "meld_nat": {"kappa": 0.2, "agreement_per_label": {}}},
              "suspicious": {"meld_nat": [{"id": "d0#0", "text": "Café?", "label": "joy", "probe": "neutral",
                                           "label_quality": 0.1}]}}
    out = tmp_path / "job" / "out"             # its parent made too
    paths = write_report(str(out), report, {"quality_metrics.png": b"\x89PNG one"})      # a str or a Path
    assert paths == [out / "quality.json", out / "quality.md", out / "quality_metrics.png"]
    assert json.loads((out / "quality.json").read_text(encoding="utf-8")) == report
    assert '"Café?"' in (out / "quality.json").read_text(encoding="utf-8")
    assert (out / "quality.md").read_text(encoding="utf-8") == markdown_report(report)
    assert (out / "quality_metrics.png").read_bytes() == b"\x89PNG one"
    for path in paths:
        os.utime(path, ns=(1_000_000_000, 1_000_000_000))
    write_report(out, report, {"quality_metrics.png": b"\x89PNG one"})
    assert {path.stat().st_mtime_ns for path in paths} == {1_000_000_000}
    report["metrics"]["meld_nat"]["kappa"] = 0.3
    write_report(out, report, {"quality_metrics.png": b"\x89PNG one"})
    assert [path.stat().st_mtime_ns != 1_000_000_000 for path in paths] == [True, True, False]


# ---- quality.json ------------------------------------------------------------------------------------------------
def _report_with_a_set() -> tuple[QualityReport, dict]:
    """A QualityReport's fields by hand: the real column, one set of two dialogues, its fidelity and leaks."""
    settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "quality" / "default.yaml"), resolve=False)
    settings["suspicious"] = 2
    corpus = _corpus({"a": [("one", "neutral"), ("two", "neutral")], "b": [("three", "joy"), ("four", "surprise")]})
    fidelity = Fidelity(labels=corpus.labels, predicted=np.array([0, 1, 1, 0]),
                        quality=np.array([0.9, 0.2, 0.8, 0.1]), flagged=np.array([False, True, False, True]))
    report = QualityReport.__new__(QualityReport)
    report.benchmark, report.names, report.settings = "meld", MELD7, settings
    report.encoder = SimpleNamespace(name="minilm", identity="enc-1", encoded=5)
    report.cache = SimpleNamespace(hits=3, misses=2)
    report.timings = {"embed meld": 1.23456}
    report.columns = {"meld": {"kappa": 0.123456}, "meld_nat": {"kappa": 1 / 3, "probe_wf1_ci": [0.11111, 0.2]}}
    report.sets = {"meld_nat": ScoredSet(corpus, np.zeros((4, 2)), fidelity, {})}
    report.leaks = {"meld_nat": {"splits": {"test": {"utterances": 1}}}}
    return report, settings


def test_quality_json_holds_the_number_settings_the_confusion_and_the_lowest_quality_utterances() -> None:
    """The settings that change a number are kept (threads, batch size, cache and W&B are not: a rerun that
    changes only them writes the same bytes); the confusion counts are label (row) by the probe's choice
    (column), scikit-learn's; the suspicious list is the `suspicious` lowest-quality utterances by id."""
    report, settings = _report_with_a_set()
    data = report.to_dict()
    assert data["benchmark"] == "meld" and data["labels"] == MELD7 and data["columns"] == ["meld", "meld_nat"]
    assert data["encoder"] == {"name": "minilm", "identity": "enc-1"}
    unchanging = {"enabled", "batch_size", "threads", "cache_dir", "wandb", "wandb_project", "wandb_mode"}
    assert data["settings"] == {k: v for k, v in settings.items() if k not in unchanging}
    assert data["metrics"] == {"meld": {"kappa": 0.1235}, "meld_nat": {"kappa": 0.3333, "probe_wf1_ci": [0.1111, 0.2]}}
    assert data["contamination"] == {"meld_nat": {"splits": {"test": {"utterances": 1}}}}
    expected = confusion_matrix([0, 0, 1, 2], [0, 1, 1, 0], labels=range(7)).tolist()
    assert data["confusion"] == {"meld_nat": expected} and expected[2][0] == 1 and expected[0][2] == 0
    assert [(row["id"], row["label"], row["probe"]) for row in data["suspicious"]["meld_nat"]] == [
        ("b#1", "surprise", "neutral"), ("a#1", "neutral", "joy")]
    assert report.run_facts() == {"encoded_texts": 5, "cache_hits": 3, "cache_misses": 2,
                                  "timings_s": {"embed meld": 1.23}}


def test_a_smaller_set_brings_every_columns_sample_down_to_its_size() -> None:
    """distinct-n and self-BLEU at the smallest column's size (at most the configured one) in every column: a
    4-utterance set beside a 6-utterance real column, with samples of 3 and 8 configured, gives 3 and 4 everywhere,
    the set's self-BLEU on all four of its texts."""
    report, _ = _report_with_a_set()
    small = _corpus({"a": [(t, "joy") for t in TEXTS[:2]], "b": [(t, "joy") for t in TEXTS[2:4]]})
    report.real = _corpus({"r": [(t, "joy") for t in TEXTS]}, name="meld")
    report.settings["diversity"] = {"sample_utterances": 3, "self_bleu_utterances": 8}
    report.seed = 0
    report.sets = {"meld_nat": ScoredSet(small, np.zeros((4, 2)), report.sets["meld_nat"].fidelity, {})}
    report.columns = {name: {"sample_utterances": 6, "self_bleu_utterances": 6} for name in ("meld", "meld_nat")}
    report._equal_samples()
    for name in ("meld", "meld_nat"):
        assert (report.columns[name]["sample_utterances"], report.columns[name]["self_bleu_utterances"]) == (3, 4)
    assert report.columns["meld_nat"]["self_bleu"] == pytest.approx(self_bleu(TEXTS[:4]), abs=1e-12)


# ---- reading a set -----------------------------------------------------------------------------------------------
@pytest.mark.parametrize("folder, source", [("meld_bal", "bal"), ("meld_nat_probe", "nat_probe"), ("mine", "nat")])
def test_a_record_without_a_source_takes_its_folders(tmp_path, folder, source) -> None:
    """A record without 'source' is the source its folder is named for; a folder of the user's own naming counts
    as natural."""
    record = {"id": "d0", "utterances": [{"speaker": "A", "text": "Hi.", "label": "joy"}]}
    (tmp_path / folder).mkdir()
    (tmp_path / folder / "dev.jsonl").write_text(json.dumps(record) + "\n")
    corpus = read_generated_set(tmp_path / folder, "meld")
    assert [(d.source, d.split) for d in corpus.dialogues] == [(source, "dev")]


def test_each_row_is_a_turn_of_its_dialogue_with_that_dialogues_split() -> None:
    """Rows follow the dialogues in order: a three-turn train dialogue, then a one-turn test one, give turns
    0 1 2 0, dialogue index 0 0 0 1, splits train x3 then test, class ids in the benchmark's label order."""
    corpus = Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id="a", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("AB"[t % 2], text, label) for t, (text, label) in enumerate(
                     [("one", "joy"), ("two", "anger"), ("3", "fear")])]),
        Dialogue(id="b", benchmark="meld", split="test", source="nat", utterances=[Utterance("C", "four", "neutral")])])
    assert corpus.texts == ["one", "two", "3", "four"] and len(corpus) == 4
    np.testing.assert_array_equal(corpus.turns, [0, 1, 2, 0])
    np.testing.assert_array_equal(corpus.dialogue_index, [0, 0, 0, 1])
    assert list(corpus.splits) == ["train", "train", "train", "test"]
    assert [MELD7[c] for c in corpus.labels] == ["joy", "anger", "fear", "neutral"]
    assert [list(corpus.rows(split)) for split in SPLITS] == [[0, 1, 2], [], [3]]


# ---- the filter --------------------------------------------------------------------------------------------------
def test_the_filters_card_entry_names_itself_its_file_and_its_rule_and_rounds_a_share_to_four_decimals(tmp_path
                                                                                                      ) -> None:
    """Two of three utterances flagged: removed at max_rejected=0.5 with a share of 0.6667 in removed.jsonl; the card
    entry names the filter, the file listing what it removed and the rule with the benchmark's train split. A kept
    dialogue's source is its generated source's filtered one, also when it came through the judge's filter."""
    from erc.quality.filter import filter_set

    corpus = _corpus({"a": [("one", "joy"), ("two", "joy"), ("three", "joy")], "b": [("four", "joy")]})
    corpus.folder = tmp_path / "meld_nat"
    corpus.dialogues[1] = replace(corpus.dialogues[1], source="nat_judge")      # kept by the judge's filter before
    flagged = np.array([True, False, True, False])
    fidelity = Fidelity(labels=corpus.labels, predicted=np.where(flagged, 0, 1), quality=np.full(4, 0.5),
                        flagged=flagged)
    filtered, entry = filter_set(ScoredSet(corpus, np.zeros((4, 2)), fidelity, {}), MELD7, 0.5)
    assert [(d.id, d.source) for d in filtered.dialogues] == [("b", "nat_probe")]
    (removed,) = [json.loads(line) for line in (filtered.folder / entry["removed_file"]).read_text().splitlines()]
    assert removed["flagged_share"] == 0.6667 and removed["flagged"] == 2
    assert entry["filter"] == "probe" and entry["removed_file"] == "removed.jsonl"
    assert entry["rule"].endswith("flags under the probe trained on meld train")


# ---- settings and reading ----------------------------------------------------------------------------------------
def test_generate_checks_its_quality_settings_as_well_as_its_filters() -> None:
    """generate.py checks quality.* before any request, not only postprocess.*: the report runs after generation."""
    from erc.errors import ConfigError
    from erc.quality import check_generate_quality_config

    settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "quality" / "default.yaml"), resolve=False)
    settings["probe"]["C"] = 0
    cfg = OmegaConf.create({"quality": settings, "postprocess": {"filter": "probe", "max_rejected": 0.5}})
    with pytest.raises(ConfigError, match=r"^quality\.probe\.C must be a number > 0, got 0$"):
        check_generate_quality_config(cfg)
    settings["probe"]["C"] = 1.0
    check_generate_quality_config(OmegaConf.create({"quality": settings, "postprocess": {"filter": "probe",
                                                                                       "max_rejected": 0.5}}))


def test_a_set_whose_files_hold_no_dialogue_is_an_error_naming_them(tmp_path) -> None:
    from erc.data.schema import DataError

    folder = tmp_path / "meld_nat"
    folder.mkdir()
    for split in ("train", "test"):
        (folder / f"{split}.jsonl").write_text("\n")
    with pytest.raises(DataError, match=rf"^{folder}: train\.jsonl, test\.jsonl hold no dialogue: an empty set "
                                        r"cannot be scored"):
        read_generated_set(str(folder), "meld")      # a str or a Path


INTEGER_SETTINGS = ("batch_size", "threads", "seed", "probe.max_iter", "probe.bootstrap", "suspicious",
                    "diversity.sample_utterances", "diversity.self_bleu_utterances", "length_cap",
                    "distance.nearest_k", "distance.sample")


@pytest.mark.parametrize("key", INTEGER_SETTINGS)
def test_a_count_setting_refuses_a_fraction_naming_the_key(key) -> None:
    """A count (sizes, seeds, iterations, characters) given as 6.5 is refused, where probe.C takes it."""
    from erc.errors import ConfigError
    from erc.quality.checks import check_quality_config

    settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "quality" / "default.yaml"), resolve=False)
    node, *path = settings, *key.split(".")
    for part in path[:-1]:
        node = node[part]
    node[path[-1]] = 6.5
    with pytest.raises(ConfigError, match=rf"^quality\.{key} must be .*, got 6\.5$"):
        check_quality_config(settings)
    settings["probe"]["C"] = 6.5
    node[path[-1]] = 6
    check_quality_config(settings)


# ---- where the W&B run goes --------------------------------------------------------------------------------------
@pytest.mark.parametrize("output_dir, expected", [("job", "job"), (None, "set")])
def test_the_reports_wandb_run_goes_to_the_jobs_folder_else_the_first_set_folder(tmp_path, monkeypatch, output_dir,
                                                                                 expected) -> None:
    """quality.wandb=true: the run's files go to paths.output_dir (a set's folder is for its data), or, where that
    is not set, to the first folder the report went to.
    W&B itself is replaced by a recorder of the folder it is given: which folder is chosen is what is tested here."""
    import erc.quality.run as run
    import erc.quality.tracking as tracking

    folders = {"job": tmp_path / "job", "set": tmp_path / "meld_nat", "filtered": tmp_path / "meld_nat_probe"}
    chosen: list[Path] = []
    monkeypatch.setattr(run, "report_plots", lambda report: {})
    monkeypatch.setattr(tracking, "log_report", lambda quality, config, data, paths, folder: chosen.append(folder))
    report, _ = _report_with_a_set()
    report.columns = {name: {"kappa": 0.5, "agreement_per_label": {}} for name in ("meld", "meld_nat")}
    paths = {"log_dir": str(tmp_path / "logs")} | ({} if output_dir is None else {
        "output_dir": str(folders["job"])})
    cfg = OmegaConf.create({"quality": {"wandb": True}, "paths": paths})
    data = run._publish(cfg, report, [folders["set"], folders["filtered"]])
    assert chosen == [folders[expected]] and data["columns"] == ["meld", "meld_nat"]
    assert (folders["filtered"] / "quality.json").is_file()
