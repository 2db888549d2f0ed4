"""The quality report's figures where two plausible readings differ, on tiny hand-made inputs (no encoding, no
benchmark): ties among many suspicious labels, utterances ending in spaces, encoder folders named relative to the
working folder or the home folder, and a report refusing a bad setting before it reads anything."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from omegaconf import OmegaConf

from erc.data import Dialogue, Utterance
from erc.data.labels import label_set
from erc.errors import ConfigError
from erc.paths import CONFIG_DIR
from erc.pretrained import folder_identity
from erc.quality.corpus import Corpus
from erc.quality.diversity import diversity
from erc.quality.embeddings import resolve_encoder
from erc.quality.fidelity import Fidelity, most_suspicious, score_labels
from erc.quality.report import QualityReport

MELD7 = label_set("meld")
DEDUP = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "dedup" / "default.yaml"))      # the defaults


def test_many_equally_suspicious_labels_are_listed_in_row_order() -> None:
    """40 utterances with two label qualities (a one-class set scores each by one probability, so ties are common):
    the 20 low ones first in row order, then the first of the high ones. numpy's default sort reorders ties in
    arrays longer than 16, so the order must come from a stable sort."""
    n = 40
    fidelity = Fidelity(labels=np.zeros(n, dtype=np.int64), predicted=np.ones(n, dtype=np.int64),
                        quality=np.tile([0.75, 0.25], n // 2), flagged=np.zeros(n, dtype=bool))
    rows = most_suspicious([f"text {i}" for i in range(n)], fidelity, MELD7, 25, [f"d#{i}" for i in range(n)])
    assert [row["id"] for row in rows] == [f"d#{i}" for i in (*range(1, n, 2), *range(0, 10, 2))]
    assert [row["label_quality"] for row in rows] == [0.25] * 20 + [0.75] * 5


def test_a_one_label_sets_fidelity_keeps_its_labels_and_the_probes_choices_apart() -> None:
    """A set whose utterances all carry one label (scored without cleanlab): its labels stay the labels and the
    probe's choices the choices, so the label's agreement is the share the probe chose it (1 of 3) and the labels
    the probe chose instead have none (never given)."""
    probs = np.array([[0.2, 0.7, 0.1], [0.6, 0.3, 0.1], [0.1, 0.1, 0.8]])
    fidelity = score_labels(np.array([0, 0, 0]), probs)
    np.testing.assert_array_equal(fidelity.labels, [0, 0, 0])
    np.testing.assert_array_equal(fidelity.predicted, [1, 0, 2])
    per_label = fidelity.summary(MELD7[:3])["agreement_per_label"]
    assert per_label == {"neutral": pytest.approx(1 / 3), "joy": None, "surprise": None}


def test_an_utterance_ending_in_spaces_is_judged_by_its_last_character_and_its_length_once_stripped() -> None:
    """Trailing spaces (a cut right after a space, or a writer's habit) are not the utterance's end: "Hey there   "
    ends mid-word and, 9 characters once stripped, sits at a 10-character cap; "Fine.      " (11 characters with its
    spaces) is neither."""
    texts = ["Hey there   ", "Fine.      ", "Go", "Stop it."]
    corpus = Corpus.from_dialogues("meld_nat", "meld", [
        Dialogue(id="d0", benchmark="meld", split="train", source="nat",
                 utterances=[Utterance("A", t, "joy") for t in texts])])
    figures = diversity(corpus, sample_utterances=10, self_bleu_utterances=4, length_cap=10, seed=0, dedup=DEDUP)
    assert figures["ends_mid_word"] == pytest.approx(2 / 4)                  # "Hey there", "Go"
    assert figures["at_length_cap"] == pytest.approx(1 / 4)                  # "Hey there" only


@pytest.mark.parametrize("name", ["my-model", "./my-model", "~/my-model"])
def test_an_encoder_folder_named_relative_to_the_working_or_home_folder_is_loaded_by_its_full_path(
        tmp_path, monkeypatch, name) -> None:
    """quality.encoder=my-model, ./my-model or ~/my-model names a local model folder: it is loaded from its absolute
    path (the same model whichever folder a later step runs in), never asked of the hub by that name."""
    home = tmp_path / "home"
    model = home / "my-model"
    model.mkdir(parents=True)
    (model / "config.json").write_text("{}")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.chdir(home)
    target, identity = resolve_encoder(name)
    assert Path(target).is_absolute() and target == str(model.resolve())
    assert identity == folder_identity(model)


def test_a_file_named_as_the_encoder_is_refused_as_no_model_folder(tmp_path, monkeypatch) -> None:
    """quality.encoder=notes.txt, an existing file in the working folder, is a local path (not a hub name): refused
    naming the option, before any model is loaded."""
    (tmp_path / "notes.txt").write_text("not a model")
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match=r"^quality.encoder='notes.txt': no model folder there; give 'minilm'"):
        resolve_encoder("notes.txt")


@pytest.mark.parametrize("probe_c, contamination, message", [
    (0, None, r"^quality\.probe\.C must be a number > 0, got 0$"),
    (1.0, {"min_words": 0, "ngram": 8, "examples": 5, "near_threshold": None},
     r"^contamination\.min_words must be an integer >= 1, got 0 "),
])
def test_a_quality_report_refuses_a_bad_setting_before_reading_the_benchmark(tmp_path, probe_c, contamination,
                                                                            message) -> None:
    """QualityReport (as quality.py and generate.py make it) checks its quality and contamination settings first:
    the error names the key, not the missing benchmark folder it would otherwise fail on."""
    settings = OmegaConf.to_container(OmegaConf.load(CONFIG_DIR / "quality" / "default.yaml"), resolve=False)
    settings["probe"]["C"] = probe_c
    with pytest.raises(ConfigError, match=message):
        QualityReport(settings, "meld", tmp_path / "no-data", DEDUP, contamination)
