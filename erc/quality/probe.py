"""The probe: a logistic regression on frozen utterance embeddings, the report's one classifier.

It is deliberately weak and cheap (seconds on two cores): what it measures is whether labels are predictable
from text at all, for fidelity (trained on the real train split, asked about synthetic labels) and usefulness
(trained on synthetic, tested on real). Weighted F1 and its bootstrap interval are computed from confusion counts,
so a thousand resamples of a test split cost milliseconds.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import LogisticRegression

from erc.quality.corpus import Corpus


def features(corpus: Corpus, vectors: np.ndarray, rows: np.ndarray, context: bool) -> np.ndarray:
    """The probe's input for ``rows`` of ``corpus`` (``vectors``: one embedding per row): the utterance's
    embedding, with ``context`` also its preceding turn's (zeros for a dialogue's first turn)."""
    if not context:
        return vectors[rows]
    first = corpus.turns[rows] == 0
    before = np.where(first[:, None], 0.0, vectors[np.maximum(rows - 1, 0)]).astype(np.float32)
    return np.hstack([vectors[rows], before])


@dataclass
class Probe:
    """A fitted probe over all ``n_classes`` (a class absent from its training data gets probability 0)."""

    n_classes: int
    model: LogisticRegression | None
    constant: int | None = None     # the one class seen in training, when only one was

    @classmethod
    def fit(cls, x: np.ndarray, y: np.ndarray, n_classes: int, c: float, max_iter: int, seed: int) -> Probe:
        seen = np.unique(y)
        if len(seen) < 2:
            return cls(n_classes, None, int(seen[0]) if len(seen) else 0)
        model = LogisticRegression(C=c, max_iter=max_iter, random_state=seed)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)   # max_iter is the user's trade-off, not an error
            model.fit(x, y)
        return cls(n_classes, model)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        probs = np.zeros((len(x), self.n_classes))
        if self.model is None:
            probs[:, self.constant] = 1.0
        else:
            probs[:, self.model.classes_] = self.model.predict_proba(x)
        return probs

    def predict(self, x: np.ndarray) -> np.ndarray:
        return self.predict_proba(x).argmax(axis=1)


def _weighted_f1(confusion: np.ndarray) -> np.ndarray:
    """Weighted F1 of each (..., K, K) confusion matrix (gold rows): per-class F1 weighted by gold support,
    0 for a class never predicted or never present (scikit-learn's ``zero_division=0``)."""
    tp = np.diagonal(confusion, axis1=-2, axis2=-1).astype(float)
    support = confusion.sum(axis=-1)
    predicted = confusion.sum(axis=-2)
    denominator = support + predicted
    f1 = np.divide(2 * tp, denominator, out=np.zeros_like(tp), where=denominator > 0)
    total = support.sum(axis=-1, keepdims=True)
    return (f1 * support).sum(axis=-1) / np.maximum(total[..., 0], 1)


def confusion_matrix(gold: np.ndarray, predicted: np.ndarray, n_classes: int) -> np.ndarray:
    return np.bincount(gold * n_classes + predicted, minlength=n_classes ** 2).reshape(n_classes, n_classes)


def weighted_f1(gold: np.ndarray, predicted: np.ndarray, n_classes: int) -> float:
    return float(_weighted_f1(confusion_matrix(gold, predicted, n_classes)))


def bootstrap_interval(gold: np.ndarray, predicted: np.ndarray, n_classes: int, resamples: int, seed: int
                       ) -> tuple[float, float] | None:
    """The 2.5 and 97.5 percentiles of weighted F1 over test rows resampled with replacement (utterances are
    treated as independent, though they sit in dialogues: the interval is somewhat too narrow). None with no
    resamples."""
    if resamples <= 0 or len(gold) == 0:
        return None
    rng = np.random.default_rng(seed)
    picks = rng.integers(0, len(gold), size=(resamples, len(gold)))
    codes = gold[picks] * n_classes + predicted[picks]
    offsets = np.arange(resamples)[:, None] * n_classes ** 2
    confusions = np.bincount((codes + offsets).ravel(), minlength=resamples * n_classes ** 2)
    scores = _weighted_f1(confusions.reshape(resamples, n_classes, n_classes))
    low, high = np.percentile(scores, [2.5, 97.5])
    return float(low), float(high)
