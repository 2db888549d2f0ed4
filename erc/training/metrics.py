"""ERC metrics over a benchmark's fixed label set: weighted F1 (the paper's figure), accuracy, macro F1,
per-class F1 and the confusion matrix.

Weighted F1 is sklearn's ``f1_score(average="weighted")`` with ``labels=range(C)``: the class list is
the benchmark's fixed label set, never the labels that happen to occur (the reference code derives it
per split, which shifts class ids when a split lacks a class).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from sklearn.metrics import accuracy_score, confusion_matrix, f1_score


def classification_metrics(y_true: Sequence[int], y_pred: Sequence[int], labels: Sequence[str]) -> dict[str, Any]:
    """Scalar metrics (``wf1``, ``acc``, ``mf1``, ``f1/<label>``) plus ``confusion`` (rows: gold, cols: predicted).

    Classes absent from both gold and predictions get F1 0 and weight 0 (``zero_division=0``), so the
    weighted F1 equals sklearn's on the same arrays.
    """
    y_true = np.asarray(y_true, dtype=int)
    y_pred = np.asarray(y_pred, dtype=int)
    ids = list(range(len(labels)))
    if len(y_true) == 0:
        raise ValueError("no predictions to score (empty evaluation set)")
    per_class = f1_score(y_true, y_pred, labels=ids, average=None, zero_division=0)
    metrics: dict[str, Any] = {
        "wf1": float(f1_score(y_true, y_pred, labels=ids, average="weighted", zero_division=0)),
        "acc": float(accuracy_score(y_true, y_pred)),
        "mf1": float(f1_score(y_true, y_pred, labels=ids, average="macro", zero_division=0)),
    }
    metrics.update({f"f1/{name}": float(value) for name, value in zip(labels, per_class, strict=True)})
    metrics["confusion"] = confusion_matrix(y_true, y_pred, labels=ids).tolist()
    return metrics
