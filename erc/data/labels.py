"""Label sets, read from ``conf/benchmark/<name>.yaml``: the single source of the class order.

The reference ERC code builds its label list from the labels present in the data, so class ids
shift silently when a split lacks a class (and differ between scripts). Here the order is fixed
per benchmark in config, and ``label_set(b)[i]`` is class ``i`` in data, models, prompts and metrics.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from omegaconf import OmegaConf

from erc.config import CONFIG_DIR
from erc.data.schema import DataError

BENCHMARKS: tuple[str, ...] = ("meld", "emorynlp", "iemocap")


@lru_cache(maxsize=None)
def benchmark_info(benchmark: str) -> dict[str, Any]:
    """The benchmark's config group as a plain dict (labels, sentiment groups, aliases, files)."""
    if benchmark not in BENCHMARKS:
        raise DataError(f"unknown benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")
    cfg = OmegaConf.load(CONFIG_DIR / "benchmark" / f"{benchmark}.yaml")
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


def label_set(benchmark: str) -> list[str]:
    """The benchmark's canonical labels in their fixed order (index = class id)."""
    return list(benchmark_info(benchmark)["labels"])


def sentiment_of(benchmark: str, label: str) -> str:
    """The sentiment group (positive / negative / neutral) a label belongs to."""
    return benchmark_info(benchmark)["sentiment"][label]


def skipped_labels(benchmark: str) -> set[str]:
    """Raw labels outside the benchmark's set that loaders drop on purpose (counted, reported)."""
    return {s.lower() for s in benchmark_info(benchmark).get("skip_labels", [])}


def canonical_label(benchmark: str, raw: str, where: str = "") -> str:
    """Map a label as spelled in a file (``Joyful``, ``hap``, ``sadness``...) to its canonical name.

    Raises :class:`DataError` listing the valid labels when the spelling is unknown.
    """
    info = benchmark_info(benchmark)
    key = raw.strip().lower()
    if key in info["labels"]:
        return key
    alias = info.get("label_aliases", {}).get(key)
    if alias is not None:
        return alias
    prefix = f"{where}: " if where else ""
    raise DataError(
        f"{prefix}unknown {benchmark} label {raw!r}; valid labels: {', '.join(info['labels'])}"
    )
