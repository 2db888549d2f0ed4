"""Benchmark the contamination check (issue goal: every MELD split against a 2,000-dialogue set within 30 s on two
CPU cores), beside the check a user would otherwise write: every generated utterance searched for in every
benchmark utterance (normalised substring, both ways), measured on a sample and scaled up.

    python bench/contamination.py [--data-dir ../shared/data]

The 2,000-dialogue set is MELD train dialogues drawn with replacement, each utterance's words shuffled with a seed
(MELD's lengths and vocabulary, but lines the benchmark does not hold), with 50 long MELD test lines planted back
whole so that the check has something to find. Timed: reading MELD's three splits, indexing them and checking the
set, as post-processing does. Prints figures, asserts nothing.
"""

from __future__ import annotations

import argparse
import os
import platform
import random
import sys
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from erc.data import load_benchmark  # noqa: E402
from erc.data.contamination import load_benchmark_lines, words  # noqa: E402
from erc.data.load import default_data_dir  # noqa: E402

DIALOGUES = 2000
PLANTED = 50


def make_set(data_dir: Path, seed: int = 0) -> tuple[list, int]:
    """The 2,000 dialogues and how many test lines were planted in them."""
    rng = random.Random(seed)
    pool = load_benchmark("meld", "train", data_dir)
    long_lines = [u.text for d in load_benchmark("meld", "test", data_dir) for u in d.utterances
                  if len(words(u.text)) >= 10]
    dialogues = []
    for i in range(DIALOGUES):
        source = rng.choice(pool)
        utterances = []
        for u in source.utterances:
            shuffled = u.text.split()
            rng.shuffle(shuffled)
            utterances.append(replace(u, text=" ".join(shuffled) or u.text))
        if i < PLANTED:
            utterances[0] = replace(utterances[0], text=long_lines[i])
        dialogues.append(replace(source, id=f"bench_{i:05d}", utterances=utterances))
    return dialogues, PLANTED


def naive_seconds(dialogues: list, data_dir: Path, sample: int = 200) -> float:
    """The all-pairs substring search on ``sample`` generated utterances, scaled to the whole set."""
    lines = [" ".join(words(u.text)) for split in ("train", "dev", "test")
             for d in load_benchmark("meld", split, data_dir) for u in d.utterances]
    texts = [" ".join(words(u.text)) for d in dialogues for u in d.utterances]
    start = time.perf_counter()
    for text in texts[:sample]:
        _ = [line for line in lines if text in line or line in text]
    return (time.perf_counter() - start) * len(texts) / sample


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data_dir = args.data_dir or next((p for p in (default_data_dir(), ROOT.parent / "shared" / "data")
                                      if (p / "meld").is_dir()), default_data_dir())
    dialogues, planted = make_set(data_dir)
    utterances = sum(len(d) for d in dialogues)
    start = time.perf_counter()
    lines = load_benchmark_lines("meld", data_dir, min_words=6, ngram=8)
    indexed = time.perf_counter()
    found = lines.check(dialogues)
    done = time.perf_counter()
    test = found.summary()["splits"]["test"]
    naive = naive_seconds(dialogues, data_dir)
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python "
          f"{platform.python_version()}")
    print(f"set: {DIALOGUES} dialogues, {utterances} utterances, {planted} MELD test lines planted")
    print(f"read + index MELD train/dev/test: {indexed - start:.2f} s; check: {done - indexed:.2f} s; "
          f"test utterances matched: {test['utterances']} ({test['exact']} equal, {test['ngram']} by a shared run)")
    print(f"naive all-pairs substring search (scaled from 200 utterances): {naive:.0f} s")
    print(f"summary: contamination check, MELD's 3 splits vs {DIALOGUES} dialogues: {done - start:.1f} s "
          f"(goal <= 30 s; naive all-pairs search {naive:.0f} s)")


if __name__ == "__main__":
    main()
