"""``label_distribution.png``: utterances per label of the reference benchmark and the generated
sets, as horizontal bars on a logarithmic axis so rare labels stay visible (the paper's Fig. 2)."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402  (after choosing the file-only backend)


def plot_label_distribution(sets: dict[str, Counter[str]], labels: list[str], path: Path, title: str) -> None:
    """One group of bars per label, one bar per dataset (``sets``: name -> label counts)."""
    height = 0.8 / max(len(sets), 1)
    fig, ax = plt.subplots(figsize=(7.5, 0.55 * len(labels) * max(len(sets), 1) ** 0.5 + 1.5))
    for k, (name, counts) in enumerate(sets.items()):
        positions = [i + (k - (len(sets) - 1) / 2) * height for i in range(len(labels))]
        values = [counts.get(label, 0) for label in labels]
        bars = ax.barh(positions, values, height=height, label=f"{name} ({sum(values)} utt.)")
        ax.bar_label(bars, labels=[str(v) if v else "" for v in values], padding=2, fontsize=7)
    ax.set_yticks(range(len(labels)), labels)
    ax.invert_yaxis()
    ax.set_xscale("log")
    ax.set_xlabel("utterances (log scale)")
    ax.set_title(title)
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=120)
    plt.close(fig)
