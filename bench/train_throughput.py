"""Training throughput of CoMPM (our batched and cached path vs the reference's per-utterance path), EmoOne and TODKAT.

    python bench/train_throughput.py                     # tiny and small random RoBERTa, CPU
    python bench/train_throughput.py --sizes small --dialogues 100 --batch-size 16 --device cuda

Both paths train the same model (same initial weights, AdamW, clip 10) for one epoch over the same slice
of MELD's train split (``--dialogues`` first dialogues; ``$ERC_DATA_DIR`` or ../shared/data):

- **batched**: what ``train.py`` runs: utterances tokenized once, length-bucketed batches of
  ``--batch-size`` targets, the PM encoding each needed utterance once per batch (attention masks) and
  the GRU once per (dialogue, speaker).
- **reference**: the released code's work per step: one target per step; build the prefix string and
  tokenize it; one CoM call; tokenize the speaker's earlier utterances, pad them without a mask and
  encode them in one PM call; run the GRU over them; a zero track when there are none.

Each measurement runs in a fresh process (so peak memory is its own): utterances/s, the speedup and
the peak resident memory (CPU) or peak allocated memory (CUDA) are printed. CPU runs use one torch
thread by default (``--threads``), which keeps figures stable on a shared machine.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

SIZES = {"tiny": "hidden 32, 2 layers, 2 heads, ff 64", "small": "hidden 256, 4 layers, 4 heads, ff 1024"}


def _data_dir() -> Path:
    return Path(os.environ.get("ERC_DATA_DIR") or ROOT.parent / "shared" / "data")


def _setup(size: str, dialogues: int, device: str, seed: int = 0):
    import torch

    import erc  # noqa: F401
    from erc.data import load_benchmark
    from erc.models.compm import CoMPM

    torch.manual_seed(seed)
    model = CoMPM("meld", backbone=size).to(device).train()
    data = load_benchmark("meld", "train", _data_dir())[:dialogues]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    return model, data, optimizer


def _step(model, optimizer, loss) -> None:
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


def _to(batch: dict, device: str) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def train_epoch(model, data: list, optimizer, batch_size: int, device: str) -> tuple[int, float]:
    """One epoch as ``train.py`` trains: tokenized once, length-bucketed batches, the classifier's own loss.
    Returns (utterances, seconds)."""
    from erc.training.data import ERCDataModule

    started = time.perf_counter()
    module = ERCDataModule(model, data, [], batch_size=batch_size, eval_batch_size=batch_size)
    module.setup()
    n = 0
    for batch in module.train_dataloader():
        batch = _to(batch, device)
        _step(model, optimizer, model.loss(batch, model(batch)))
        n += len(batch["labels"])
    _sync(device)
    return n, time.perf_counter() - started


def run_batched(size: str, dialogues: int, batch_size: int, device: str) -> tuple[int, float]:
    model, data, optimizer = _setup(size, dialogues, device)
    return train_epoch(model, data, optimizer, batch_size, device)


def run_reference(size: str, dialogues: int, device: str) -> tuple[int, float]:
    import random

    import torch
    import torch.nn.functional as F

    model, data, optimizer = _setup(size, dialogues, device)
    tok = model.tokenizer
    labels = {name: i for i, name in enumerate(model.labels)}
    samples = [(d, t) for d in data for t in range(len(d))]
    random.Random(0).shuffle(samples)
    h0 = torch.zeros(2, 1, model.gru.hidden_size, device=device)

    def encode_right_truncated(text: str) -> list[int]:
        return [tok.cls_token_id] + tok.convert_tokens_to_ids(tok.tokenize(text)[-511:])

    started = time.perf_counter()
    for d, t in samples:
        speakers: list[str] = []
        prefix, memory = "", []
        for j, u in enumerate(d.utterances[: t + 1]):
            if u.speaker not in speakers:
                speakers.append(u.speaker)
            prefix += f"<s{speakers.index(u.speaker) + 1}> " + u.text + " "
            if j < t and u.speaker == d.utterances[t].speaker:
                memory.append(encode_right_truncated(u.text))
        ids = torch.tensor([encode_right_truncated(prefix.strip())], device=device)
        context = model.context_model(ids).last_hidden_state[:, 0]
        if memory:
            width = max(len(m) for m in memory)
            padded = torch.tensor([m + [tok.pad_token_id] * (width - len(m)) for m in memory], device=device)
            cls = model.pm(padded).last_hidden_state[:, 0].unsqueeze(1)           # no attention mask
            track = _seq_first_gru(model.gru, cls, h0)[-1]                           # (steps, 1, hidden)
        else:
            track = torch.zeros(1, context.shape[-1], device=device)
        logits = model.head(context + track)
        _step(model, optimizer, F.cross_entropy(logits, torch.tensor([labels[d.utterances[t].label]], device=device)))
    _sync(device)
    return len(samples), time.perf_counter() - started


def _seq_first_gru(gru, inputs, h0):
    """Our GRU is batch-first; a (steps, 1, hidden) sequence is the same sequence as (1, steps, hidden)."""
    out, _ = gru(inputs.transpose(0, 1), h0)
    return out.transpose(0, 1)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


def _measure(args: tuple) -> dict:
    """One path in this (fresh) process: utterances, seconds, peak memory in MiB."""
    path, size, dialogues, batch_size, device, threads = args
    import torch

    if threads:
        torch.set_num_threads(threads)
    if path == "batched":
        n, seconds = run_batched(size, dialogues, batch_size, device)
    else:
        n, seconds = run_reference(size, dialogues, device)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"utterances": n, "seconds": seconds, "peak_mib": peak}


# ---- EmoOne and TODKAT ------------------------------------------------------------------------------
# (classifier, what the row measures, constructor options, samples per step; None = --batch-size)
EMOONE_TODKAT = [
    ("emoone", "gray=heuristic, 1 target/step (reference steps)", {}, 1),
    ("emoone", "gray=heuristic, batched", {}, None),
    ("todkat", "topic, 2 dialogues/step (paper)", {}, 2),
    ("todkat", "no topic, 2 dialogues/step", {"topic": False}, 2),
]


def run_classifier(kind: str, options: dict, size: str, dialogues: int, batch_size: int, device: str
                   ) -> tuple[int, float]:
    """One epoch of EmoOne or TODKAT as ``train.py`` trains it: tokenized once, length-bucketed batches
    (targets for EmoOne, whole dialogues for TODKAT), the classifier's own loss (EmoOne: CE + gray soft-CE;
    TODKAT: CE over turns + topic loss)."""
    import torch

    import erc  # noqa: F401
    from erc.data import load_benchmark
    from erc.models.emoone import EmoOne
    from erc.models.todkat import TODKAT

    torch.manual_seed(0)
    model = {"emoone": EmoOne, "todkat": TODKAT}[kind]("meld", backbone=size, **options).to(device).train()
    data = load_benchmark("meld", "train", _data_dir())[:dialogues]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5)
    return train_epoch(model, data, optimizer, batch_size, device)


def _measure_classifier(args: tuple) -> dict:
    """``run_classifier`` in this (fresh) process: utterances, seconds, peak memory in MiB."""
    kind, options, size, dialogues, batch_size, device, threads = args
    import torch

    if threads:
        torch.set_num_threads(threads)
    n, seconds = run_classifier(kind, options, size, dialogues, batch_size, device)
    if device.startswith("cuda"):
        peak = torch.cuda.max_memory_allocated() / 2**20
    else:
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"utterances": n, "seconds": seconds, "peak_mib": peak}


def bench_emoone_todkat(args: argparse.Namespace, ctx) -> None:
    """Print EmoOne's and TODKAT's training utterances/s and peak memory (same slice, device, threads)."""
    print(f"\nEmoOne and TODKAT training throughput, MELD train first {args.dialogues} dialogues, "
          f"device {args.device}, batched EmoOne batch size {args.batch_size}")
    print(f"{'backbone':<7} {'classifier':<7} {'setting':<48} {'utt':>5} {'seconds':>8} {'utt/s':>8} {'peak MiB':>9}")
    for size in args.sizes.split(","):
        for kind, setting, options, per_step in EMOONE_TODKAT:
            with ctx.Pool(1) as pool:
                r = pool.apply(_measure_classifier, ((kind, options, size, args.dialogues, per_step or args.batch_size,
                                                      args.device, args.threads),))
            print(f"{size:<7} {kind:<7} {setting:<48} {r['utterances']:>5} {r['seconds']:>8.2f} "
                  f"{r['utterances'] / r['seconds']:>8.1f} {r['peak_mib']:>9.0f}", flush=True)
            print(f"summary: training, {kind} {size}, {setting}: {r['utterances'] / r['seconds']:.1f} utt/s, "
                  f"peak {r['peak_mib']:.0f} MiB")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", default="tiny,small", help="comma-separated: tiny, small")
    parser.add_argument("--dialogues", type=int, default=40, help="first N MELD train dialogues (one epoch)")
    parser.add_argument("--batch-size", type=int, default=16, help="targets per batch on the batched path")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default). 1 by default: on a machine shared with other "
                             "jobs, OpenMP threads spin-wait and both paths slow down by an order of magnitude")
    args = parser.parse_args()
    ctx = multiprocessing.get_context("spawn")
    print(f"CoMPM training throughput, MELD train first {args.dialogues} dialogues, device {args.device}, "
          f"batched path batch size {args.batch_size}")
    print(f"{'backbone':<34} {'path':<10} {'utt':>5} {'seconds':>8} {'utt/s':>8} {'peak MiB':>9}")
    for size in args.sizes.split(","):
        rows = {}
        for path in ("reference", "batched"):
            with ctx.Pool(1) as pool:
                rows[path] = pool.apply(_measure, ((path, size, args.dialogues, args.batch_size, args.device,
                                                    args.threads),))
            r = rows[path]
            print(f"{size + ' (' + SIZES[size] + ')':<34} {path:<10} {r['utterances']:>5} {r['seconds']:>8.2f} "
                  f"{r['utterances'] / r['seconds']:>8.1f} {r['peak_mib']:>9.0f}", flush=True)
        ratio = (rows["batched"]["utterances"] / rows["batched"]["seconds"]) / (
            rows["reference"]["utterances"] / rows["reference"]["seconds"])
        print(f"{size:<34} speedup batched / reference: {ratio:.1f}x")
        print(f"summary: training, CoMPM {size}: {rows['batched']['utterances'] / rows['batched']['seconds']:.1f} "
              f"utt/s batched vs {rows['reference']['utterances'] / rows['reference']['seconds']:.1f} per-utterance "
              f"reference path = {ratio:.1f}x (goal >= 5x)")
    bench_emoone_todkat(args, ctx)


if __name__ == "__main__":
    main()
