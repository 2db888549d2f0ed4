"""The paper's Table IV scores and sweep folders of results.json in the training contract's format: the
inputs of evaluate.py's tests."""

from __future__ import annotations

import csv
import json
from pathlib import Path

from omegaconf import DictConfig

from helpers.config import compose_config

PAPER_SCORES = Path(__file__).parent.parent / "fixtures" / "paper_table4_scores.csv"
INSTANCES = ["compm_org", "compm_nat", "compm_bal", "emoone_org", "emoone_nat", "emoone_bal", "todkat_org",
             "todkat_nat", "todkat_bal"]


def compose_evaluate(out_dir: Path, *overrides: str) -> DictConfig:
    """evaluate.py's config, writing its tables to ``out_dir``."""
    return compose_config("evaluate", [f"paths.output_dir={out_dir}", *overrides])


def paper_matrix() -> dict[str, dict[str, float]]:
    with PAPER_SCORES.open() as handle:
        return {row["test_set"]: {i: float(row[i]) for i in INSTANCES} for row in csv.DictReader(handle)}


def write_result(folder: Path, classifier: str, benchmark: str, source: str, seed: int,
                 test_wf1: dict[str, float]) -> Path:
    """A results.json exactly in the training contract's format (see the common brief)."""
    data = benchmark if source == "org" else f"{benchmark}_{source}"
    metrics = {f"test/{test_set}/wf1": value for test_set, value in test_wf1.items()}
    metrics.update({"finetune/dev/wf1": 0.5, "pretrain/dev/wf1": 0.4, "test/meld_org/acc": 0.9,
                    f"pretrain/test/{benchmark}_org/wf1": 0.01})
    result = {"identity": {"classifier": classifier, "variant": "default", "data": data, "benchmark": benchmark,
                           "source": source, "seed": seed},
              "metrics": metrics, "config": {"classifier": {"name": classifier}}, "git": "abc123",
              "timings": {"total_s": 1.0}}
    path = folder / f"{classifier}_{data}_seed{seed}" / "results.json"
    path.parent.mkdir(parents=True)
    path.write_text(json.dumps(result))
    return path


def write_paper_sweep(folder: Path, seeds=(1, 2), spread: float = 0.001) -> None:
    """One job per classifier x benchmark x source x seed whose seed mean is the paper's score."""
    scores = paper_matrix()
    for s, seed in enumerate(seeds):
        offset = spread * (s - (len(seeds) - 1) / 2)
        for instance in INSTANCES:
            classifier, source = instance.split("_")
            for benchmark in ("meld", "emorynlp", "iemocap"):
                tests = {f"{benchmark}_{split}": scores[f"{benchmark}_{split}"][instance] / 100 + offset
                         for split in ("org", "nat", "bal")}
                write_result(folder, classifier, benchmark, source, seed, tests)
