"""Test-set leakage: generated utterances that reproduce a line of the benchmark.

MELD and EmoryNLP are lines of *Friends*, whose scripts LLMs have read. A generated dialogue that reproduces a test
line, pretrained on and then tested on, inflates exactly the gains the paper measures. Every generated utterance is
compared with the benchmark's train, dev and test utterances, after normalisation (case, punctuation, apostrophes,
whitespace; :func:`words`):

- **exact**: the whole utterance equals a benchmark utterance, for utterances of at least ``min_words`` words. Shorter
  ones are generic ("Okay.", "Oh my God!"): MELD's own train split repeats 1,176 of its test lines that way, and
  nobody would call them leaks.
- **ngram**: the utterance shares a run of ``ngram`` words with a benchmark utterance (8 to 13 words is what LLM
  decontamination reports use): a test line quoted inside a longer generated one.

The result per split gives the utterances and the dialogues matched and a few examples; :meth:`Contamination.matches`
gives each matched dialogue's first match per split, which decontamination (``postprocess.decontaminate``) uses to
remove the dialogues that carry a dev or test line. Pure Python sets: every MELD split against 2,000 generated
dialogues takes about a second (``bench/contamination.py``).
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erc.data.load import load_benchmark
from erc.data.schema import SPLITS, Dialogue
from erc.data.text import normalise_text
from erc.errors import ConfigError

_WORD = re.compile(r"[^\W_]+")
_INNER = re.compile(r"(?<=[^\W_])['.](?=[^\W_])")


def words(text: str) -> list[str]:
    """The normalised words of ``text``: lower case, apostrophes and dots inside words dropped ("don't" = "dont",
    "C.H.E.E.S.E." = "cheese", so a spelled-out word is not eight one-letter words), every other punctuation mark a
    separator."""
    return _WORD.findall(_INNER.sub("", normalise_text(text).lower()))


@dataclass(frozen=True)
class Match:
    """A generated utterance that reproduces a benchmark line: where each is, and how it matched."""

    split: str
    how: str                      # "exact" | "ngram"
    dialogue: str                 # the generated dialogue's id
    turn: int
    utterance: str                # the generated text
    benchmark_id: str             # the benchmark utterance's id
    matched: str                  # the benchmark's text

    def to_dict(self, with_line: bool = True) -> dict[str, Any]:
        """The match as JSON; ``with_line=False`` leaves the benchmark's text out (its id stays), for what may be
        published: a card or README must not carry the benchmark's lines."""
        return {"split": self.split, "how": self.how, "dialogue": self.dialogue, "turn": self.turn,
                "utterance": self.utterance, "benchmark_id": self.benchmark_id,
                **({"matched": self.matched} if with_line else {})}


def check_contamination_config(node: Any, decontaminate: Any = (), key: str = "contamination") -> None:
    """The ``contamination`` config node (``conf/contamination/``; None: no check) and ``postprocess.decontaminate``
    (split names, which need the check), before any work."""
    splits = list(decontaminate or [])
    if any(split not in SPLITS for split in splits):
        raise ConfigError(f"postprocess.decontaminate must be a list of splits out of {', '.join(SPLITS)} (e.g. "
                          f"[dev, test]; [] keeps every dialogue), got {splits}")
    if node is None:
        if splits:
            raise ConfigError(f"postprocess.decontaminate={splits} needs the contamination check: set "
                              f"contamination=default (the check), or postprocess.decontaminate=[] (no removal)")
        return
    for name, low in (("min_words", 1), ("ngram", 1), ("examples", 0)):
        value = node.get(name)
        if isinstance(value, bool) or not isinstance(value, int) or value < low:
            raise ConfigError(f"{key}.{name} must be an integer >= {low}, got {value!r} "
                              f"(conf/contamination/default.yaml)")
    near = node.get("near_threshold")
    if near is not None and (isinstance(near, bool) or not isinstance(near, (int, float)) or not 0 < near <= 1):
        raise ConfigError(f"{key}.near_threshold must be a cosine similarity in (0, 1] (e.g. 0.95) or null (off), "
                          f"got {near!r}")


