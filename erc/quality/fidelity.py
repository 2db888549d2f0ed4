"""Label fidelity: do a set's labels agree with what a probe trained on the real benchmark reads in its text?

Agreement alone misleads (a probe that says "neutral" half the time agrees with any set that is half neutral),
so it comes with its chance level, the agreement expected if labels and the probe's choices were independent
given their frequencies, and Cohen's kappa, which is agreement above that chance level (0: labels unrelated to
text). The same numbers for the real test split are the ceiling a perfect generator would reach.

Per utterance, cleanlab scores how plausible the given label is under the probe (``self_confidence``: the
probe's probability of it) and flags the labels confident learning finds to be issues; the flags feed the
fidelity filter (:mod:`erc.quality.filter`). The probe was trained on other data, so its probabilities are
out-of-sample for every synthetic row, as cleanlab wants; a flag still mixes a wrong label with a probe error or
a shift in style between the set and the benchmark.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
from sklearn.metrics import cohen_kappa_score


@dataclass
class Fidelity:
    """Per-utterance results for one set, in its rows' order."""

    labels: np.ndarray
    predicted: np.ndarray
    quality: np.ndarray      # cleanlab's label quality score, in [0, 1]; low: suspect
    flagged: np.ndarray      # bool: cleanlab's find_label_issues

    def summary(self, names: list[str]) -> dict[str, object]:
        """Agreement, chance agreement, kappa, flagged share and agreement per label (None for an absent label)."""
        k = len(names)
        n = max(len(self.labels), 1)
        given = np.bincount(self.labels, minlength=k) / n
        chosen = np.bincount(self.predicted, minlength=k) / n
        chance = float(given @ chosen)
        agreement = float(np.mean(self.labels == self.predicted)) if len(self.labels) else 0.0
        same = self.labels == self.predicted
        if len(np.unique(np.concatenate([self.labels, self.predicted]))) < 2:
            kappa = 0.0   # one class on both sides: kappa is undefined, and nothing beyond chance was shown
        else:
            kappa = float(cohen_kappa_score(self.labels, self.predicted, labels=list(range(k))))
        per_label = {name: (float(same[self.labels == i].mean()) if np.any(self.labels == i) else None)
                     for i, name in enumerate(names)}
        return {"agreement": agreement, "chance": chance, "kappa": kappa,
                "flagged": float(self.flagged.mean()) if len(self.flagged) else 0.0,
                "label_quality": float(self.quality.mean()) if len(self.quality) else 0.0,
                "agreement_per_label": per_label}


def score_labels(labels: np.ndarray, probs: np.ndarray) -> Fidelity:
    """Fidelity of ``labels`` under the probe's ``probs`` (rows aligned, columns in class order)."""
    from cleanlab.filter import find_label_issues
    from cleanlab.rank import get_label_quality_scores

    predicted = probs.argmax(axis=1)
    if len(np.unique(labels)) < 2:   # cleanlab needs two classes; the probe's probability of the label is the score
        quality = probs[np.arange(len(labels)), labels] if len(labels) else np.zeros(0)
        return Fidelity(labels, predicted, quality, predicted != labels)
    quality = get_label_quality_scores(labels, probs, method="self_confidence")
    with warnings.catch_warnings():   # a class with few examples in a small set: expected, and nothing to act on
        warnings.filterwarnings("ignore", message="May not flag all label issues")
        flagged = find_label_issues(labels, probs, filter_by="prune_by_noise_rate", n_jobs=1, verbose=False)
    return Fidelity(labels, predicted, np.asarray(quality), np.asarray(flagged, dtype=bool))


def most_suspicious(texts: list[str], fidelity: Fidelity, names: list[str], count: int,
                    ids: list[str]) -> list[dict[str, object]]:
    """The ``count`` utterances with the lowest label quality, lowest first (ties in row order)."""
    order = np.argsort(fidelity.quality, kind="stable")[:count]
    return [{"id": ids[i], "text": texts[i], "label": names[fidelity.labels[i]],
             "probe": names[fidelity.predicted[i]], "label_quality": round(float(fidelity.quality[i]), 4),
             "flagged": bool(fidelity.flagged[i])} for i in order]
