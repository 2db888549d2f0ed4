"""What the quality report's pictures show, read back from the figures: each bar is its column's value divided
as its row says (self-BLEU by 100), the axis starts at 0 unless a value is negative, the dashed line parts the
higher-is-better rows from the lower-is-better ones, each confusion panel is the set's row-normalised confusion
(scikit-learn's), and a report without a set draws no confusion."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from erc.plots import plt
from erc.quality.plots import confusion_figure, metrics_figure, report_plots

NAMES = ["neutral", "joy", "anger"]
REAL = {"kappa": 0.38, "probe_wf1": 0.55, "distinct_2": 0.6, "self_bleu": 20.0, "flagged": 0.3,
        "ends_mid_word": 0.05, "label_js": 0.002, "precision": 0.8, "recall": 0.9, "coverage": 0.7}


class _Corpus:
    """A set's labels, as long as the set."""

    def __init__(self, labels: np.ndarray) -> None:
        self.labels = labels

    def __len__(self) -> int:
        return len(self.labels)


def _report(columns: dict, n_sets: int = 2) -> SimpleNamespace:
    """The fields of a QualityReport the plots read: embeddings and labels of the real data and of each set, the
    probe's choices on each set, and the table's columns."""
    rng = np.random.default_rng(0)

    def scored(n: int) -> SimpleNamespace:
        labels = rng.integers(0, len(NAMES), n)
        return SimpleNamespace(corpus=_Corpus(labels), vectors=rng.normal(size=(n, 8)),
                               fidelity=SimpleNamespace(labels=labels, predicted=rng.integers(0, len(NAMES), n)))

    return SimpleNamespace(benchmark="meld", names=NAMES, sets={f"meld_s{i}": scored(30 + 10 * i)
                                                                for i in range(n_sets)},
                           columns=columns, real=_Corpus(rng.integers(0, len(NAMES), 40)),
                           real_vectors=rng.normal(size=(40, 8)), seed=0)


# Each row's label as the plot shows it (without its arrow) -> the report key and what its value is divided by.
ROWS = {"kappa": ("kappa", 1), "probe W-F1": ("probe_wf1", 1), "distinct-2": ("distinct_2", 1),
        "precision": ("precision", 1), "recall": ("recall", 1), "coverage": ("coverage", 1),
        "self-BLEU / 100": ("self_bleu", 100), "flagged labels": ("flagged", 1), "ends mid-word": ("ends_mid_word", 1),
        "label JS": ("label_js", 1)}


def test_each_bar_is_its_columns_value_scaled_as_its_row_says() -> None:
    columns = {"meld": REAL, "meld_nat": {**REAL, "kappa": 0.1, "self_bleu": 45.0, "recall": None}}
    fig = metrics_figure(_report(columns))
    ax = fig.axes[0]
    assert [t.get_text() for t in ax.get_legend().get_texts()] == ["meld", "meld_nat"]
    ticks = {y: t.get_text()[:-2] for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    assert set(ticks.values()) == set(ROWS)
    for container, values in zip(ax.containers, columns.values(), strict=True):
        for bar in container:
            row = ticks[min(ticks, key=lambda y: abs(y - (bar.get_y() + bar.get_height() / 2)))]
            key, divisor = ROWS[row]
            expected = 0.0 if values[key] is None else values[key] / divisor
            assert bar.get_width() == pytest.approx(expected), row
    written = {t.get_text() for t in ax.texts}
    assert {"0.20", "0.45", "0.55", "0.10", "n/a"} <= written          # self-BLEU 20 and 45 shown over 100
    assert ax.get_xlim() == (0.0, 1.15)                                # no negative value: the axis starts at 0
    (dashed,) = [line for line in ax.lines if line.get_linestyle() == "--"]
    rows = dict(zip([t.get_text() for t in ax.get_yticklabels()], ax.get_yticks(), strict=True))
    lowest_higher = min(y for row, y in rows.items() if row.endswith("↑"))
    highest_lower = max(y for row, y in rows.items() if row.endswith("↓"))
    assert highest_lower < dashed.get_ydata()[0] < lowest_higher
    plt.close(fig)


def test_a_negative_value_extends_the_axis_left_of_its_bar() -> None:
    fig = metrics_figure(_report({"meld": REAL, "meld_bal": {**REAL, "kappa": -0.4}}))
    assert fig.axes[0].get_xlim() == pytest.approx((-0.55, 1.15))
    plt.close(fig)


def test_each_confusion_panel_is_the_sets_row_normalised_confusion() -> None:
    from sklearn.metrics import confusion_matrix

    report = _report({"meld": REAL})
    fig = confusion_figure(report)
    assert [ax.get_title() for ax in fig.axes] == list(report.sets)
    for ax, scored in zip(fig.axes, report.sets.values(), strict=True):
        counts = confusion_matrix(scored.fidelity.labels, scored.fidelity.predicted, labels=range(len(NAMES)))
        np.testing.assert_allclose(ax.images[0].get_array(), counts / counts.sum(axis=1, keepdims=True))
    plt.close(fig)
    # a label neither in the set nor chosen by the probe (the last one here) is an empty row and column
    scored = next(iter(report.sets.values()))
    scored.fidelity.labels, scored.fidelity.predicted = np.array([0, 1, 1]), np.array([1, 1, 0])
    fig = confusion_figure(report)
    assert fig.axes[0].images[0].get_array().tolist() == [[0, 1, 0], [0.5, 0.5, 0], [0, 0, 0]]
    plt.close(fig)


def test_without_a_set_the_report_draws_no_confusion() -> None:
    plots = report_plots(_report({"meld": REAL}, n_sets=0))
    assert set(plots) == {"quality_projection.png", "quality_metrics.png"}
    assert all(png.startswith(b"\x89PNG") for png in plots.values())


def test_the_projection_shows_each_column_with_the_real_cloud_behind_each_set() -> None:
    """One panel per column, the real data first, at most 1500 utterances each (said in the title); each set's
    panel has the real panel's points in grey behind its own, the real panel has no such background."""
    from erc.quality.plots import projection_figure

    report = _report({"meld": REAL})
    rng = np.random.default_rng(1)
    report.real, report.real_vectors = _Corpus(rng.integers(0, len(NAMES), 1600)), rng.normal(size=(1600, 8))
    fig = projection_figure(report)
    assert [ax.get_title() for ax in fig.axes] == ["meld (n=1500 shown)", "meld_s0 (n=30 shown)",
                                                   "meld_s1 (n=40 shown)"]
    real_panel, *set_panels = fig.axes
    assert [c.get_label() for c in real_panel.collections] == NAMES
    real_points = {tuple(p) for c in real_panel.collections for p in c.get_offsets()}
    assert len(real_points) == 1500
    for ax, scored in zip(set_panels, report.sets.values(), strict=True):
        grey, *by_label = ax.collections
        assert grey.get_label() == "meld (all)" and [c.get_label() for c in by_label] == NAMES
        assert {tuple(p) for p in grey.get_offsets()} == real_points
        assert [len(c.get_offsets()) for c in by_label] == np.bincount(scored.corpus.labels, minlength=3).tolist()
    plt.close(fig)