@dataclass
class Contamination:
    """The matches of a generated set against a benchmark (see the module docstring)."""

    min_words: int
    ngram: int
    dialogues: int
    utterances: int
    found: list[Match] = field(default_factory=list)

    def matches(self, splits: Iterable[str]) -> dict[str, Match]:
        """Each dialogue's first match with one of ``splits`` (in generated order), by dialogue id."""
        wanted, first = set(splits), {}
        for match in self.found:
            if match.split in wanted:
                first.setdefault(match.dialogue, match)
        return first

    def summary(self, examples: int = 5) -> dict[str, Any]:
        """The report's entry: settings, and per split the utterances and dialogues matched (by how) and the first
        ``examples`` matches (by the benchmark line's id, without its text)."""
        per_split: dict[str, Any] = {}
        for split in SPLITS:
            found = [m for m in self.found if m.split == split]
            per_split[split] = {
                "utterances": len({(m.dialogue, m.turn) for m in found}),
                "dialogues": len({m.dialogue for m in found}),
                "exact": sum(m.how == "exact" for m in found), "ngram": sum(m.how == "ngram" for m in found),
                "examples": [m.to_dict(with_line=False) for m in found[:examples]]}
        return {"min_words": self.min_words, "ngram": self.ngram, "dialogues_checked": self.dialogues,
                "utterances_checked": self.utterances, "splits": per_split}


class BenchmarkLines:
    """The benchmark's utterances indexed for :meth:`check`: the normalised utterances of at least ``min_words``
    words and every ``ngram``-word run, each to its first line per split."""

    def __init__(self, splits: Mapping[str, list[Dialogue]], min_words: int, ngram: int) -> None:
        self.min_words, self.ngram = min_words, ngram
        self.exact: dict[str, dict[str, tuple[str, str]]] = {}
        self.runs: dict[str, dict[str, tuple[str, str]]] = {}
        for split, dialogues in splits.items():
            for dialogue in dialogues:
                for turn, utterance in enumerate(dialogue.utterances):
                    line = (utterance.id or f"{dialogue.id}#{turn}", utterance.text)
                    tokens = words(utterance.text)
                    if len(tokens) >= min_words:
                        self.exact.setdefault(" ".join(tokens), {}).setdefault(split, line)
                    for run in _runs(tokens, ngram):
                        self.runs.setdefault(run, {}).setdefault(split, line)

    def check(self, dialogues: list[Dialogue]) -> Contamination:
        """Every utterance of ``dialogues`` against the benchmark: an exact match where the utterance is long
        enough, else (or for the splits it does not equal) the first shared ``ngram``-word run."""
        result = Contamination(self.min_words, self.ngram, len(dialogues), sum(len(d) for d in dialogues))
        for dialogue in dialogues:
            for turn, utterance in enumerate(dialogue.utterances):
                tokens = words(utterance.text)
                hits: dict[str, tuple[str, tuple[str, str]]] = {}
                if len(tokens) >= self.min_words:
                    for split, line in self.exact.get(" ".join(tokens), {}).items():
                        hits[split] = ("exact", line)
                for run in _runs(tokens, self.ngram):
                    for split, line in self.runs.get(run, {}).items():
                        hits.setdefault(split, ("ngram", line))
                result.found += [Match(split, how, dialogue.id, turn, utterance.text, *line)
                                 for split in SPLITS if split in hits for how, line in [hits[split]]]
        return result


def _runs(tokens: list[str], n: int) -> Iterable[str]:
    return (" ".join(tokens[i:i + n]) for i in range(len(tokens) - n + 1))


def load_benchmark_lines(benchmark: str, data_dir: str | Path, min_words: int, ngram: int) -> BenchmarkLines:
    """Every split of ``benchmark`` in ``data_dir``, indexed; raises :class:`erc.data.schema.MissingDataError`
    when a split is not there."""
    return BenchmarkLines({split: load_benchmark(benchmark, split, data_dir) for split in SPLITS}, min_words, ngram)
