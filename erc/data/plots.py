"""Label-distribution plots in the style of the paper's Fig. 2: one horizontal bar per label and
dataset, counts on a log scale so that rare labels (MELD's fear, disgust) stay visible. The same
function overlays a benchmark and its generated sets."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np


def plot_label_distribution(counts: Mapping[str, Mapping[str, int]], labels: list[str], title: str,
                            path: str | Path) -> Path:
    """Draw ``counts[dataset][label]`` as grouped horizontal bars on a log axis and save a PNG.

    ``labels`` fixes the bar order (the benchmark's class order, top to bottom). Datasets are drawn
    in the mapping's order; each legend entry shows the dataset's total utterance count.
    """
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    names = list(counts)
    height = 0.8 / max(len(names), 1)
    y = np.arange(len(labels))[::-1]
    fig, ax = plt.subplots(figsize=(7, 0.5 * len(labels) * max(1.0, len(names) / 2) + 1.5))
    for i, name in enumerate(names):
        values = np.array([counts[name].get(label, 0) for label in labels], dtype=float)
        offset = (i - (len(names) - 1) / 2) * height
        bars = ax.barh(y - offset, np.where(values > 0, values, np.nan), height=height,
                       label=f"{name} (n={int(values.sum())})")
        for bar, value in zip(bars, values, strict=True):
            if value > 0:
                ax.text(value * 1.05, bar.get_y() + bar.get_height() / 2, f"{int(value)}",
                        va="center", fontsize=7)
    ax.set_xscale("log")
    ax.set_yticks(y, labels)
    ax.set_xlabel("utterances (log scale)")
    ax.set_title(f"{title} (all splits)")
    nonzero = [v for c in counts.values() for v in c.values() if v > 0] or [1]
    ax.set_xlim(10 ** np.floor(np.log10(min(nonzero))) / 2, max(nonzero) * 3)
    ax.legend(loc="lower right", fontsize=8)
    ax.grid(axis="x", which="both", alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
    return path
