"""TODKAT's knowledge cache: COMET inferences per utterance, in one JSONL file that
``python -m erc.models.knowledge`` fills (:mod:`erc.models.knowledge.__main__`) and training only reads.

Format (``cache/knowledge/comet.jsonl``, see :func:`default_cache_path`; UTF-8, one JSON object per line)::

    {"text": "I can't believe you did that!", "comet": "comet-atomic_2020_BART",
     "xIntent": ["to express anger", ...], "xReact": ["angry", ...], "oReact": ["sad", ...]}

``text`` is the utterance with whitespace collapsed (the lookup key; utterances repeat across
datasets, so one cache serves all of them). ``comet`` names the model that wrote the record. Records are
appended as they are generated, so an interrupted fill resumes where it stopped; a last record cut off
mid-write is ignored with a warning (:func:`erc.io.read_jsonl`, the project's reader of append-only logs).
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Sequence
from pathlib import Path

from erc.data import DataError, default_data_dir
from erc.io import read_jsonl
from erc.paths import PROJECT_ROOT

RELATIONS: tuple[str, ...] = ("xIntent", "xReact", "oReact")
# How each inference is turned into a sentence for the utterance encoder.
TEMPLATES: dict[str, str] = {
    "xIntent": "PersonX wants {}.",
    "xReact": "PersonX feels {}.",
    "oReact": "Others feel {}.",
}
DEFAULT_CACHE = Path("knowledge") / "comet.jsonl"


def cache_key(text: str) -> str:
    """The lookup key of an utterance: its text with runs of whitespace collapsed."""
    return " ".join(text.split())


def default_cache_path() -> Path:
    """``$ERC_CACHE_DIR/knowledge/comet.jsonl``, by default ``cache/knowledge/comet.jsonl`` in the project: never in
    the benchmark folder, which is only read. A cache left at the former place, ``<data_dir>/knowledge/``, is an
    error giving the ``mv`` that moves it (rather than a silent second fill of COMET's hours of inference)."""
    path = Path(os.environ.get("ERC_CACHE_DIR") or PROJECT_ROOT / "cache") / DEFAULT_CACHE
    former = default_data_dir() / DEFAULT_CACHE
    if not path.exists() and former.is_file():
        raise DataError(f"{former}: the knowledge cache is kept outside the benchmark folder now; move it with "
                        f"`mkdir -p {path.parent} && mv {former} {path}`, or give classifier.knowledge_cache={former}")
    return path


class KnowledgeCache:
    """COMET inferences per utterance text, read from and appended to one JSONL file.

    ``repair`` cuts a record torn by an interrupted fill off the file, so that the next :meth:`add` starts on a line
    of its own: for the filling command, which appends; readers (training) leave the file as it is."""

    def __init__(self, path: str | Path, repair: bool = False) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, list[str]]] = {}
        for number, record in enumerate(read_jsonl(self.path, repair=repair), start=1):
            key = self._key_of(record, number)                # first: it checks that the record is an object
            self.entries[key] = self._relations_of(record, number)

    def _key_of(self, record: object, number: int) -> str:
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataError(f"{self.path}: record {number}: field 'text' is missing or not a string")
        return cache_key(record["text"])

    def _relations_of(self, record: dict, number: int) -> dict[str, list[str]]:
        out = {}
        for relation in RELATIONS:
            values = record.get(relation)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise DataError(f"{self.path}: record {number}: field {relation!r} must be a list of strings")
            out[relation] = values
        return out

    def __contains__(self, text: str) -> bool:
        return cache_key(text) in self.entries

    def __len__(self) -> int:
        return len(self.entries)

    def get(self, text: str) -> dict[str, list[str]]:
        """The inferences of one utterance; a clear error when the cache lacks it."""
        try:
            return self.entries[cache_key(text)]
        except KeyError:
            raise DataError(
                f"{self.path}: no COMET inferences for utterance {text[:80]!r}; fill the cache with "
                f"`python -m erc.models.knowledge --comet <local COMET model> --data <dataset> ...`"
            ) from None

    def missing(self, texts: Iterable[str]) -> list[str]:
        """The distinct keys of ``texts`` not yet in the cache, in first-seen order."""
        seen: dict[str, None] = {}
        for text in texts:
            key = cache_key(text)
            if key not in self.entries:
                seen.setdefault(key, None)
        return list(seen)

    def add(self, records: Sequence[tuple[str, dict[str, list[str]]]], model: str) -> None:
        """Append ``(text, {relation: inferences})`` records to the file and to memory."""
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self.path.open("a", encoding="utf-8") as handle:
            for text, relations in records:
                key = cache_key(text)
                record = {"text": key, "comet": model, **{r: list(relations[r]) for r in RELATIONS}}
                handle.write(json.dumps(record, ensure_ascii=False) + "\n")
                self.entries[key] = {r: list(relations[r]) for r in RELATIONS}
            handle.flush()


def knowledge_sentences(relations: dict[str, list[str]], per_relation: int) -> list[str]:
    """The sentences an utterance attends to: up to ``per_relation`` inferences of each relation,
    COMET's ``none`` (no inference) and empty strings left out."""
    sentences = []
    for relation in RELATIONS:
        kept = [v.strip() for v in relations[relation] if v.strip() and v.strip().lower() != "none"]
        sentences += [TEMPLATES[relation].format(v) for v in kept[:per_relation]]
    return sentences
