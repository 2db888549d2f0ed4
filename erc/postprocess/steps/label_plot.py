"""The label-distribution plot as a post-processing step: ``label_distribution.png``, the set's labels beside the
benchmark's (all splits, when its data is there) and every other generated set of the benchmark found beside it,
in the style of the paper's Fig. 2."""

from __future__ import annotations

import logging
import tempfile
from collections import Counter
from pathlib import Path

from omegaconf import DictConfig

from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl
from erc.data.load import load_benchmark
from erc.data.names import GENERATED_SOURCES, dataset_name
from erc.data.plots import plot_label_distribution
from erc.data.schema import SPLITS, DataError
from erc.io import write_if_changed
from erc.postprocess.export import label_counts
from erc.postprocess.step import SetContext, Step

log = logging.getLogger(__name__)


def plot_bytes(sets: dict[str, Counter[str]], labels: list[str], title: str, folder: Path) -> bytes:
    """The label-distribution PNG as bytes (drawn into a temporary file of ``folder``)."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".plot.") as tmp:
        return plot_label_distribution(sets, labels, title, Path(tmp) / "plot.png").read_bytes()


def _reference_sets(cfg: DictConfig, benchmark: str, own: str, own_counts: Counter[str]) -> dict[str, Counter[str]]:
    """The reference benchmark (all splits, when its data is present) and every generated set of
    this benchmark found next to this one, for the Fig. 2 overlay."""
    sets: dict[str, Counter[str]] = {}
    try:
        sets[benchmark] = sum((label_counts(load_benchmark(benchmark, s, cfg.paths.data_dir)) for s in SPLITS),
                              Counter())
    except DataError as err:
        log.warning("label_distribution.png without the reference %s: %s", benchmark, str(err).splitlines()[0])
    for source in GENERATED_SOURCES:
        name = dataset_name(benchmark, source)
        if name == own:
            sets[name] = own_counts
            continue
        path = Path(cfg.paths.synthetic_dir) / name / "dialogues.jsonl"
        if path.is_file():
            sets[name] = label_counts(read_dialogues_jsonl(path, benchmark, "train", source))
    return sets


class LabelPlot(Step):
    """See the module docstring. It runs every time (cheap), since the sets beside this one may have changed."""

    cacheable = False

    def enabled(self, ctx: SetContext) -> bool:
        return bool(ctx.built.kept)

    def run(self, ctx: SetContext) -> bool:
        cfg, built = ctx.cfg, ctx.built
        sets = _reference_sets(cfg, str(cfg.benchmark.name), built.name, label_counts(built.kept))
        write_if_changed(ctx.out_dir / "label_distribution.png",
                         plot_bytes(sets, built.labels, f"Label distribution: {cfg.benchmark.name} and generated sets",
                                    ctx.out_dir))
        return True
