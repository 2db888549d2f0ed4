"""``load_benchmark``: the one public way to read conversations, whatever format is on disk.

``name`` is a benchmark (``meld``, ``emorynlp``, ``iemocap``: read from ``<data_dir>/<name>/``, the
format detected per split) or a generated set ``<benchmark>_<nat|bal>`` or its filtered variant
``<benchmark>_<nat|bal>_<probe|judge>`` (read from ``<synthetic_dir>/<name>/<split>.jsonl``). The two roots are
apart so that the benchmark folder, often a shared read-only copy, is only ever read; a set left at the former
place, ``<data_dir>/synthetic/``, is named with the move that fixes it rather than reported missing.
"""

from __future__ import annotations

import logging
import os
from collections import Counter
from pathlib import Path

from erc.data.formats import emorynlp_json, meld_csv
from erc.data.formats.erc_tsv import read_erc_tsv
from erc.data.formats.iemocap_release import read_iemocap_release, session_dirs
from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl
from erc.data.labels import benchmark_info
from erc.data.names import FILTER_OPTIONS, is_filtered_source, parse_dataset, unfiltered_source
from erc.data.schema import SPLITS, DataError, Dialogue, MissingDataError
from erc.paths import PROJECT_ROOT

log = logging.getLogger(__name__)

HOW_TO_GET = {
    "meld": "run `make data` (downloads the MELD CSVs from declare-lab/MELD), or set ERC_DATA_DIR "
            "to a folder holding meld/{train,dev,test}_sent_emo.csv",
    "emorynlp": "run `make data` (downloads the EmoryNLP JSON files from emorynlp/emotion-detection), or "
                "set ERC_DATA_DIR to a folder holding emorynlp/emotion-detection-{trn,dev,tst}.json or an "
                "ERC TSV copy (*_train.txt, *_dev.txt, *_test.txt)",
    "iemocap": "IEMOCAP may not be redistributed: request it from USC SAIL (https://sail.usc.edu/iemocap/), "
               "then put the release tree (Session1..Session5) or an ERC TSV copy (*_train.txt, *_dev.txt, "
               "*_test.txt) in <data_dir>/iemocap/",
}


def default_data_dir() -> Path:
    """``$ERC_DATA_DIR`` when set, else ``data/`` in the project (the same rule as conf/paths)."""
    return Path(os.environ.get("ERC_DATA_DIR") or PROJECT_ROOT / "data")


def default_synthetic_dir() -> Path:
    """``$ERC_SYNTHETIC_DIR`` when set, else ``synthetic/`` in the project (the same rule as conf/paths)."""
    return Path(os.environ.get("ERC_SYNTHETIC_DIR") or PROJECT_ROOT / "synthetic")


def former_place(name: str, split: str, data_dir: Path, synthetic_dir: Path) -> Path | None:
    """The split file of generated set ``name`` at the former place, ``<data_dir>/synthetic/``, when it is there and
    not where sets live now, else None."""
    old = data_dir / "synthetic" / name / f"{split}.jsonl"
    new = synthetic_dir / name / f"{split}.jsonl"
    return old if old.is_file() and not new.is_file() and old.resolve() != new.resolve() else None


def _tsv_file(folder: Path, split: str) -> Path | None:
    found = sorted(p for base in (folder, folder / "tsv") for p in base.glob(f"*_{split}.txt"))
    if len(found) > 1:
        raise DataError(f"{folder}: several ERC TSV files for split {split!r}: {[str(p) for p in found]}")
    return found[0] if found else None


def _candidates(benchmark: str, folder: Path, split: str) -> list[tuple[str, Path]]:
    """Every (format, path) the loader looks for, in the benchmark's preference order."""
    looked: list[tuple[str, Path]] = []
    for fmt in benchmark_info(benchmark)["files"]["formats"]:
        if fmt == "meld_csv":
            looked.append((fmt, folder / meld_csv.FILES[split]))
        elif fmt == "emorynlp_json":
            looked.append((fmt, folder / emorynlp_json.FILES[split]))
        elif fmt == "iemocap_release":
            looked.append((fmt, folder / "Session1..5"))
        elif fmt == "erc_tsv":
            looked.append((fmt, _tsv_file(folder, split) or folder / f"[tsv/]*_{split}.txt"))
    return looked


