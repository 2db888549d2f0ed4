"""Commonsense knowledge for TODKAT: a cache of COMET inferences per utterance, the command that
fills it, and the attention that lets an utterance read them.

TODKAT (Zhu et al., ACL 2021) asks COMET what an utterance implies: why the speaker says it
(``xIntent``), how the speaker feels (``xReact``) and how the others feel (``oReact``). Generating
these is slow and needs a COMET model, so it is done once, by a separate command, into a cache that
training only reads:

    python -m erc.models.knowledge --comet /models/comet-atomic_2020_BART --data meld meld_bal

Cache format (``<data_dir>/knowledge/comet.jsonl``, UTF-8, one JSON object per line)::

    {"text": "I can't believe you did that!", "comet": "comet-atomic_2020_BART",
     "xIntent": ["to express anger", ...], "xReact": ["angry", ...], "oReact": ["sad", ...]}

``text`` is the utterance with whitespace collapsed (the lookup key; utterances repeat across
datasets, so one cache serves all of them). ``comet`` names the model that wrote the record. Lines are
appended as they are generated, so an interrupted fill resumes where it stopped; a last line cut off
mid-write is ignored with a warning.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch
from torch import nn

from erc.data import DataError, default_data_dir, load_benchmark
from erc.errors import exit_on_user_error

log = logging.getLogger(__name__)

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


def default_cache_path(data_dir: str | Path | None = None) -> Path:
    """``<data_dir>/knowledge/comet.jsonl``."""
    return Path(data_dir or default_data_dir()) / DEFAULT_CACHE


class KnowledgeCache:
    """COMET inferences per utterance text, read from and appended to one JSONL file."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self.entries: dict[str, dict[str, list[str]]] = {}
        if self.path.exists():
            self._read()

    def _read(self) -> None:
        raw = self.path.read_text(encoding="utf-8")
        lines = raw.split("\n")
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                if number == len(lines) and not raw.endswith("\n"):
                    log.warning("%s:%d: ignoring a last line cut off mid-write", self.path, number)
                    continue
                raise DataError(f"{self.path}:{number}: not valid JSON ({err.msg})") from err
            key = self._key_of(record, number)
            self.entries[key] = self._relations_of(record, number)

    def _key_of(self, record: object, number: int) -> str:
        if not isinstance(record, dict) or not isinstance(record.get("text"), str):
            raise DataError(f"{self.path}:{number}: field 'text' is missing or not a string")
        return cache_key(record["text"])

    def _relations_of(self, record: dict, number: int) -> dict[str, list[str]]:
        out = {}
        for relation in RELATIONS:
            values = record.get(relation)
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise DataError(f"{self.path}:{number}: field {relation!r} must be a list of strings")
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


class KnowledgeAttention(nn.Module):
    """Scaled dot-product attention from an utterance vector to its knowledge sentence vectors.

    An utterance with no knowledge gets a zero vector (not a uniform average over padding).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, utterance: torch.Tensor, knowledge: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``utterance`` (N, H), ``knowledge`` (N, M, H), ``mask`` (N, M) True where real -> (N, H)."""
        scores = torch.einsum("nh,nmh->nm", self.query(utterance), self.key(knowledge))
        scores = scores / math.sqrt(utterance.shape[-1])
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows without knowledge: all -inf
        return torch.einsum("nm,nmh->nh", weights, self.value(knowledge))


def comet_generate(model, tokenizer, texts: Sequence[str], relation: str, num_return: int,
                   num_beams: int, max_new_tokens: int) -> list[list[str]]:
    """COMET-ATOMIC-2020 (BART) inferences: the query is ``"<event> <relation> [GEN]"``."""
    queries = [f"{text} {relation} [GEN]" for text in texts]
    batch = tokenizer(queries, return_tensors="pt", padding=True, truncation=True, max_length=128)
    batch = {k: v.to(model.device) for k, v in batch.items()}
    with torch.no_grad():
        out = model.generate(**batch, num_beams=max(num_beams, num_return), num_return_sequences=num_return,
                             max_new_tokens=max_new_tokens, do_sample=False)
    decoded = tokenizer.batch_decode(out, skip_special_tokens=True)
    results = []
    for i in range(len(texts)):
        unique: dict[str, None] = {}
        for value in decoded[i * num_return:(i + 1) * num_return]:
            if value.strip():
                unique.setdefault(value.strip(), None)
        results.append(list(unique))
    return results


def fill_cache(cache: KnowledgeCache, texts: Iterable[str], comet_dir: str | Path, batch_size: int = 16,
               num_return: int = 3, num_beams: int = 5, max_new_tokens: int = 24,
               device: str | None = None) -> int:
    """Generate and append the inferences of every text the cache lacks; returns how many were added."""
    from tqdm import tqdm
    from transformers import AutoModelForSeq2SeqLM, AutoTokenizer

    todo = cache.missing(texts)
    if not todo:
        return 0
    comet_dir = Path(comet_dir)
    if not comet_dir.is_dir():
        raise FileNotFoundError(f"COMET model folder {comet_dir} does not exist (a local Hugging Face "
                                f"seq2seq checkpoint such as comet-atomic_2020_BART is expected)")
    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    tokenizer = AutoTokenizer.from_pretrained(comet_dir, local_files_only=True)
    model = AutoModelForSeq2SeqLM.from_pretrained(comet_dir, local_files_only=True).to(device).eval()
    with tqdm(total=len(todo), desc="COMET", unit="utt") as bar:
        for start in range(0, len(todo), batch_size):
            chunk = todo[start:start + batch_size]
            per_relation = {r: comet_generate(model, tokenizer, chunk, r, num_return, num_beams, max_new_tokens)
                            for r in RELATIONS}
            cache.add([(text, {r: per_relation[r][i] for r in RELATIONS}) for i, text in enumerate(chunk)],
                      model=comet_dir.name)
            bar.update(len(chunk))
    return len(todo)


def dataset_texts(names: Sequence[str], splits: Sequence[str], data_dir: str | Path | None) -> list[str]:
    """Every utterance text of the named datasets' splits."""
    texts = []
    for name in names:
        for split in splits:
            texts += [u.text for d in load_benchmark(name, split, data_dir) for u in d.utterances]
    return texts


@exit_on_user_error
def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m erc.models.knowledge",
        description="Fill TODKAT's knowledge cache with COMET inferences (xIntent, xReact, oReact) for "
                    "every utterance of the given datasets. Resumes: utterances already cached are skipped.")
    parser.add_argument("--comet", required=True, help="local COMET seq2seq model folder (e.g. comet-atomic_2020_BART)")
    parser.add_argument("--data", nargs="+", required=True, help="datasets, e.g. meld meld_bal emorynlp_nat")
    parser.add_argument("--splits", nargs="+", default=["train", "dev", "test"])
    parser.add_argument("--data-dir", default=None, help="data folder (default: $ERC_DATA_DIR or <repo>/data)")
    parser.add_argument("--cache", default=None, help="cache file (default: <data_dir>/knowledge/comet.jsonl)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-return", type=int, default=3, help="inferences kept per relation")
    parser.add_argument("--num-beams", type=int, default=5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    cache = KnowledgeCache(args.cache or default_cache_path(args.data_dir))
    texts = dataset_texts(args.data, args.splits, args.data_dir)
    added = fill_cache(cache, texts, args.comet, batch_size=args.batch_size, num_return=args.num_return,
                       num_beams=args.num_beams, device=args.device)
    log.info("%s: %d utterances added, %d cached in all", cache.path, added, len(cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
