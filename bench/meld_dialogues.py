"""MELD-shaped dialogues for the GPU check (``gpu_check.py``): MELD's train split where the benchmark is found, else
dialogues drawn from MELD's shape as ``meld_shape.json`` keeps it, for a machine without the data.

``meld_shape.json`` holds histograms of MELD's train split (1,038 dialogues, 9,989 utterances): turns per dialogue,
speakers per dialogue, the emotion labels, and tokens per utterance as all-MiniLM-L6-v2's WordPiece cuts them (11.8
on average), the closest tokenizer to RoBERTa's BPE that is installed here (roberta-large's own needs the hub).
Drawn dialogues are made of words that the local tokenizer (:func:`erc.models.backbone.local_tokenizer`, the one the
check's random encoders use) keeps as one token each, so an utterance drawn with n tokens is n tokens long there.
Real MELD's text comes out longer from the local tokenizer (15.2 tokens an utterance), so figures per utterance from
real and drawn dialogues differ by that; tokens/s do not.

    python bench/meld_dialogues.py        # rewrite meld_shape.json from the MELD train split found
"""

from __future__ import annotations

import json
import os
import random
import sys
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from erc.data import Dialogue, Utterance, default_data_dir, load_benchmark  # noqa: E402

SHAPE_FILE = Path(__file__).resolve().parent / "meld_shape.json"


def data_candidates() -> list[Path]:
    """Where MELD may be, first found first used, as the tests look: ``$ERC_DATA_DIR`` (else ``data/`` in the project),
    ``data/``, then the read-only copy beside the project (``../shared/data``, or ``$ERC_SHARED_DATA``)."""
    shared = Path(os.environ.get("ERC_SHARED_DATA") or ROOT.parent / "shared" / "data")
    return list(dict.fromkeys([default_data_dir(), ROOT / "data", shared]))


def find_meld() -> Path | None:
    """The first candidate folder holding ``meld/``, or None."""
    return next((folder for folder in data_candidates() if (folder / "meld").is_dir()), None)


def shape_of(dialogues: list[Dialogue], tokenize) -> dict[str, dict[str, int]]:
    """Histograms (value -> count, keys as strings) of turns and speakers per dialogue, labels, and tokens per
    utterance by ``tokenize`` (text -> tokens, without special tokens)."""
    def histogram(values) -> dict[str, int]:
        return {str(k): v for k, v in sorted(Counter(values).items())}

    utterances = [u for d in dialogues for u in d.utterances]
    return {"turns": histogram(len(d) for d in dialogues),
            "speakers": histogram(len({u.speaker for u in d.utterances}) for d in dialogues),
            "labels": histogram(u.label for u in utterances),
            "tokens": histogram(len(tokenize(u.text)) for u in utterances)}


def _draw(rng: random.Random, histogram: dict[str, int]) -> str:
    return rng.choices(list(histogram), weights=list(histogram.values()))[0]


def one_token_words(tokenizer) -> list[str]:
    """Words of the local tokenizer's corpus that it keeps as one token both at the start of a text and after a space
    (its byte-level pre-tokenizer splits at spaces, so a text of n such words is n tokens)."""
    from erc.models.backbone import tiny_corpus

    words = sorted({w for line in tiny_corpus() for w in line.split() if w.isalpha()})
    return [w for w in words if len(tokenizer.tokenize(w)) == 1 and len(tokenizer.tokenize(f"a {w}")) == 2]


def drawn_dialogues(n: int, words: list[str], shape: dict | None = None, seed: int = 0) -> list[Dialogue]:
    """``n`` dialogues with MELD's turns, speakers, labels and tokens per utterance drawn from ``shape`` (default:
    ``meld_shape.json``), their text made of ``words`` (one token each: :func:`one_token_words`)."""
    shape = shape or json.loads(SHAPE_FILE.read_text())
    rng = random.Random(seed)
    dialogues = []
    for i in range(n):
        turns = int(_draw(rng, shape["turns"]))
        speakers = [f"speaker {k}" for k in range(min(turns, int(_draw(rng, shape["speakers"]))))]
        utterances = [Utterance(speakers[t % len(speakers)] if t < len(speakers) else rng.choice(speakers),
                                " ".join(rng.choices(words, k=max(1, int(_draw(rng, shape["tokens"]))))),
                                _draw(rng, shape["labels"]))
                      for t in range(turns)]
        dialogues.append(Dialogue(id=f"drawn-{i}", utterances=utterances, benchmark="meld", split="train"))
    return dialogues


def meld_dialogues(n: int, source: str, tokenizer) -> tuple[list[Dialogue], str]:
    """(``n`` MELD-shaped train dialogues, where they came from). ``source``: ``auto`` (real MELD when found, else
    drawn), ``real`` or ``drawn``; ``tokenizer``: the local one, whose one-token words the drawn text is made of."""
    folder = find_meld() if source != "drawn" else None
    if folder is not None:
        return load_benchmark("meld", "train", folder)[:n], f"MELD train split, {folder / 'meld'}"
    if source == "real":
        looked = ", ".join(str(folder / "meld") for folder in data_candidates())
        raise FileNotFoundError(f"MELD not found (looked at {looked}); set ERC_DATA_DIR, or --data drawn")
    return drawn_dialogues(n, one_token_words(tokenizer)), f"drawn from {SHAPE_FILE.name} (MELD train's shape)"


def main() -> None:
    from erc.models.backbone import build_tokenizer

    folder = find_meld()
    if folder is None:
        sys.exit(f"error: MELD not found (looked at {', '.join(str(f / 'meld') for f in data_candidates())}); "
                 "set ERC_DATA_DIR to a folder holding meld/")
    tokenizer = build_tokenizer("minilm")
    shape = shape_of(load_benchmark("meld", "train", folder), tokenizer.tokenize)
    SHAPE_FILE.write_text("{\n" + ",\n".join(f" {json.dumps(k)}: {json.dumps(v)}" for k, v in shape.items()) + "\n}\n")
    print(f"wrote {SHAPE_FILE}")


if __name__ == "__main__":
    main()
