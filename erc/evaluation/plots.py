"""Pictures of Table IV: a critical-difference (rank) diagram and a rank heatmap, saved as PNG.

The CD diagram places each model instance at its average rank (rank sum / n, 1 = best, on the
left). With the paper's comparisons (each instance against its control) it draws each tested pair
as a bar between the two instances, solid and labelled with its adjusted p when significant,
dashed when not. When every pair was tested (``comparisons.mode=all``) it draws Demsar's cliques
instead: thick bars joining instances that no test separates. The CD bar shows the smallest rank
difference that the exact test (Bonferroni over the comparisons made) calls significant: unlike
Nemenyi's CD it comes from the exact distribution, so it agrees with the p-values in the table. A p label sits on
white above the instances' connector lines (which would otherwise run through its text), and instances tied at the
same average rank (or nearly) get their markers side by side rather than on top of each other.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only; never needs a display
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from erc.data import SOURCES
from erc.evaluation.analysis import RankAnalysis
from erc.evaluation.tables import Display, omnibus_text
from erc.io import write_atomic

_MARKERS = dict(zip(SOURCES, "osD^v", strict=False))


def _colors(instances: list[str]) -> dict[str, tuple]:
    models = list(dict.fromkeys(i.rpartition("_")[0] for i in instances))
    palette = plt.get_cmap("tab10")
    return {i: palette(models.index(i.rpartition("_")[0]) % 10) for i in instances}


def _cliques(instances: list[str], significant: set[frozenset[str]]) -> list[tuple[int, int]]:
    """Maximal runs [i, j] of rank-ordered instances with no significant pair inside (Demsar's bars)."""
    runs: list[tuple[int, int]] = []
    for i in range(len(instances)):
        j = i
        while j + 1 < len(instances) and not any(frozenset((instances[a], instances[j + 1])) in significant
                                                  for a in range(i, j + 1)):
            j += 1
        if j > i and (not runs or j > runs[-1][1]):
            runs.append((i, j))
    return runs


def _pair_label(display: Display, instance: str, control: str) -> str:
    """"CoMPM Nat vs Org" for the same model, "TODKAT Org vs CoMPM Nat" across models."""
    same_model = instance.rpartition("_")[0] == control.rpartition("_")[0]
    other = display.source(control.rpartition("_")[2]) if same_model else display.instance(control)
    return f"{display.instance(instance)} vs {other}"


def marker_positions(average: pd.Series, spacing: float = 0.12) -> dict[str, float]:
    """Where each instance's marker goes on the rank axis: at its average rank, except that markers closer than
    ``spacing`` (tied, or nearly) are spread apart in rank order, the group centred on its mean rank. The label
    beside each instance keeps its exact average rank."""
    ordered = average.sort_values(kind="stable")
    groups: list[list[str]] = []
    for instance in ordered.index:
        if groups and ordered[instance] - ordered[groups[-1][-1]] < spacing:
            groups[-1].append(instance)
        else:
            groups.append([instance])
    positions = {}
    for group in groups:
        centre = float(ordered[group].mean())
        for j, instance in enumerate(group):
            positions[instance] = centre + (j - (len(group) - 1) / 2) * spacing
    return positions


def plot_cd_diagram(analysis: RankAnalysis, display: Display, path: Path) -> Path:
    """Average-rank axis with each instance, its tested pairs and the exact critical difference."""
    fig = cd_figure(analysis, display)
    write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=130), binary=True)
    plt.close(fig)
    return path


