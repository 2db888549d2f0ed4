"""The data cache of a job: every split it reads, loaded once and cut to ``data.limit_dialogues``, the test sets it
evaluates on, and their samples encoded once (the pretrain and the final tests share them).

Missing or empty data is an error before any model is built or trained, naming the set and the fix, never a
crash after hours of training.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erc.data import DataError, Dialogue, load_benchmark, parse_dataset
from erc.data.load import former_place
from erc.models.base import ERCClassifier

log = logging.getLogger(__name__)


class DataCache:
    """The splits of one job (``data_cfg``: ``conf/data``; ``data_dir``: where the benchmarks are; ``synthetic_dir``:
    where the generated sets are)."""

    def __init__(self, data_cfg: DictConfig, data_dir: Path, synthetic_dir: Path) -> None:
        self.data_cfg, self.data_dir, self.synthetic_dir = data_cfg, data_dir, synthetic_dir
        self.skipped_test_sets: dict[str, str] = {}
        self._dialogues: dict[tuple[str, str], list[Dialogue]] = {}
        self._samples: dict[tuple[str, str], list[Any]] = {}
        self._test_sets: list[str] | None = None

    def load(self) -> None:
        """Every split this job reads, so missing or empty data fails before any model is built."""
        if self.data_cfg.pretrain:
            for split in ("train", "dev"):
                self.dialogues(self.data_cfg.pretrain, split)
        for split in ("train", "dev"):
            self.dialogues(self.data_cfg.finetune, split)
        self.test_sets()

    def dialogues(self, name: str, split: str) -> list[Dialogue]:
        """One split of a dataset, cut to ``data.limit_dialogues`` when that is set."""
        if (name, split) not in self._dialogues:
            dialogues = load_benchmark(name, split, self.data_dir, self.synthetic_dir)
            limit = self.data_cfg.get("limit_dialogues")
            self._dialogues[(name, split)] = dialogues[:limit] if limit else dialogues
        return self._dialogues[(name, split)]

    def fit_splits(self, dataset: str) -> tuple[list[Dialogue], list[Dialogue]]:
        """Train and dev dialogues of a phase; an empty split is an error before any training (a phase cannot
        select a model without dev data), not a crash after it."""
        train, dev = self.dialogues(dataset, "train"), self.dialogues(dataset, "dev")
        for split, dialogues in (("train", train), ("dev", dev)):
            if not dialogues:
                raise DataError(f"{dataset}: the {split} split has no dialogues (data.limit_dialogues="
                                f"{self.data_cfg.get('limit_dialogues')}); a small generated set needs more dialogues "
                                f"or wider split ratios, e.g. `python generate.py ... split.dev=0.2 split.test=0.2`")
        return train, dev

    def samples(self, classifier: ERCClassifier, name: str, split: str) -> list[Any]:
        """``classifier.encode`` of one split, encoded once per job (a job has one classifier)."""
        if (name, split) not in self._samples:
            self._samples[(name, split)] = classifier.encode(self.dialogues(name, split))
        return self._samples[(name, split)]

    def test_sets(self) -> list[str]:
        """The benchmark's test split and every generated test split of it that exists and has dialogues.

        The benchmark's and the pretrain set's test splits are required: missing or empty, they are an
        error before any training. Other generated sets that are not generated yet, or whose test split is
        empty, are skipped with a warning and listed in results.json (``skipped_test_sets``), so no test
        set disappears from the results unsaid."""
        if self._test_sets is not None:
            return self._test_sets
        names = []
        for name in self.data_cfg.test:
            _, source = parse_dataset(name)
            required = source == "org" or name == self.data_cfg.pretrain
            # a set left at the former place is not skipped: reading it names the move that fixes it
            if not required and not (self.synthetic_dir / name / "test.jsonl").is_file() \
                    and former_place(name, "test", self.data_dir, self.synthetic_dir) is None:
                self._skip_test_set(name, f"not generated yet ({self.synthetic_dir / name})", logging.INFO)
                continue
            if self.dialogues(name, "test"):
                names.append(name)
            elif required:
                fix = "check the benchmark's files" if source == "org" else \
                    "a generated set needs a non-zero split.test, e.g. `python generate.py ... split.test=0.2`"
                raise DataError(f"{name}: the test split has no dialogues (data.limit_dialogues="
                                f"{self.data_cfg.get('limit_dialogues')}); {fix}")
            else:
                self._skip_test_set(name, "its test split has no dialogues", logging.WARNING)
        self._test_sets = names
        return names

    def _skip_test_set(self, name: str, reason: str, level: int) -> None:
        log.log(level, "test set %s skipped: %s", name, reason)
        self.skipped_test_sets[name] = reason
