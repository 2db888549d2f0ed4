"""Duplicate removal: exact (normalised text hash) and near-duplicates (MinHash LSH, datasketch).

Low-diversity sampling and small models produce the same dialogue more than once; duplicates
inflate a set and leak between train and test splits. The first occurrence (lowest dialogue index)
is kept, so the result does not depend on the order requests finished in.
"""

from __future__ import annotations

import hashlib
import re
from typing import Any

from datasketch import MinHash, MinHashLSH

from erc.checks import check_number
from erc.data.schema import Dialogue
from erc.errors import ConfigError

_WORD = re.compile(r"[a-z0-9']+")


def _words(dialogue: Dialogue) -> list[str]:
    return [w for u in dialogue.utterances for w in _WORD.findall(f"{u.speaker} {u.text}".lower())]


def exact_key(dialogue: Dialogue) -> str:
    """Hash of the dialogue's words (speakers and utterances): case, punctuation and spacing ignored."""
    return hashlib.sha256(" ".join(_words(dialogue)).encode()).hexdigest()


def minhash(dialogue: Dialogue, num_perm: int, shingle_words: int) -> MinHash:
    """MinHash over word shingles (a fixed seed, so runs agree)."""
    words = _words(dialogue)
    signature = MinHash(num_perm=num_perm, seed=1)
    n = min(shingle_words, len(words)) or 1
    for i in range(max(len(words) - n + 1, 1)):
        signature.update(" ".join(words[i:i + n]).encode())
    return signature


def deduplicate(dialogues: list[Dialogue], *, threshold: float, num_perm: int, shingle_words: int
                ) -> tuple[list[Dialogue], dict[str, int]]:
    """``(kept, {"exact": removed, "near": removed})``; ``dialogues`` in priority order."""
    seen: set[str] = set()
    lsh = MinHashLSH(threshold=threshold, num_perm=num_perm)
    kept: list[Dialogue] = []
    removed = {"exact": 0, "near": 0}
    for dialogue in dialogues:
        key = exact_key(dialogue)
        if key in seen:
            removed["exact"] += 1
            continue
        seen.add(key)
        signature = minhash(dialogue, num_perm, shingle_words)
        if lsh.query(signature):
            removed["near"] += 1
            continue
        lsh.insert(dialogue.id, signature)
        kept.append(dialogue)
    return kept, removed


def check_dedup_config(dedup: Any) -> None:
    """``dedup.*`` (``conf/dedup/``), checked before any request or encoding. MinHash LSH needs at least two bands
    at the threshold: near 1, or with few permutations, it has not (datasketch would then fail after every request
    was made)."""
    check_number(dedup, "minhash_threshold", lambda v: 0 < v <= 1, "a number in (0, 1]", prefix="dedup.")
    check_number(dedup, "num_perm", lambda v: v >= 2, "an integer >= 2", integer=True, prefix="dedup.")
    check_number(dedup, "shingle_words", lambda v: v >= 1, "a positive integer", integer=True, prefix="dedup.")
    threshold, num_perm = float(dedup.minhash_threshold), int(dedup.num_perm)
    try:
        MinHashLSH(threshold=threshold, num_perm=num_perm)
    except ValueError as err:
        raise ConfigError(f"dedup.minhash_threshold={threshold:g} with dedup.num_perm={num_perm} cannot be indexed "
                          f"({err}): lower the threshold (e.g. 0.98 at 128 permutations) or raise num_perm") from None
