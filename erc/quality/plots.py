"""The report's pictures, as PNG bytes (no date in them, so a rerun writes the same bytes):

- ``quality_projection.png``: the real and each set's embeddings on the same 2-D PCA axes, coloured by label;
  a set that covers the real cloud and keeps its labels' regions looks like the real panel.
- ``quality_confusion.png``: per set, its labels (rows) against the probe's choice (columns), each row normalised;
  a faithful set has a bright diagonal.
- ``quality_metrics.png``: the headline figures of every column side by side, each scaled to [0, 1] (kappa can be
  negative: the axis extends left of 0), its value written at each bar's end; the rows where higher is better
  (marked ↑) above those where lower is better (↓), so that no bar is read the wrong way.
"""

from __future__ import annotations

import numpy as np
from sklearn.decomposition import PCA

from erc.plots import draw_confusion, figure_png, plt
from erc.quality.diversity import sample_rows
from erc.quality.report import QualityReport

# (key, label, divisor, higher is better): the comparison plot's bars, each a value divided to lie in [0, 1] (kappa in
# [-1, 1]); the higher-is-better rows first.
BARS = (("kappa", "kappa", 1, True), ("probe_wf1", "probe W-F1", 1, True), ("distinct_2", "distinct-2", 1, True),
        ("precision", "precision", 1, True), ("recall", "recall", 1, True), ("coverage", "coverage", 1, True),
        ("self_bleu", "self-BLEU / 100", 100, False), ("flagged", "flagged labels", 1, False),
        ("ends_mid_word", "ends mid-word", 1, False), ("label_js", "label JS", 1, False))


def projection_figure(report: QualityReport, points: int = 1500) -> plt.Figure:
    """One panel per column (the real data first), at most ``points`` utterances each, on PCA axes fitted to all
    the panels together; each set's panel shows the real cloud in grey behind its own points."""
    names = report.names
    colours = plt.get_cmap("tab10")(np.arange(len(names)))
    real_rows = sample_rows(len(report.real), points, report.seed)
    panels = [(report.benchmark, report.real_vectors[real_rows], report.real.labels[real_rows])]
    for name, scored in report.sets.items():
        rows = sample_rows(len(scored.corpus), points, report.seed)
        panels.append((name, scored.vectors[rows], scored.corpus.labels[rows]))
    pca = PCA(n_components=2, svd_solver="full").fit(np.vstack([p[1] for p in panels]))
    real_xy = pca.transform(panels[0][1])
    fig, axes = plt.subplots(1, len(panels), figsize=(4.2 * len(panels), 4.2), sharex=True, sharey=True,
                             squeeze=False)
    for ax, (name, vectors, labels) in zip(axes[0], panels, strict=True):
        xy = pca.transform(vectors)
        if name != report.benchmark:
            ax.scatter(real_xy[:, 0], real_xy[:, 1], s=3, c="lightgrey", label=f"{report.benchmark} (all)")
        for i, label in enumerate(names):
            mine = labels == i
            ax.scatter(xy[mine, 0], xy[mine, 1], s=6, color=colours[i], label=label, alpha=0.8)
        ax.set_title(f"{name} (n={len(vectors)} shown)", fontsize=9)
    axes[0][0].legend(fontsize=7, markerscale=2, loc="best")
    fig.suptitle("Utterance embeddings, PCA of all panels together", fontsize=10)
    return fig


def confusion_figure(report: QualityReport) -> plt.Figure:
    """One panel per set; the constrained layout keeps each panel's y label clear of the panel to its left."""
    names = report.names
    sets = list(report.sets.items())
    fig, axes = plt.subplots(1, max(len(sets), 1), figsize=(4.6 * max(len(sets), 1), 4.2), squeeze=False,
                             layout="constrained")
    for ax, (name, scored) in zip(axes[0], sets, strict=False):  # no panel drawn for no set
        counts = np.bincount(scored.fidelity.labels * len(names) + scored.fidelity.predicted,
                             minlength=len(names) ** 2).reshape(len(names), len(names))
        draw_confusion(ax, counts, names, "probe's choice", name)
    fig.suptitle(f"Set labels vs a probe trained on {report.benchmark} (rows sum to 1)", fontsize=10)
    return fig


def metrics_figure(report: QualityReport) -> plt.Figure:
    """The bars of :data:`BARS`, one per column, each with its value written at its end (``n/a`` when missing)."""
    columns = list(report.columns)
    fig, ax = plt.subplots(figsize=(7.5, 0.45 * len(BARS) * max(1.0, len(columns) / 2) + 1.8))
    height = 0.8 / len(columns)
    y = np.arange(len(BARS))[::-1]
    lowest = 0.0
    for i, column in enumerate(columns):
        values = [report.columns[column].get(key) for key, *_ in BARS]
        scaled = [np.nan if v is None else v / divisor for v, (_, _, divisor, _) in zip(values, BARS, strict=True)]
        lowest = min([lowest, *(v for v in scaled if not np.isnan(v))])
        bars = ax.barh(y - (i - (len(columns) - 1) / 2) * height, np.nan_to_num(scaled), height=height, label=column)
        ax.bar_label(bars, labels=["n/a" if np.isnan(v) else f"{v:.2f}" for v in scaled], padding=2, fontsize=6)
    ax.set_yticks(y, [f"{label} {'↑' if higher else '↓'}" for _, label, _, higher in BARS], fontsize=8)
    ax.set_xlim(lowest - 0.15 if lowest < 0 else 0, 1.15)
    ax.axvline(0, color="black", lw=0.8)
    split = sum(higher for *_, higher in BARS)          # between the higher- and the lower-is-better rows
    ax.axhline(y[split - 1] - 0.5, color="0.6", lw=0.8, ls="--")
    ax.set_xlabel("value (self-BLEU / 100); ↑ higher is better, ↓ lower is better", fontsize=8)
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"Quality of the generated sets against {report.benchmark}", fontsize=10)
    return fig


def report_plots(report: QualityReport) -> dict[str, bytes]:
    """Every plot, by file name."""
    plots = {"quality_projection.png": figure_png(projection_figure(report)),
             "quality_metrics.png": figure_png(metrics_figure(report))}
    if report.sets:
        plots["quality_confusion.png"] = figure_png(confusion_figure(report))
    return plots
