"""Training throughput of CoMPM, EmoOne and TODKAT: utterances/s, peak memory and model-FLOPs utilisation (MFU).

    python bench/train_throughput.py                          # tiny, small (random RoBERTa) and minilm, CPU, 1 thread
    python bench/train_throughput.py --backbones minilm --dialogues 20
    python bench/train_throughput.py --backbones roberta-base,roberta-large --device cuda --batch-size 16

``--backbones`` takes anything ``classifier.backbone`` takes (``tiny``, ``small``, ``minilm`` or a Hugging Face
encoder name or folder). Every row trains on the same slice of MELD's train split (``--dialogues`` first dialogues;
``$ERC_DATA_DIR`` or ../shared/data), from the same initial weights, with AdamW (fused, as ``train.py`` in full
precision) and clipping at 10: ``--warmup`` steps first (not timed: the first steps allocate and initialise what
later steps reuse), then ``--repeats`` epochs, each timed; a row's figures are the median epoch's, and its MFU range
the fastest and slowest epoch's. Tokenizing and batching are done once before, as ``train.py`` does once per run.

- CoMPM **batched**: what ``train.py`` runs: utterances tokenized once, length-bucketed batches of ``--batch-size``
  targets, the PM encoding each needed utterance once per batch (attention masks) and the GRU once per (dialogue,
  speaker). CoMPM **reference**: the released code's work per step (``compm_reference.py``): one target per step,
  the prefix re-tokenized and the speaker's earlier utterances re-encoded for every target.
- EmoOne (gray=heuristic) with one target per step (the reference's steps) and batched; TODKAT with two dialogues
  per step (the paper's), with and without the topic layer, and with four (``make demo BACKBONE=minilm``'s): its
  steps are small, so the optimizer's pass over every parameter weighs more than in the other rows.

**MFU** = model FLOPs per second / the matmul peak this bench measures in the same process (same device, dtype and
thread count: the best of several ``torch.mm`` of two 2048 x 2048 fp32 matrices on a CPU, 8192 x 8192 on a GPU,
before and after the epochs, so a machine slowed by other work while the peak is measured does not inflate MFU).
Model FLOPs are counted analytically from the encoder's weights and the batches' *real* token counts, as
``model_flops.py`` says (the last layer only at the first token; TODKAT's layers after the encoder included; not
counted: embeddings, norms, softmax, GELU, CoMPM's GRU and the linear heads, the optimizer).

The reference path has no MFU: its own work per sample (the PM re-encoding every earlier utterance for every
target) is not the model's. Each measurement runs in a fresh process (so peak memory is its own): peak resident
memory (CPU) or peak allocated memory (CUDA). CPU runs use one torch thread by default (``--threads``), which keeps
figures stable on a shared machine; ``cpu %`` is the process's CPU time over the wall time of the epoch (well under
100 % x threads: other jobs took the cores, and utt/s is low for that reason). ``--profile`` prints where the time
of each row goes (torch.profiler).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import resource
import statistics
import sys
import time
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import Any

from compm_reference import clipped_step, reference_samples, reference_steps
from model_flops import batch_flops, matmul_peak, sync

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


@dataclass(frozen=True)
class Row:
    """One measurement: a classifier, what the row measures, constructor options, samples per step (None:
    ``--batch-size``)."""

    classifier: str
    setting: str
    options: dict[str, Any]
    per_step: int | None


ROWS = [
    Row("compm", "reference path, 1 target/step (released code)", {}, 1),
    Row("compm", "batched", {}, None),
    Row("emoone", "gray=heuristic, 1 target/step (reference steps)", {}, 1),
    Row("emoone", "gray=heuristic, batched", {}, None),
    Row("todkat", "topic, 2 dialogues/step (paper)", {}, 2),
    Row("todkat", "no topic, 2 dialogues/step", {"topic": False}, 2),
    Row("todkat", "topic, 4 dialogues/step (make demo)", {}, 4),
]


def _data_dir() -> Path:
    return Path(os.environ.get("ERC_DATA_DIR") or ROOT.parent / "shared" / "data")


# ---- training -----------------------------------------------------------------------------------------
def _build(row: Row, backbone: str, device: str):
    import torch

    import erc  # noqa: F401
    from erc.models.compm import CoMPM
    from erc.models.emoone import EmoOne
    from erc.models.todkat import TODKAT

    torch.manual_seed(0)
    model = {"compm": CoMPM, "emoone": EmoOne, "todkat": TODKAT}[row.classifier]("meld", backbone=backbone,
                                                                                  **row.options)
    return model.to(device).train()


def _to(batch: dict, device: str) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def train_batches(model, data: list, batch_size: int) -> list[dict]:
    """One epoch's batches as ``train.py`` makes them: tokenized once, length-bucketed (not timed: a run does this
    once, not every epoch)."""
    from erc.training.data import ERCDataModule

    module = ERCDataModule(model, data, [], batch_size=batch_size, eval_batch_size=batch_size)
    module.setup()
    return list(module.train_dataloader())


def train_steps(model, batches: list[dict], optimizer, device: str) -> None:
    """One training step per batch, with the classifier's own loss."""
    for batch in batches:
        batch = _to(batch, device)
        clipped_step(model, optimizer, model.loss(batch, model(batch)))