def _exists(fmt: str, path: Path) -> bool:
    if fmt == "iemocap_release":
        return bool(session_dirs(path.parent))
    return path.is_file()


def load_benchmark_with_report(name: str, split: str, data_dir: str | Path | None = None,
                               synthetic_dir: str | Path | None = None) -> tuple[list[Dialogue], Counter[str]]:
    """Like :func:`load_benchmark`, also returning the counts of utterances skipped on purpose
    (by raw label or reason), e.g. IEMOCAP's labels outside the 6-way set."""
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; valid: {', '.join(SPLITS)}")
    benchmark, source = parse_dataset(name)
    data_dir = Path(data_dir) if data_dir is not None else default_data_dir()
    synthetic_dir = Path(synthetic_dir) if synthetic_dir is not None else default_synthetic_dir()
    skipped: Counter[str] = Counter()
    if source != "org":
        path = synthetic_dir / name / f"{split}.jsonl"
        old = former_place(name, split, data_dir, synthetic_dir)
        if old is not None:
            raise MissingDataError(f"{path}: generated dataset {name!r} not found there, but {old.parent} holds it, "
                                   f"the former place inside the benchmark folder: move it with `mkdir -p "
                                   f"{synthetic_dir} && mv {old.parent} {synthetic_dir}/` (paths.synthetic_dir, "
                                   f"$ERC_SYNTHETIC_DIR)")
        if not path.is_file():
            prompt = "balanced" if unfiltered_source(source) == "bal" else "natural"
            filter_name = source.partition("_")[2] if is_filtered_source(source) else ""
            how = (f" {FILTER_OPTIONS[filter_name]}" if filter_name in FILTER_OPTIONS else
                   f" with the post-processing step that writes the {filter_name} filter" if filter_name else "")
            raise MissingDataError(f"{path}: generated dataset {name!r} not found; make it with "
                                   f"`python generate.py benchmark={benchmark} prompt={prompt}{how}`")
        return read_dialogues_jsonl(path, benchmark, split, source), skipped
    folder = data_dir / benchmark_info(benchmark)["files"]["folder"]
    candidates = _candidates(benchmark, folder, split)
    for fmt, path in candidates:
        if not _exists(fmt, path):
            continue
        if fmt == "meld_csv":
            dialogues = meld_csv.read_meld_csv(path, split, benchmark)
        elif fmt == "emorynlp_json":
            dialogues = emorynlp_json.read_emorynlp_json(path, split, benchmark)
        elif fmt == "iemocap_release":
            dialogues = read_iemocap_release(path.parent, split, benchmark, skipped)
        else:
            dialogues = read_erc_tsv(path, split, benchmark, skipped)
        if skipped:
            log.warning("%s %s: skipped %d utterance(s) on purpose: %s", benchmark, split,
                        sum(skipped.values()), dict(sorted(skipped.items())))
        if not dialogues:
            raise DataError(f"{path}: no {benchmark} {split} dialogues in it (an empty or header-only copy?); "
                            f"the benchmark's files are never empty, so replace it: {HOW_TO_GET[benchmark]}")
        return dialogues, skipped
    looked = "; ".join(f"{fmt}: {path}" for fmt, path in candidates)
    raise MissingDataError(f"no {benchmark} {split} data found in {folder} (looked for {looked}). "
                           f"To get it: {HOW_TO_GET[benchmark]}")


def load_benchmark(name: str, split: str, data_dir: str | Path | None = None,
                   synthetic_dir: str | Path | None = None) -> list[Dialogue]:
    """Read one split of a benchmark (``meld``... from ``data_dir``) or of a generated set (``meld_bal``... from
    ``synthetic_dir``)."""
    return load_benchmark_with_report(name, split, data_dir, synthetic_dir)[0]
