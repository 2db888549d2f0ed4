"""The quality report: the real benchmark and each generated set scored side by side.

:class:`QualityReport` reads and embeds the benchmark, fits the probe on its train split and scores the real
test split (the ceiling of every fidelity and usefulness figure); :meth:`QualityReport.add_set` scores one
generated set. Every figure is a deterministic function of the data, the encoder and ``quality.seed``, so a rerun
writes the same bytes.
"""

from __future__ import annotations

import contextlib
import json
import logging
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from omegaconf import DictConfig, OmegaConf

from erc.data.contamination import BenchmarkLines, check_contamination_config, words
from erc.data.labels import label_set
from erc.data.schema import SPLITS
from erc.quality.checks import check_quality_config
from erc.quality.corpus import Corpus, read_benchmark
from erc.quality.distance import embedding_distance, label_divergence
from erc.quality.diversity import diversity, sampled_figures, share_at_cap, tokenize
from erc.quality.embeddings import EmbeddingCache, Encoder
from erc.quality.fidelity import Fidelity, most_suspicious, score_labels
from erc.quality.outputs import MIN_UTTERANCES
from erc.quality.probe import Probe, bootstrap_interval, confusion_matrix, features, weighted_f1

log = logging.getLogger(__name__)

# The figures that need a sample: left out of a set with fewer than MIN_UTTERANCES utterances (flagged too small).
SAMPLE_FIGURES = ("agreement", "chance", "kappa", "fidelity_ratio", "flagged", "probe_wf1", "probe_wf1_ci",
                  "real_plus_synthetic_wf1", "real_plus_synthetic_wf1_ci")

# The settings that change the report's numbers (threads, batch size, cache and W&B do not): quality.json keeps
# these, so a rerun that changes only the others writes the same bytes.
NUMBER_SETTINGS = ("encoder", "seed", "probe", "suspicious", "diversity", "length_cap", "distance")


def length_cap_of(folder: Path | None, configured: int | None) -> int | None:
    """``quality.length_cap``, else the grammar's utterance cap from a constrained set's ``card.json``."""
    if configured is not None or folder is None or not (folder / "card.json").is_file():
        return configured
    try:
        generator = json.loads((folder / "card.json").read_text(encoding="utf-8")).get("generator", {})
    except ValueError:
        return None
    if not generator.get("constrained"):
        return None
    cap = generator.get("sampling", {}).get("grammar", {}).get("max_utterance_chars")
    return int(cap) if isinstance(cap, int) else None


def judge_figures(folder: Path | None) -> dict[str, Any]:
    """The blind LLM judge's agreement with a set's labels, from ``judge/agreement.json`` (written when
    ``generate.py`` ran with ``judge=llm``, see docs/judge.md); nothing for a set without one."""
    path = None if folder is None else folder / "judge" / "agreement.json"
    if path is None or not path.is_file():
        return {}
    figures = json.loads(path.read_text(encoding="utf-8"))
    return {"judge_accuracy": figures["accuracy"], "judge_kappa": figures["kappa"]}


@dataclass
class ScoredSet:
    """A scored generated set: its corpus, embeddings and per-utterance fidelity (what the filter reads)."""

    corpus: Corpus
    vectors: np.ndarray
    fidelity: Fidelity
    metrics: dict[str, Any]


