"""EmoOne-RoBERTa: grayscale labels and loss on hand-checked examples (label orders from conf/benchmark),
the cached teacher, one label order for teacher and student, and training through the runner."""

from __future__ import annotations

import math

import pytest
import torch

from erc.data import DataError, label_set
from erc.models.grayscale import emoone_loss, heuristic_gray, heuristic_gray_batch, teacher_post


def vector(benchmark: str, weights: dict[str, float]) -> list[float]:
    """A gray vector written by label name, laid out in the benchmark's class order."""
    return [weights.get(name, 0.0) for name in label_set(benchmark)]


def meld(label: str) -> int:
    return label_set("meld").index(label)


@pytest.mark.parametrize(("benchmark", "label", "sentiment", "expected"), [
    # MELD anger said with negative sentiment: 1 and 0.5 x3, normalised by 2.5.
    ("meld", "anger", "negative", {"anger": 0.4, "sadness": 0.2, "disgust": 0.2, "fear": 0.2}),
    # A negative surprise sits with the negative group (the utterance's sentiment decides): 1 + 4 x 0.5 = 3.
    ("meld", "surprise", "negative", {"surprise": 1 / 3, "anger": 1 / 6, "sadness": 1 / 6, "disgust": 1 / 6,
                                      "fear": 1 / 6}),
    # A positive surprise: the gold keeps 1, joy gets 0.5.
    ("meld", "surprise", "positive", {"surprise": 2 / 3, "joy": 1 / 3}),
    ("meld", "surprise", "neutral", {"surprise": 2 / 3, "neutral": 1 / 3}),
    # Generated MELD data has no sentiment: surprise's own group (neutral) is used.
    ("meld", "surprise", None, {"surprise": 2 / 3, "neutral": 1 / 3}),
    ("meld", "joy", "positive", {"joy": 1.0}),
    ("emorynlp", "peaceful", None, {"peaceful": 0.5, "joyful": 0.25, "powerful": 0.25}),
    ("emorynlp", "neutral", None, {"neutral": 1.0}),
    ("iemocap", "frustrated", None, {"frustrated": 0.5, "sad": 0.25, "angry": 0.25}),
    ("iemocap", "excited", None, {"excited": 2 / 3, "happy": 1 / 3}),
])
def test_heuristic_gray_hand_checked(benchmark, label, sentiment, expected):
    got = heuristic_gray(benchmark, label_set(benchmark).index(label), sentiment)
    assert got == pytest.approx(vector(benchmark, expected))
    assert math.isclose(sum(got), 1.0)


def test_heuristic_gray_batch_matches_rows_and_rejects_bad_sentiment():
    labels = [meld("anger"), meld("surprise"), meld("joy")]
    sentiments = ["negative", "negative", None]
    batch = heuristic_gray_batch("meld", labels, sentiments)
    assert batch.shape == (3, 7)
    for row, label, sentiment in zip(batch, labels, sentiments):
        assert row.tolist() == pytest.approx(heuristic_gray("meld", label, sentiment))
    with pytest.raises(DataError, match="'angry'"):
        heuristic_gray("meld", meld("anger"), "angry")


def test_teacher_post_lifts_gold_to_half_and_keeps_confident_rows():
    probs = torch.tensor([[0.2, 0.6, 0.2], [0.2, 0.6, 0.2], [0.5, 0.3, 0.2]])
    gold = torch.tensor([0, 1, 0])
    out = teacher_post(probs, gold)
    # Row 0: gold 0.2 < 0.5 -> 0.5, the rest 0.5 * (0.6, 0.2) / 0.8.
    assert out[0].tolist() == pytest.approx([0.5, 0.375, 0.125])
    assert out[1].tolist() == pytest.approx([0.2, 0.6, 0.2])  # teacher already gives gold 0.6
    assert out[2].tolist() == pytest.approx([0.5, 0.3, 0.2])  # exactly 0.5 is kept (reference: >= 0.5)
    assert out.sum(dim=1).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_emoone_loss_equals_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(4, 7)
    gold = torch.tensor([3, 0, 6, 2])
    gray = torch.softmax(torch.randn(4, 7), dim=1)
    w1, w2 = 0.7, 1.3
    # Written out term by term: w1 * mean_b(-log p_b[gold_b]) + w2 * mean_b(-sum_c g_bc log p_bc).
    p = [[math.exp(x) / sum(math.exp(y) for y in row) for x in row] for row in logits.tolist()]
    ce = sum(-math.log(p[b][gold[b]]) for b in range(4)) / 4
    soft = sum(-sum(gray[b, c].item() * math.log(p[b][c]) for c in range(7)) for b in range(4)) / 4
    assert emoone_loss(logits, gold, gray, w1, w2).item() == pytest.approx(w1 * ce + w2 * soft, rel=1e-5)
    # With the gray label equal to the one-hot gold, the two terms coincide.
    one_hot = torch.nn.functional.one_hot(gold, 7).float()
    assert emoone_loss(logits, gold, one_hot, 1.0, 1.0).item() == pytest.approx(2 * ce, rel=1e-5)