def cd_figure(analysis: RankAnalysis, display: Display) -> plt.Figure:
    """The CD diagram of :func:`plot_cd_diagram`, as a figure."""
    k, n = analysis.k, analysis.n
    average = (analysis.rank_sums / n).sort_values(kind="stable")
    instances = list(average.index)
    colors = _colors(list(analysis.scores.columns))
    pairs = list(zip(analysis.comparisons.itertuples(index=False), analysis.p_exact, strict=True))
    all_pairs = k > 2 and len(pairs) == k * (k - 1) // 2
    significant = {frozenset((r.instance, r.control)) for r, _ in pairs if r.significant}
    bars = _cliques(instances, significant) if all_pairs else pairs
    half = (k + 1) // 2
    pair_gap, label_gap = (0.22 if all_pairs else 0.32), 0.42
    bars_bottom = -pair_gap * (len(bars) + 1)
    labels_bottom = bars_bottom - label_gap * (half + 1)
    fig, ax = plt.subplots(figsize=(10, 1.8 + 0.32 * (-labels_bottom)))
    ax.set_xlim(0.3 - 0.22 * k, k + 0.7 + 0.22 * k)
    ax.set_ylim(labels_bottom - 0.2, 1.5)
    ax.axis("off")

    # rank axis
    ax.plot([1, k], [0, 0], color="black", lw=1.2)
    for tick in range(1, k + 1):
        ax.plot([tick, tick], [0, 0.12], color="black", lw=1)
        ax.text(tick, 0.2, str(tick), ha="center", va="bottom", fontsize=9)
    ax.text((1 + k) / 2, 0.62, "average rank (1 = best)", ha="center", va="bottom", fontsize=9)

    # exact critical difference
    if analysis.critical_difference is not None:
        cd = analysis.critical_difference / n
        ax.plot([1, 1 + cd], [1.15, 1.15], color="black", lw=2)
        for x in (1, 1 + cd):
            ax.plot([x, x], [1.08, 1.22], color="black", lw=1)
        ax.text(1 + cd + 0.1, 1.15, f"critical difference {cd:.2f} (rank sum {analysis.critical_difference}; "
                f"exact, Bonferroni m={len(pairs)}, α={analysis.alpha})", va="center", fontsize=8)

    if all_pairs:  # cliques: instances joined by a bar are not significantly different
        for j, (first, last) in enumerate(bars):
            y = -pair_gap * (j + 1)
            ax.plot([average.iloc[first] - 0.03, average.iloc[last] + 0.03], [y, y], color="black", lw=4,
                    solid_capstyle="round")
    else:  # tested pairs, each with its adjusted p
        for j, (row, (_, p_adj)) in enumerate(bars):
            y = -pair_gap * (j + 1)
            x0, x1 = sorted((average[row.instance], average[row.control]))
            style = {"color": colors[row.instance], "lw": 3, "ls": "-"} if row.significant else \
                {"color": "0.55", "lw": 1.5, "ls": "--"}
            ax.plot([x0, x1], [y, y], solid_capstyle="butt", **style)
            p_text = display.p(p_adj)
            ax.text(x1 + 0.08, y, f"{_pair_label(display, row.instance, row.control)}: "
                    f"p{'' if p_text.startswith('<') else '='}{p_text}", va="center", fontsize=7.5,
                    fontweight="bold" if row.significant else "normal", zorder=5,
                    bbox={"facecolor": "white", "edgecolor": "none", "pad": 0.3})

    # instance labels: best half to the left, the rest to the right; tied instances side by side
    positions = marker_positions(average)
    for i, instance in enumerate(instances):
        rank = average[instance]
        x = positions[instance]
        left = i < half
        level = i if left else k - 1 - i
        y = bars_bottom - label_gap * (level + 1)
        end = 1 - 0.2 * k if left else k + 0.2 * k
        ax.plot([x, x, end], [0, y, y], color=colors[instance], lw=1, zorder=1)
        ax.plot([x], [0], marker=_MARKERS.get(instance.rpartition("_")[2], "o"), color=colors[instance], ms=6,
                zorder=3)
        text = f"{display.instance(instance)} ({rank:.2f})"
        ax.text(end + (-0.05 if left else 0.05), y, text, ha="right" if left else "left", va="center", fontsize=8.5,
                color=colors[instance])

    subtitle = "\n" + textwrap.fill(omnibus_text(analysis.omnibus), width=120)
    ax.set_title(f"Average ranks of {k} model instances over {n} test sets{subtitle}", fontsize=10)
    fig.tight_layout()
    return fig


def plot_rank_heatmap(analysis: RankAnalysis, display: Display, path: Path) -> Path:
    """Table IV as a picture: one cell per (test set, instance), coloured by rank, W-F1 and rank written in."""
    ranks = analysis.ranks.to_numpy()
    scores = analysis.scores.to_numpy()
    n, k = ranks.shape
    fig, ax = plt.subplots(figsize=(1.1 * k + 2.5, 0.55 * n + 2.2))
    image = ax.imshow(ranks, cmap="viridis_r", vmin=1, vmax=k, aspect="auto")
    for r in range(n):
        for c in range(k):
            light_cell = ranks[r, c] <= (k + 1) / 2  # viridis_r: good ranks are light colours
            ax.text(c, r, f"{100 * scores[r, c]:.2f}\n({ranks[r, c]:g})", ha="center", va="center", fontsize=7.5,
                    color="black" if light_cell else "white")
    ax.set_xticks(np.arange(k), [display.instance(c) for c in analysis.scores.columns], rotation=35, ha="right",
                  fontsize=8)
    ax.set_yticks(np.arange(n), [display.test_set(t) for t in analysis.scores.index], fontsize=8)
    ax.set_xlabel("model instance (rank sum below)")
    for c, column in enumerate(analysis.scores.columns):
        ax.text(c, n - 0.35, f"Σ {analysis.rank_sums[column]:g}", ha="center", va="top", fontsize=8)
    ax.set_ylim(n + 0.1, -0.5)
    fig.colorbar(image, ax=ax, label="rank (1 = best)")
    ax.set_title("W-F1 x100 and rank per test set")
    fig.tight_layout()
    write_atomic(path, lambda handle: fig.savefig(handle, format="png", dpi=130), binary=True)
    plt.close(fig)
    return path
