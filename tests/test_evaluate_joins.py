"""The joins of the evaluation: results.json rows -> score matrix -> ranks -> Table III/IV files and friedman.json.

Each piece has its own tests; these check that every number reaches the right cell when they are put together.
Every job reports a different W-F1 on every test set (seeds deliberately asymmetric), plus numbers that must not be
used (pre-training tests, another benchmark's test set), so a score attributed to the wrong classifier, source,
benchmark, test set or seed, a column shifted in a table, or a leaked metric changes a value checked here.
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

import pandas as pd
import pytest

from erc.evaluation import evaluate

from helpers.evaluation import compose_evaluate, write_result

CLASSIFIERS = ("compm", "emoone", "todkat")
SOURCES = ("org", "nat", "bal")
BENCHMARKS = ("meld", "emorynlp")
SEEDS = (1, 2)
DISPLAY = {"compm": "CoMPM", "emoone": "EmoOne-RoBERTa", "todkat": "TODKAT"}
TEST_SET_DISPLAY = {"meld": "MELD", "emorynlp": "EmoryNLP"}


def job_score(classifier: str, source: str, benchmark: str, split: str, seed: int) -> float:
    """A distinct W-F1 for every (job, test set); the seed term is not symmetric around the mean."""
    c, s, b, t = CLASSIFIERS.index(classifier), SOURCES.index(source), BENCHMARKS.index(benchmark), SOURCES.index(split)
    return round(0.30 + 0.021 * ((5 * c + 3 * s + 7 * t) % 9) + 0.004 * b + 0.0031 * seed ** 2, 6)


@pytest.fixture(scope="module")
def evaluated(tmp_path_factory) -> tuple[dict, Path]:
    root = tmp_path_factory.mktemp("joins")
    sweep = root / "multirun"
    for seed in SEEDS:
        for classifier in CLASSIFIERS:
            for source in SOURCES:
                for benchmark in BENCHMARKS:
                    path = write_result(sweep, classifier, benchmark, source, seed,
                                        {f"{benchmark}_{split}": job_score(classifier, source, benchmark, split, seed)
                                         for split in SOURCES})
                    result = json.loads(path.read_text())
                    other = next(b for b in BENCHMARKS if b != benchmark)
                    result["metrics"].update({f"test/{other}_org/wf1": 0.999,  # another benchmark: not this row's
                                              **{f"pretrain/test/{benchmark}_{s}/wf1": 0.001 for s in SOURCES}})
                    path.write_text(json.dumps(result))
    out = root / "out"
    return evaluate(compose_evaluate(out, f"sweep={sweep}")), out


def expected_scores() -> dict[str, dict[str, float]]:
    return {f"{b}_{t}": {f"{c}_{s}": statistics.mean(job_score(c, s, b, t, seed) for seed in SEEDS)
                         for c in CLASSIFIERS for s in SOURCES}
            for b in BENCHMARKS for t in SOURCES}


def expected_ranks(row: dict[str, float]) -> dict[str, float]:
    """1 = best; ties get the mean of the ranks they span (computed here without scipy)."""
    ordered = sorted(row.values(), reverse=True)
    return {i: statistics.mean(r + 1 for r, v in enumerate(ordered) if v == value) for i, value in row.items()}


def test_every_score_reaches_its_own_cell(evaluated):
    result, out = evaluated
    expected = expected_scores()
    assert result["complete"] is True
    assert result["instances"] == [f"{c}_{s}" for c in CLASSIFIERS for s in SOURCES]
    assert result["test_sets"] == list(expected)
    for test_set, row in expected.items():
        assert result["scores"][test_set] == pytest.approx(row, abs=1e-12), test_set
    saved = json.loads((out / "friedman.json").read_text())
    for test_set, row in expected.items():
        assert saved["scores"][test_set] == pytest.approx(row, abs=1e-12), test_set


def test_ranks_rank_sums_and_comparisons_follow_the_scores(evaluated):
    result, out = evaluated
    ranks = {t: expected_ranks(row) for t, row in expected_scores().items()}
    assert result["ranks"] == ranks
    sums = {i: sum(r[i] for r in ranks.values()) for i in result["instances"]}
    assert result["rank_sums"] == sums
    table4 = pd.read_csv(out / "table4.csv")
    assert list(zip(table4["instance"], table4["control"], strict=True)) == [
        (f"{c}_{s}", f"{c}_org") for c in CLASSIFIERS for s in ("nat", "bal")]
    for row in table4.itertuples():
        assert (row.rank_sum, row.control_rank_sum, row.diff) == (
            sums[row.instance], sums[row.control], sums[row.control] - sums[row.instance])
    assert set(table4["m"]) == {6}


def markdown_table(md: str) -> list[list[str]]:
    lines = [line for line in md.split("\n\n")[2].splitlines() if line.startswith("|")]
    return [[cell.strip().strip("*") for cell in line.strip("|").split("|")] for line in lines if "---" not in line]


def test_table_iv_markdown_cells_are_in_their_columns(evaluated):
    result, out = evaluated
    header, *body = markdown_table((out / "table4.md").read_text())
    columns = [f"{DISPLAY[c]} {s.capitalize()}" for c in CLASSIFIERS for s in SOURCES]
    assert header == ["Test set", *columns]
    names = dict(zip(columns, result["instances"], strict=True))
    for line in body[:len(result["test_sets"])]:
        benchmark_name, split = line[0].split()
        test_set = f"{next(b for b, d in TEST_SET_DISPLAY.items() if d == benchmark_name)}_{split.lower()}"
        for column, cell in zip(columns, line[1:], strict=True):
            instance = names[column]
            assert cell == f"{100 * result['scores'][test_set][instance]:.2f} ({result['ranks'][test_set][instance]:g})"
    rank_sum_line = body[len(result["test_sets"])]
    assert rank_sum_line == ["Rank sum", *[f"{result['rank_sums'][names[c]]:g}" for c in columns]]


def test_table_iii_takes_each_benchmarks_org_test_over_all_seeds(evaluated):
    _, out = evaluated
    table3 = pd.read_csv(out / "table3.csv")
    assert len(table3) == len(BENCHMARKS) * len(SOURCES) * len(CLASSIFIERS)
    for row in table3.itertuples():
        values = [100 * job_score(row.model, row.source, row.benchmark, "org", seed) for seed in SEEDS]
        assert (row.wf1_pct_mean, row.wf1_pct_std, row.seeds) == pytest.approx(
            (statistics.mean(values), statistics.stdev(values), len(SEEDS)), abs=1e-9)
