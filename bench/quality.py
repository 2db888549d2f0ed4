"""Benchmark the quality report (issue goal: MELD plus one 2,000-dialogue set within 5 minutes from cold on two CPU
cores, within 30 s with the embeddings cached) and the encoder's sentences per second.

    python bench/quality.py [--data-dir ../shared/data] [--threads N]

The 2,000-dialogue set is made of MELD train dialogues drawn with replacement, each utterance's words shuffled
with a seed: MELD's lengths and vocabulary, but texts the benchmark does not hold, so the cold run really encodes
both sides (the encoder skips texts it has already embedded). Each run is ``python quality.py`` in a subprocess,
timed from start to exit: Hydra, imports, reading, encoding, probes, metrics, plots. Prints figures, asserts
nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import subprocess
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from erc.data import load_benchmark, write_dialogues_jsonl  # noqa: E402
from erc.data.load import default_data_dir  # noqa: E402
from erc.quality.embeddings import Encoder  # noqa: E402

DIALOGUES = 2000


def make_set(data_dir: Path, folder: Path, seed: int = 0) -> int:
    """Write the 2,000-dialogue set; returns its utterance count."""
    rng = random.Random(seed)
    pool = load_benchmark("meld", "train", data_dir)
    dialogues = []
    for i in range(DIALOGUES):
        source = rng.choice(pool)
        utterances = []
        for u in source.utterances:
            words = u.text.split()
            rng.shuffle(words)
            utterances.append(replace(u, text=" ".join(words) or u.text))
        split = "train" if i % 10 < 8 else "dev" if i % 10 == 8 else "test"
        dialogues.append(replace(source, id=f"bench_{i:05d}", source="nat", split=split, utterances=utterances))
    for split in ("train", "dev", "test"):
        write_dialogues_jsonl(folder / f"{split}.jsonl", [d for d in dialogues if d.split == split])
    return sum(len(d) for d in dialogues)


def report(data: Path, out: Path, cache: Path, threads: int | None) -> tuple[float, dict]:
    """One ``quality.py`` run: wall seconds and its quality_run.json."""
    args = [sys.executable, str(ROOT / "quality.py"), "benchmark=meld", f"paths.data_dir={data}",
            f"paths.synthetic_dir={data}/synthetic", f"paths.log_dir={out}", f"hydra.run.dir={out}",
            f"quality.cache_dir={cache}"]
    if threads:
        args.append(f"quality.threads={threads}")
    start = time.perf_counter()
    subprocess.run(args, cwd=ROOT, check=True, stdout=subprocess.DEVNULL)
    return time.perf_counter() - start, json.loads((out / "quality_run.json").read_text())


def encoder_speed(data_dir: Path, threads: int | None, n: int = 2000) -> float:
    """Sentences per second of the default encoder on ``n`` MELD test utterances (model loaded beforehand)."""
    texts = list(dict.fromkeys(u.text for d in load_benchmark("meld", "test", data_dir) for u in d.utterances))[:n]
    encoder = Encoder("minilm", threads=threads)
    encoder.encode(texts[:64])                      # load the model and warm up
    start = time.perf_counter()
    encoder.encode(texts)
    return len(texts) / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data-dir", type=Path, default=None)
    parser.add_argument("--threads", type=int, default=None, help="quality.threads (default: torch's)")
    args = parser.parse_args()
    data_dir = (args.data_dir or default_data_dir()).resolve()
    print(f"machine: {platform.machine()}, {os.cpu_count()} CPU(s), Python {platform.python_version()}, "
          f"quality.threads={args.threads or 'default'}")
    with tempfile.TemporaryDirectory(prefix="bench_quality.") as tmp:
        data = Path(tmp) / "data"
        data.mkdir()
        (data / "meld").symlink_to(data_dir / "meld")
        utterances = make_set(data_dir, data / "synthetic" / "meld_nat")
        cold_s, cold = report(data, Path(tmp) / "cold", Path(tmp) / "cache", args.threads)
        warm_s, warm = report(data, Path(tmp) / "warm", Path(tmp) / "cache", args.threads)
    speed = encoder_speed(data_dir, args.threads)
    print(f"set: {DIALOGUES} dialogues, {utterances} utterances; MELD: 13,708 utterances")
    print(f"cold: {cold_s:.0f} s ({cold['encoded_texts']} texts encoded; steps: {cold['timings_s']})")
    print(f"cached: {warm_s:.1f} s ({warm['encoded_texts']} texts encoded; steps: {warm['timings_s']})")
    print(f"summary: quality report, MELD + a {DIALOGUES}-dialogue set: {cold_s:.0f} s from cold, {warm_s:.0f} s "
          f"with cached embeddings; all-MiniLM-L6-v2 encodes {speed:.0f} sentences/s")


if __name__ == "__main__":
    main()
