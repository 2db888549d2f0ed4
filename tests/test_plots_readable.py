"""The report's and the evaluation's pictures read as they should: a negative kappa is a visible bar with its value,
each metric row says which way is better, a confusion panel's y label stays clear of the panel beside it, and in
the CD diagram the p labels clear the pair lines and tied instances are told apart."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from erc.plots import plt
from erc.quality.plots import BARS, confusion_figure, metrics_figure

MELD = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]


@pytest.fixture(scope="module")
def report() -> SimpleNamespace:
    """The fields of a QualityReport the two plots read: real MELD's column and two sets, one with a negative kappa."""
    real = {"kappa": 0.381, "probe_wf1": 0.557, "distinct_2": 0.6, "self_bleu": 20.0, "flagged": 0.3,
            "ends_mid_word": 0.05, "label_js": 0.002, "precision": 0.8, "recall": 0.886, "coverage": 0.9}
    rng = np.random.default_rng(0)
    sets = {name: SimpleNamespace(fidelity=SimpleNamespace(labels=rng.integers(0, 7, 50),
                                                           predicted=rng.integers(0, 7, 50)))
            for name in ("meld_nat", "meld_bal")}
    return SimpleNamespace(benchmark="meld", names=MELD, sets=sets,
                           columns={"MELD (real)": real, "meld_nat": {**real, "kappa": -0.027, "recall": None},
                                    "meld_bal": {**real, "kappa": 0.043}})


def test_a_negative_kappa_shows_as_a_bar_with_its_value_and_rows_say_which_way_is_better(report) -> None:
    fig = metrics_figure(report)
    ax = fig.axes[0]
    assert ax.get_xlim()[0] < -0.027                                  # the bar is not clipped away
    written = {t.get_text() for t in ax.texts}
    assert {"-0.03", "0.38", "0.04", "n/a"} <= written                # values at the bars' ends; a missing one said
    rows = {t.get_text(): y for t, y in zip(ax.get_yticklabels(), ax.get_yticks(), strict=True)}
    assert set(rows) == {f"{label} {'↑' if higher else '↓'}" for _, label, _, higher in BARS}
    higher = [y for row, y in rows.items() if row.endswith("↑")]
    assert min(higher) > max(y for row, y in rows.items() if row.endswith("↓"))     # the ↑ rows above the ↓ rows
    assert "↑ higher is better" in ax.get_xlabel()
    plt.close(fig)


def test_each_confusion_panels_y_label_stays_clear_of_the_panel_to_its_left(report) -> None:
    fig = confusion_figure(report)
    fig.canvas.draw()
    renderer = fig.canvas.get_renderer()
    left, right = fig.axes[:2]
    assert not right.yaxis.label.get_window_extent(renderer).overlaps(left.get_tightbbox(renderer))
    assert not right.get_yticklabels()[0].get_window_extent(renderer).overlaps(left.get_tightbbox(renderer))
    plt.close(fig)


def test_the_pictures_are_written(report, tmp_path) -> None:
    """Saved for a person to look at (``pytest --basetemp``): the figures above as the report writes them."""
    from erc.plots import figure_png

    for name, fig in (("metrics", metrics_figure(report)), ("confusion", confusion_figure(report))):
        png = figure_png(fig)
        assert png.startswith(b"\x89PNG")
        (tmp_path / f"quality_{name}.png").write_bytes(png)


def test_cd_diagram_p_labels_sit_above_the_lines_and_tied_instances_side_by_side() -> None:
    import pandas as pd

    from erc.evaluation.analysis import rank_analysis
    from erc.evaluation.plots import cd_figure
    from erc.evaluation.tables import Display

    from helpers.evaluation import paper_matrix

    matrix = pd.DataFrame(paper_matrix()).T
    matrix["emoone_nat"] = matrix["compm_nat"]                     # tied on every test set: one average rank
    pairs = [(f"{m}_{s}", f"{m}_org") for m in ("compm", "emoone", "todkat") for s in ("nat", "bal")]
    analysis = rank_analysis(matrix, pairs)
    fig = cd_figure(analysis, Display())
    ax = fig.axes[0]
    markers = {id(line): line.get_xdata()[0] for line in ax.lines
               if line.get_marker() not in ("None", "", None) and list(line.get_ydata()) == [0]}
    xs = sorted(markers.values())
    assert len(xs) == 9 and min(np.diff(xs)) > 0.1                  # no two markers on one spot, ties included
    p_labels = [t for t in ax.texts if ": p" in t.get_text()]
    assert len(p_labels) == 6
    assert min(t.get_zorder() for t in p_labels) > max(line.get_zorder() for line in ax.lines)
    assert all(t.get_bbox_patch() is not None for t in p_labels)  # on white, hiding the lines behind
    plt.close(fig)
