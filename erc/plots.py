"""Figure helpers shared by the reports that draw (the quality report, the LLM judge): PNG bytes with no date in
them, so a rerun writes the same bytes, and the row-normalised confusion panel both draw."""

from __future__ import annotations

import io

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np

__all__ = ["draw_confusion", "figure_png", "plt"]


def figure_png(fig: plt.Figure) -> bytes:
    """``fig`` as PNG bytes (closed afterwards), without the Software/date metadata."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=110, bbox_inches="tight", metadata={"Software": None})
    plt.close(fig)
    return buffer.getvalue()


def draw_confusion(ax: plt.Axes, counts: np.ndarray, names: list[str], chooser: str, title: str) -> None:
    """Counts of the set's labels (rows) against ``chooser``'s (columns) on ``ax``, each row normalised (the quality
    report's probe and the LLM judge)."""
    counts = np.asarray(counts, dtype=float)
    shares = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    ax.imshow(shares, vmin=0, vmax=1, cmap="Blues")
    for (r, c), value in np.ndenumerate(shares):
        if counts[r, c]:
            ax.text(c, r, f"{value:.2f}", ha="center", va="center", fontsize=6,
                    color="white" if value > 0.5 else "black")
    ax.set_xticks(range(len(names)), names, rotation=60, fontsize=7)
    ax.set_yticks(range(len(names)), names, fontsize=7)
    ax.set_xlabel(chooser, fontsize=8)
    ax.set_ylabel("set's label", fontsize=8)
    ax.set_title(title, fontsize=9)