class QualityReport:
    """See the module docstring. ``quality`` is the ``quality`` config node."""

    def __init__(self, quality: DictConfig | dict[str, Any], benchmark: str, data_dir: str | Path,
                 dedup: DictConfig | dict[str, Any], contamination: DictConfig | dict[str, Any] | None = None
                 ) -> None:
        """``dedup``: the duplicate settings (``conf/dedup/``), the ones generation removes duplicates with;
        ``contamination``: the leakage check's (``conf/contamination/``; None: no check)."""
        check_quality_config(quality)
        check_contamination_config(contamination)
        self.contamination: dict[str, Any] | None = (
            OmegaConf.to_container(contamination, resolve=True) if isinstance(contamination, DictConfig)
            else None if contamination is None else dict(contamination))
        self.settings: dict[str, Any] = (OmegaConf.to_container(quality, resolve=True)
                                         if isinstance(quality, DictConfig) else dict(quality))
        self.dedup: dict[str, Any] = (OmegaConf.to_container(dedup, resolve=True) if isinstance(dedup, DictConfig)
                                      else dict(dedup))
        with self._threads():
            self._score_real(benchmark, data_dir)

    @contextlib.contextmanager
    def _threads(self) -> Iterator[None]:
        """``quality.threads`` BLAS threads (numpy, scikit-learn) as well as torch's (see :class:`Encoder`); one
        by default: the probe's matrices are small, and on two cores shared with other work, OpenMP threads
        spin-waiting for a core made its fits ten times slower (3.7 s instead of 0.5 s, measured 2026-12-02)."""
        from threadpoolctl import threadpool_limits

        with threadpool_limits(limits=int(self.settings.get("threads") or 1), user_api="blas"):
            yield

    def _score_real(self, benchmark: str, data_dir: str | Path) -> None:
        self.benchmark = benchmark
        self.names = label_set(benchmark)
        self.seed = int(self.settings["seed"])
        self.timings: dict[str, float] = {}
        start = time.perf_counter()
        self.real = read_benchmark(benchmark, data_dir)
        self.encoder = Encoder(str(self.settings["encoder"]), int(self.settings["batch_size"]),
                               self.settings.get("threads"))
        self.cache = EmbeddingCache(self.settings["cache_dir"], self.encoder)
        self.real_vectors = self.cache.embed(self.real.texts)
        self.timings[f"embed {benchmark}"] = time.perf_counter() - start
        start = time.perf_counter()
        probe = self.settings["probe"]
        self.train_rows, self.test_rows = self.real.rows("train"), self.real.rows("test")
        self.real_x = features(self.real, self.real_vectors, self.train_rows, bool(probe["context"]))
        self.real_y = self.real.labels[self.train_rows]
        self.test_x = features(self.real, self.real_vectors, self.test_rows, bool(probe["context"]))
        self.test_y = self.real.labels[self.test_rows]
        self.probe = self._fit(self.real_x, self.real_y)
        test_probs = self.probe.predict_proba(self.test_x)
        self.real_fidelity = score_labels(self.test_y, test_probs)
        majority = np.full_like(self.test_y, np.bincount(self.real_y, minlength=len(self.names)).argmax())
        self.majority_wf1 = weighted_f1(self.test_y, majority, len(self.names))
        self.sets: dict[str, ScoredSet] = {}
        self.columns: dict[str, dict[str, Any]] = {benchmark: {
            **self._fidelity_figures(self.real_fidelity, None),
            **self._usefulness(test_probs.argmax(axis=1), None),
            **diversity(self.real, **self._diversity_settings(None)),
            "label_js": label_divergence(self.test_y, self.real_y, len(self.names)),
            **embedding_distance(self.real_vectors[self.train_rows], self.real_vectors[self.test_rows],
                                 **self._distance_settings())}}
        self.leaks: dict[str, dict[str, Any]] = {}
        if self.contamination is not None:
            self._index_lines()
        self.timings[f"score {benchmark}"] = time.perf_counter() - start

    def _index_lines(self) -> None:
        """The benchmark's lines for the contamination check, and the real column's own figure: its train split
        against its dev and test lines (the scale: a TV script repeats itself)."""
        settings = self.contamination or {}
        by_split = {split: [d for d in self.real.dialogues if d.split == split] for split in SPLITS}
        min_words, ngram = int(settings["min_words"]), int(settings["ngram"])
        self.lines = BenchmarkLines(by_split, min_words, ngram)
        held_out = BenchmarkLines({s: by_split[s] for s in ("dev", "test")}, min_words, ngram)
        train = Corpus.from_dialogues(self.benchmark, self.benchmark, by_split["train"])
        self._add_leaks(self.benchmark, train, held_out.check(train.dialogues).summary(int(settings["examples"])),
                        self.real_vectors[self.train_rows])

    def _add_leaks(self, name: str, corpus: Corpus, summary: dict[str, Any], vectors: np.ndarray) -> None:
        """Column ``name``'s contamination: the check's ``summary`` and, with ``near_threshold``, the utterances
        whose embedding is that close to a benchmark line of each split."""
        threshold = (self.contamination or {}).get("near_threshold")
        if threshold is not None:
            long_enough = np.array([len(words(t)) >= summary["min_words"] for t in corpus.texts], dtype=bool)
            for split, figures in summary["splits"].items():
                rows = self.real.rows(split)
                figures["near"] = (None if corpus.name == self.benchmark and split == "train" else
                                   int(_near(vectors[long_enough], self.real_vectors[rows], float(threshold)).sum()))
            summary["near_threshold"] = float(threshold)
        self.leaks[name] = summary
        for split, figures in summary["splits"].items():
            own = name == self.benchmark and split == "train"
            self.columns[name][f"contamination_{split}"] = None if own else figures["utterances"]
            if "near" in figures:
                self.columns[name][f"contamination_near_{split}"] = figures["near"]

    # ---- pieces shared by the real column and every set -------------------------------------------------
    def _fit(self, x: np.ndarray, y: np.ndarray) -> Probe:
        probe = self.settings["probe"]
        return Probe.fit(x, y, len(self.names), float(probe["C"]), int(probe["max_iter"]), self.seed)

    def _diversity_settings(self, length_cap: int | None) -> dict[str, Any]:
        div = self.settings["diversity"]
        return {"sample_utterances": int(div["sample_utterances"]),
                "self_bleu_utterances": int(div["self_bleu_utterances"]), "length_cap": length_cap,
                "seed": self.seed, "dedup": self.dedup}

    def _distance_settings(self) -> dict[str, Any]:
        dist = self.settings["distance"]
        return {"size": int(dist["sample"]), "nearest_k": int(dist["nearest_k"]), "seed": self.seed}

    def _fidelity_figures(self, fidelity: Fidelity, ceiling: float | None) -> dict[str, Any]:
        figures = fidelity.summary(self.names)
        figures["fidelity_ratio"] = (figures["kappa"] / ceiling if ceiling else None)
        return figures

    def _usefulness(self, predicted: np.ndarray | None, mixed: np.ndarray | None) -> dict[str, Any]:
        """Weighted F1 on the real test split of the probe column's predictions and of real + synthetic."""
        def scored(pred: np.ndarray | None) -> tuple[float | None, list[float] | None]:
            if pred is None:
                return None, None
            interval = bootstrap_interval(self.test_y, pred, len(self.names), int(self.settings["probe"]["bootstrap"]),
                                          self.seed)
            return weighted_f1(self.test_y, pred, len(self.names)), (list(interval) if interval else None)
        wf1, ci = scored(predicted)
        both, both_ci = scored(mixed)
        return {"probe_wf1": wf1, "probe_wf1_ci": ci, "real_plus_synthetic_wf1": both,
                "real_plus_synthetic_wf1_ci": both_ci, "majority_wf1": self.majority_wf1}

    # ---- a generated set ---------------------------------------------------------------------------------
    def add_set(self, corpus: Corpus) -> ScoredSet:
        """Score ``corpus`` (a generated set of this benchmark) and add its column."""
        with self._threads():
            return self._score_set(corpus)

    def _score_set(self, corpus: Corpus) -> ScoredSet:
        start = time.perf_counter()
        vectors = self.cache.embed(corpus.texts)
        self.timings[f"embed {corpus.name}"] = time.perf_counter() - start
        start = time.perf_counter()
        context = bool(self.settings["probe"]["context"])
        everything = np.arange(len(corpus))
        fidelity = score_labels(corpus.labels, self.probe.predict_proba(features(corpus, vectors, everything, context)))
        train = corpus.rows("train")
        tstr = mixed = None
        if len(train):
            x, y = features(corpus, vectors, train, context), corpus.labels[train]
            tstr = self._fit(x, y).predict(self.test_x)
            mixed = self._fit(np.vstack([self.real_x, x]), np.concatenate([self.real_y, y])).predict(self.test_x)
        cap = length_cap_of(corpus.folder, self.settings.get("length_cap"))
        metrics = {**self._fidelity_figures(fidelity, self.columns[self.benchmark]["kappa"]),
                   **self._usefulness(tstr, mixed),
                   **diversity(corpus, **self._diversity_settings(cap)),
                   "label_js": label_divergence(corpus.labels, self.real_y, len(self.names)),
                   **embedding_distance(self.real_vectors[self.train_rows], vectors, **self._distance_settings()),
                   **judge_figures(corpus.folder)}
        if len(corpus) < MIN_UTTERANCES:   # flagged, its figures that need a sample not claimed
            metrics.update(dict.fromkeys(SAMPLE_FIGURES), too_small=True)
        if cap is not None and self.columns[self.benchmark]["length_cap"] is None:
            # the real column's share at the same cap, for reference (the first cap met)
            self.columns[self.benchmark].update(at_length_cap=share_at_cap(self.real.texts, cap), length_cap=cap)
        self.columns[corpus.name] = metrics
        if self.contamination is not None:
            self._add_leaks(corpus.name, corpus,
                            self.lines.check(corpus.dialogues).summary(int(self.contamination["examples"])), vectors)
        scored = ScoredSet(corpus, vectors, fidelity, metrics)
        self.sets[corpus.name] = scored
        self._equal_samples()
        self.timings[f"score {corpus.name}"] = time.perf_counter() - start
        return scored

    def _equal_samples(self) -> None:
        """distinct-n and self-BLEU fall as the sample grows: recompute them in every column at the smallest
        column's size (at most the configured sizes) whenever a smaller set arrives."""
        corpora = {self.benchmark: self.real, **{name: s.corpus for name, s in self.sets.items()}}
        smallest = min(len(c) for c in corpora.values())
        div = self.settings["diversity"]
        sizes = (min(int(div["sample_utterances"]), smallest), min(int(div["self_bleu_utterances"]), smallest))
        for name, corpus in corpora.items():
            figures = self.columns[name]
            if (figures["sample_utterances"], figures["self_bleu_utterances"]) != sizes:
                figures.update(sampled_figures(corpus, tokenize(corpus.texts), *sizes, self.seed))

    def to_dict(self) -> dict[str, Any]:
        """``quality.json``: settings, the columns' metrics, the suspicious utterances and confusion counts."""
        count = int(self.settings["suspicious"])
        return {
            "benchmark": self.benchmark, "labels": self.names, "columns": list(self.columns),
            "encoder": {"name": self.encoder.name, "identity": self.encoder.identity},
            "settings": {k: self.settings.get(k) for k in NUMBER_SETTINGS},
            "metrics": _rounded(self.columns),
            "suspicious": {name: most_suspicious(s.corpus.texts, s.fidelity, self.names, count, _ids(s.corpus))
                           for name, s in self.sets.items()},
            "contamination": self.leaks,
            "confusion": {name: confusion_matrix(s.fidelity.labels, s.fidelity.predicted, len(self.names)).tolist()
                          for name, s in self.sets.items()},
        }

    def run_facts(self) -> dict[str, Any]:
        """What this run did, which a rerun does differently (kept out of the report's bytes): texts encoded,
        cache hits and misses, seconds per step."""
        return {"encoded_texts": self.encoder.encoded, "cache_hits": self.cache.hits,
                "cache_misses": self.cache.misses, "timings_s": {k: round(v, 2) for k, v in self.timings.items()}}


def _near(vectors: np.ndarray, lines: np.ndarray, threshold: float, chunk: int = 2048) -> np.ndarray:
    """Whether each row of ``vectors`` (L2-normalised) has a cosine similarity >= ``threshold`` with a row of
    ``lines``, in chunks (a 20,000 x 13,000 similarity matrix at once would take a gigabyte)."""
    close = np.zeros(len(vectors), dtype=bool)
    for start in range(0, len(vectors), chunk):
        close[start:start + chunk] = (vectors[start:start + chunk] @ lines.T).max(axis=1, initial=-1.0) >= threshold
    return close


def _ids(corpus: Corpus) -> list[str]:
    return [f"{corpus.dialogues[d].id}#{t}" for d, t in zip(corpus.dialogue_index, corpus.turns, strict=True)]


def _rounded(value: Any) -> Any:
    """Floats to 4 decimals: the report's bytes then do not depend on the last bits of a BLAS sum."""
    if isinstance(value, float):
        return round(value, 4)
    if isinstance(value, dict):
        return {k: _rounded(v) for k, v in value.items()}
    if isinstance(value, list):
        return [_rounded(v) for v in value]
    return value