def measure(args: tuple) -> dict:
    """One row in this (fresh) process: ``warmup`` steps, then ``repeats`` timed epochs. Returns utterances per
    epoch, each epoch's seconds, the CPU seconds over them, FLOPs and tokens per epoch, the matmul peak, peak memory
    in MiB (and the profile's table of the timed epochs with ``profile``)."""
    row, backbone, dialogues, batch_size, device, threads, warmup, repeats, profile = args
    import contextlib

    import torch

    from erc.data import load_benchmark
    from erc.models.base import fused_adamw

    if threads:
        torch.set_num_threads(threads)
    peak = matmul_peak(device)
    model = _build(row, backbone, device)
    data = load_benchmark("meld", "train", _data_dir())[:dialogues]
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused_adamw("32-true", model.parameters()))
    result: dict[str, Any] = {}
    if row.setting.startswith("reference"):
        samples = reference_samples(data)
        result["utterances"] = len(samples)
        warm_up = partial(reference_steps, model, samples[:warmup], optimizer, device)
        epoch = partial(reference_steps, model, samples, optimizer, device)
    else:
        batches = train_batches(model, data, row.per_step or batch_size)
        counts = [batch_flops(model, batch) for batch in batches]
        result.update(utterances=sum(len(b["labels"]) for b in batches), flops=sum(c[0] for c in counts),
                      real=sum(c[1] for c in counts), padded=sum(c[2] for c in counts))
        warm_up = partial(train_steps, model, batches[:warmup], optimizer, device)
        epoch = partial(train_steps, model, batches, optimizer, device)
    warm_up()
    sync(device)
    seconds = []
    profiler = torch.profiler.profile() if profile else contextlib.nullcontext()
    cpu = time.process_time()
    with profiler:
        for _ in range(repeats):
            started = time.perf_counter()
            epoch()
            sync(device)
            seconds.append(time.perf_counter() - started)
    result["cpu"] = time.process_time() - cpu
    peak = max(peak, matmul_peak(device))          # a machine slowed by other work while the peak was measured
    if device.startswith("cuda"):
        memory = torch.cuda.max_memory_allocated() / 2**20
    else:
        memory = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    result.update(seconds=seconds, peak=peak, memory=memory, threads=torch.get_num_threads())
    if profile:
        result["profile"] = profiler.key_averages().table(sort_by="self_cpu_time_total", row_limit=18)
    return result


