"""Label sets, read from ``conf/benchmark/<name>.yaml``: the single source of the class order.

The files are package data, read here by every part that needs a label (data loaders, models, prompts,
metrics), so the class ids of a trained model cannot depend on a command line: an override of the class-defining
keys in a composed ``benchmark`` group (``benchmark.labels=[...]``) is refused by :func:`check_not_overridden`
instead of being ignored by the loaders. A new label set is a new or edited file.

The reference ERC code builds its label list from the labels present in the data, so class ids
shift silently when a split lacks a class (and differ between scripts). Here the order is fixed
per benchmark in config, and ``label_set(b)[i]`` is class ``i`` in data, models, prompts and metrics.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from omegaconf import OmegaConf

from erc.errors import DataError
from erc.paths import CONFIG_DIR

BENCHMARKS: tuple[str, ...] = ("meld", "emorynlp", "iemocap")


@cache
def benchmark_info(benchmark: str) -> dict[str, Any]:
    """The benchmark's config group as a plain dict (labels, sentiment groups, aliases, files)."""
    if benchmark not in BENCHMARKS:
        raise DataError(f"unknown benchmark {benchmark!r}; valid: {', '.join(BENCHMARKS)}")
    cfg = OmegaConf.load(CONFIG_DIR / "benchmark" / f"{benchmark}.yaml")
    return OmegaConf.to_container(cfg, resolve=False)  # type: ignore[return-value]


# The keys of a benchmark file that define its classes: what an override must not change.
CLASS_KEYS: tuple[str, ...] = ("labels", "sentiment", "label_aliases", "skip_labels")


def check_not_overridden(composed: Any, where: str = "benchmark") -> None:
    """Raise :class:`ConfigError` when a composed ``benchmark`` group's class-defining keys differ from its file."""
    from omegaconf import OmegaConf

    from erc.errors import ConfigError

    name = str(composed["name"])
    info = benchmark_info(name)
    for key in CLASS_KEYS:
        value = composed.get(key)
        value = OmegaConf.to_container(value, resolve=True) if OmegaConf.is_config(value) else value
        if value != info.get(key):
            raise ConfigError(f"{where}.{key} differs from conf/benchmark/{name}.yaml: the label set, its order and "
                              f"its sentiment groups are fixed per benchmark (class ids of data, prompts and trained "
                              f"models depend on them), so they cannot be overridden; edit or add a benchmark file")


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
