"""A dataset as the quality report reads it: its utterances flattened into aligned arrays (text, class id,
split, dialogue), the real benchmark's and a generated set's alike, so that every metric indexes the same rows."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl
from erc.data.labels import label_set
from erc.data.load import load_benchmark
from erc.data.names import parse_dataset
from erc.data.schema import SPLITS, DataError, Dialogue


@dataclass
class Corpus:
    """The utterances of ``dialogues`` in order; ``labels`` are class ids of the benchmark's fixed label order."""

    name: str
    benchmark: str
    dialogues: list[Dialogue]
    texts: list[str]
    turns: np.ndarray         # the utterance's position in its dialogue (0: first); row r - 1 precedes row r
    labels: np.ndarray
    splits: np.ndarray
    dialogue_index: np.ndarray  # row -> index into ``dialogues``
    folder: Path | None = None  # a generated set's folder; None for the benchmark

    @classmethod
    def from_dialogues(cls, name: str, benchmark: str, dialogues: list[Dialogue], folder: Path | None = None
                       ) -> Corpus:
        classes = label_set(benchmark)
        rows = [(d, i, u) for d, dialogue in enumerate(dialogues) for i, u in enumerate(dialogue.utterances)]
        return cls(name=name, benchmark=benchmark, dialogues=dialogues,
                   texts=[u.text for _, _, u in rows],
                   turns=np.array([i for _, i, _ in rows], dtype=np.int64),
                   labels=np.array([classes.index(u.label) for _, _, u in rows], dtype=np.int64),
                   splits=np.array([dialogues[d].split for d, _, _ in rows], dtype=object),
                   dialogue_index=np.array([d for d, _, _ in rows], dtype=np.int64), folder=folder)

    def __len__(self) -> int:
        return len(self.texts)

    def rows(self, split: str) -> np.ndarray:
        """Row indices of one split."""
        return np.flatnonzero(self.splits == split)


def read_benchmark(benchmark: str, data_dir: str | Path) -> Corpus:
    """Every split of the real benchmark (a missing split is the loader's :class:`MissingDataError`)."""
    dialogues = [d for split in SPLITS for d in load_benchmark(benchmark, split, data_dir)]
    return Corpus.from_dialogues(benchmark, benchmark, dialogues)


def read_generated_set(folder: str | Path, benchmark: str) -> Corpus:
    """A generated set's ``{train,dev,test}.jsonl`` in ``folder`` (named ``<benchmark>_<source>``). A set without
    any utterance, or whose labels are not the benchmark's, is a :class:`DataError` naming the file."""
    folder = Path(folder)
    try:
        source = parse_dataset(folder.name)[1]
    except DataError:
        source = "nat"           # a folder of the user's own naming: records without 'source' count as natural
    files = [folder / f"{split}.jsonl" for split in SPLITS]
    if not any(path.is_file() for path in files):
        raise DataError(f"{folder}: no generated set here (looked for {', '.join(p.name for p in files)}); "
                        f"make one with `python generate.py benchmark={benchmark}`")
    dialogues = [d for split, path in zip(SPLITS, files, strict=True) if path.is_file()
                 for d in read_dialogues_jsonl(path, benchmark, split, source)]
    if not dialogues:
        raise DataError(f"{folder}: {', '.join(p.name for p in files if p.is_file())} hold no dialogue: an empty "
                        f"set cannot be scored; generate more dialogues (n_dialogues) or remove the folder")
    return Corpus.from_dialogues(folder.name, benchmark, dialogues, folder)
