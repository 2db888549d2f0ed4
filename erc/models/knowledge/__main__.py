"""``python -m erc.models.knowledge``: fill TODKAT's knowledge cache (:mod:`erc.models.knowledge.cache`) with COMET
inferences for every utterance of the given datasets; the only part of :mod:`erc.models.knowledge` that loads a COMET
model. It resumes: utterances already cached are skipped, and a last record cut off by an interrupted run is cut from
the file before appending."""

from __future__ import annotations

import argparse
import logging
from collections.abc import Iterable, Sequence
from pathlib import Path

import torch

from erc.data import load_benchmark
from erc.errors import exit_on_user_error
from erc.models.knowledge.cache import RELATIONS, KnowledgeCache, default_cache_path

log = logging.getLogger(__name__)


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


def dataset_texts(names: Sequence[str], splits: Sequence[str], data_dir: str | Path | None,
                  synthetic_dir: str | Path | None = None) -> list[str]:
    """Every utterance text of the named datasets' splits."""
    texts = []
    for name in names:
        for split in splits:
            texts += [u.text for d in load_benchmark(name, split, data_dir, synthetic_dir) for u in d.utterances]
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
    parser.add_argument("--synthetic-dir", default=None,
                        help="the generated sets (default: $ERC_SYNTHETIC_DIR or <repo>/synthetic)")
    parser.add_argument("--cache", default=None, help="cache file (default: $ERC_CACHE_DIR/knowledge/comet.jsonl, "
                        "cache/ in the project)")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--num-return", type=int, default=3, help="inferences kept per relation")
    parser.add_argument("--num-beams", type=int, default=5)
    parser.add_argument("--device", default=None)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO)
    cache = KnowledgeCache(args.cache or default_cache_path(), repair=True)
    texts = dataset_texts(args.data, args.splits, args.data_dir, args.synthetic_dir)
    added = fill_cache(cache, texts, args.comet, batch_size=args.batch_size, num_return=args.num_return,
                       num_beams=args.num_beams, device=args.device)
    log.info("%s: %d utterances added, %d cached in all", cache.path, added, len(cache))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
