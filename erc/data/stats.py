"""Dataset statistics: dialogues, utterances and label counts per split, plus a label-distribution PNG
per benchmark.

    python -m erc.data.stats [--data-dir DIR] [--synthetic-dir DIR] [--out DIR] [meld emorynlp iemocap meld_bal ...]

With no names it reports every benchmark found under the data folder and, overlaid on its plot,
every generated set of that benchmark found under the generated sets' folder (``paths.synthetic_dir``).
"""

from __future__ import annotations

import argparse
import json
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from erc.data.labels import BENCHMARKS, label_set
from erc.data.load import default_data_dir, default_synthetic_dir, load_benchmark_with_report
from erc.data.names import parse_dataset
from erc.data.plots import plot_label_distribution
from erc.data.schema import SPLITS, Dialogue, MissingDataError
from erc.errors import exit_on_user_error


@dataclass
class SplitStats:
    """Counts for one split of one dataset."""

    dialogues: int
    utterances: int
    labels: dict[str, int]
    skipped: dict[str, int] = field(default_factory=dict)


def split_stats(dialogues: list[Dialogue], labels: list[str], skipped: Counter[str] | None = None) -> SplitStats:
    """Count dialogues, utterances and labels (every label of the set, zeros included, in order)."""
    counts = Counter(u.label for d in dialogues for u in d.utterances)
    return SplitStats(
        dialogues=len(dialogues),
        utterances=sum(len(d) for d in dialogues),
        labels={label: counts.get(label, 0) for label in labels},
        skipped=dict(sorted((skipped or {}).items())),
    )


def dataset_stats(name: str, data_dir: Path, synthetic_dir: Path | None = None) -> dict[str, SplitStats]:
    """Statistics of every split of ``name`` that exists; raises DataError when none does."""
    benchmark, _ = parse_dataset(name)
    labels = label_set(benchmark)
    found: dict[str, SplitStats] = {}
    missing: list[MissingDataError] = []
    for split in SPLITS:
        try:
            dialogues, skipped = load_benchmark_with_report(name, split, data_dir, synthetic_dir)
        except MissingDataError as err:
            missing.append(err)
            continue
        found[split] = split_stats(dialogues, labels, skipped)
    if not found:
        raise missing[0]
    return found


def collect(data_dir: Path, names: list[str] | None = None, synthetic_dir: Path | None = None
            ) -> dict[str, dict[str, SplitStats]]:
    """Statistics of ``names``, or (``names=None``) of every benchmark under ``data_dir`` and generated set under
    ``synthetic_dir`` (default: :func:`default_synthetic_dir`) with at least one readable split. Each dataset is
    read once."""
    if names:
        return {name: dataset_stats(name, data_dir, synthetic_dir) for name in names}
    found = {}
    for benchmark in BENCHMARKS:
        for name in (benchmark, f"{benchmark}_nat", f"{benchmark}_bal"):
            try:
                found[name] = dataset_stats(name, data_dir, synthetic_dir)
            except MissingDataError:
                continue
    return found


def format_table(name: str, stats: dict[str, SplitStats]) -> str:
    """A plain-text table: one row per split, one column per label."""
    labels = list(next(iter(stats.values())).labels)
    head = f"{'split':<6} {'dialogues':>9} {'utts':>6} " + " ".join(f"{label[:9]:>9}" for label in labels)
    lines = [f"== {name}", head]
    for split, s in stats.items():
        lines.append(f"{split:<6} {s.dialogues:>9} {s.utterances:>6} "
                     + " ".join(f"{s.labels[label]:>9}" for label in labels))
        if s.skipped:
            lines.append(f"       skipped on purpose: {s.skipped}")
    return "\n".join(lines)


def report(everything: dict[str, dict[str, SplitStats]], out_dir: Path) -> None:
    """Print the tables, write ``stats.json`` and one ``label_distribution_<benchmark>.png`` per
    benchmark (its generated sets overlaid) into ``out_dir``."""
    out_dir.mkdir(parents=True, exist_ok=True)
    for name, stats in everything.items():
        print(format_table(name, stats))
    for benchmark in BENCHMARKS:
        members = [n for n in everything if parse_dataset(n)[0] == benchmark]
        if not members:
            continue
        totals = {n: Counter() for n in members}
        for n in members:
            for s in everything[n].values():
                totals[n].update(s.labels)
        png = plot_label_distribution(totals, label_set(benchmark), f"Label distribution: {benchmark}",
                                      out_dir / f"label_distribution_{benchmark}.png")
        print(f"wrote {png}")
    (out_dir / "stats.json").write_text(json.dumps(
        {n: {split: vars(s) for split, s in st.items()} for n, st in everything.items()}, indent=2))
    print(f"wrote {out_dir / 'stats.json'}")


@exit_on_user_error
def main(argv: list[str] | None = None) -> None:
    """The command line; a missing or damaged dataset is one ``error:`` line and exit status 2."""
    parser = argparse.ArgumentParser(prog="python -m erc.data.stats", description=__doc__.split("\n\n")[0])
    parser.add_argument("names", nargs="*", help="datasets (default: every one found)")
    parser.add_argument("--data-dir", type=Path, default=None, help="default: $ERC_DATA_DIR or ./data")
    parser.add_argument("--synthetic-dir", type=Path, default=None,
                        help="the generated sets (default: $ERC_SYNTHETIC_DIR or ./synthetic)")
    parser.add_argument("--out", type=Path, default=Path("outputs/stats"), help="where PNGs and stats.json go")
    args = parser.parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    everything = collect(data_dir, args.names, args.synthetic_dir or default_synthetic_dir())
    if not everything:
        raise MissingDataError(f"no benchmark data found under {data_dir}; run `make data` or set ERC_DATA_DIR")
    report(everything, args.out)


if __name__ == "__main__":
    main()