def describe(backbone: str) -> str:
    """``hidden 256, 4 layers, 4 heads, ff 1024`` of a backbone."""
    import erc  # noqa: F401
    from erc.models.backbone import encoder_config

    c = encoder_config(backbone)
    return (f"hidden {c.hidden_size}, {c.num_hidden_layers} layers, {c.num_attention_heads} heads, "
            f"ff {c.intermediate_size}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--backbones", "--sizes", default="tiny,small,minilm",
                        help="comma-separated classifier.backbone values: tiny, small, minilm, a Hugging Face name")
    parser.add_argument("--dialogues", type=int, default=40, help="first N MELD train dialogues (one epoch)")
    parser.add_argument("--batch-size", type=int, default=16, help="targets per batch on the batched rows")
    parser.add_argument("--warmup", type=int, default=2,
                        help="training steps before the timed epochs (not timed: the first steps allocate and "
                             "initialise what every later step reuses)")
    parser.add_argument("--repeats", type=int, default=3,
                        help="timed epochs per row; the figures are their median, the MFU range their spread")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--threads", type=int, default=1,
                        help="torch CPU threads (0: torch's default). 1 by default: on a machine shared with other "
                             "jobs, OpenMP threads spin-wait and every row slows down by an order of magnitude")
    parser.add_argument("--classifiers", default="compm,emoone,todkat", help="comma-separated subset")
    parser.add_argument("--profile", action="store_true", help="print torch.profiler's table for every row")
    parser.add_argument("--skip-reference", action="store_true",
                        help="leave out the per-utterance rows (the released code's steps), the slowest")
    args = parser.parse_args()
    if args.repeats < 1 or args.warmup < 0:
        parser.error("--repeats must be >= 1 and --warmup >= 0")
    ctx = multiprocessing.get_context("spawn")
    wanted = args.classifiers.split(",")
    print(f"Training throughput, MELD train first {args.dialogues} dialogues, device {args.device}, "
          f"threads {args.threads or 'default'}, batched rows batch size {args.batch_size}; {args.warmup} warm-up "
          f"steps, then the median of {args.repeats} epochs")
    print(f"{'classifier':<7} {'setting':<48} {'utt':>5} {'s':>7} {'utt/s':>7} {'pad %':>6} {'GFLOP/s':>8} "
          f"{'peak':>7} {'MFU':>5} {'range':>9} {'MiB':>6} {'cpu %':>5}")
    for backbone in args.backbones.split(","):
        print(f"-- backbone {backbone} ({describe(backbone)})")
        speeds: dict[str, float] = {}
        for row in ROWS:
            if row.classifier not in wanted or (args.skip_reference and row.per_step == 1):
                continue
            with ctx.Pool(1) as pool:
                r = pool.apply(measure, ((row, backbone, args.dialogues, args.batch_size, args.device, args.threads,
                                          args.warmup, args.repeats, args.profile),))
            seconds = statistics.median(r["seconds"])
            speed = r["utterances"] / seconds
            speeds[row.setting] = speed
            if "flops" in r:
                rate, peak = r["flops"] / seconds, r["peak"]
                spread = f"{r['flops'] / max(r['seconds']) / peak:.2f}-{r['flops'] / min(r['seconds']) / peak:.2f}"
                figures = (f"{100 * (1 - r['real'] / r['padded']):>6.1f} {rate / 1e9:>8.1f} {peak / 1e9:>7.1f} "
                           f"{rate / peak:>5.2f} {spread:>9}")
                print(f"summary: training, {row.classifier} {backbone}, {row.setting}: {speed:.1f} utt/s, "
                      f"MFU {rate / peak:.2f} ({spread} over {len(r['seconds'])} epochs; {rate / 1e9:.1f} of "
                      f"{peak / 1e9:.1f} GFLOP/s), peak {r['memory']:.0f} MiB")
            else:
                figures = f"{'-':>6} {'-':>8} {r['peak'] / 1e9:>7.1f} {'-':>5} {'-':>9}"
            print(f"{row.classifier:<7} {row.setting:<48} {r['utterances']:>5} {seconds:>7.1f} {speed:>7.1f} "
                  f"{figures} {r['memory']:>6.0f} {100 * r['cpu'] / sum(r['seconds']):>5.0f}", flush=True)
            if args.profile:
                print(r["profile"], flush=True)
        reference, batched = ROWS[0].setting, ROWS[1].setting
        if reference in speeds and batched in speeds:
            print(f"summary: training, CoMPM {backbone}: {speeds[batched]:.1f} utt/s batched vs "
                  f"{speeds[reference]:.1f} per-utterance reference path = {speeds[batched] / speeds[reference]:.1f}x")


if __name__ == "__main__":
    main()
