"""Agreement between a set's generated labels and the judge's: accuracy, Cohen's kappa (scikit-learn), per label
precision and recall of the judge against the generated label, the confusion counts and their figure.

Per label, ``recall`` is the share of the utterances generated with that label that the judge labelled so, and
``precision`` the share of the utterances the judge gave that label that were generated with it; None where
nothing was counted. A dialogue's agreement is the share of its utterances the judge labelled as generated: what
the filter keeps or removes by.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np

from erc.data.schema import Dialogue

if TYPE_CHECKING:
    from matplotlib.figure import Figure


def dialogue_agreement(dialogue: Dialogue, judged: list[str]) -> float:
    """The share of ``dialogue``'s utterances whose judged label is the generated one."""
    return sum(u.label == j for u, j in zip(dialogue.utterances, judged, strict=True)) / len(dialogue)


def _share(numerator: int, denominator: int) -> float | None:
    return round(numerator / denominator, 4) if denominator else None


def agreement(dialogues: list[Dialogue], judged: dict[str, list[str]], labels: list[str]) -> dict[str, Any]:
    """The figures over the judged dialogues among ``dialogues`` (``judged``: dialogue id -> labels)."""
    from sklearn.metrics import cohen_kappa_score

    pairs = [(u.label, j) for d in dialogues if d.id in judged for u, j in zip(d.utterances, judged[d.id],
                                                                               strict=True)]
    index = {label: i for i, label in enumerate(labels)}
    counts = np.zeros((len(labels), len(labels)), dtype=int)
    for generated, answer in pairs:
        counts[index[generated], index[answer]] += 1
    total = int(counts.sum())
    kappa = None
    if total and len({p for pair in pairs for p in pair}) > 1:
        kappa = round(float(cohen_kappa_score([g for g, _ in pairs], [j for _, j in pairs], labels=labels)), 4)
    return {
        "dialogues": {"judged": sum(d.id in judged for d in dialogues), "unjudged": sum(d.id not in judged
                                                                                     for d in dialogues)},
        "utterances": total, "accuracy": _share(int(np.trace(counts)), total), "kappa": kappa,
        "per_label": {label: {"generated": int(counts[i].sum()), "judged": int(counts[:, i].sum()),
                              "precision": _share(int(counts[i, i]), int(counts[:, i].sum())),
                              "recall": _share(int(counts[i, i]), int(counts[i].sum()))}
                      for i, label in enumerate(labels)},
        "confusion": {"rows": "generated", "columns": "judged", "counts": counts.tolist()},
    }


def confusion_figure(figures: dict[str, Any], labels: list[str], name: str) -> Figure:
    """The set's labels (rows) against the judge's (columns), rows normalised, the kappa in the title."""
    from erc.plots import draw_confusion, plt

    fig, ax = plt.subplots(figsize=(4.6, 4.2))
    draw_confusion(ax, np.array(figures["confusion"]["counts"]), labels, "judge's label", name)
    kappa = "-" if figures["kappa"] is None else f"{figures['kappa']:.2f}"
    fig.suptitle(f"Generated labels vs the LLM judge's (kappa {kappa}; rows sum to 1)", fontsize=10)
    return fig
