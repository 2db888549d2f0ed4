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
  speaker). CoMPM **reference**: the released code's work per step: one target per step; build the prefix string
  and tokenize it; one CoM call; tokenize the speaker's earlier utterances, pad them without a mask and encode them
  in one PM call; run the GRU over them; a zero track when there are none.
- EmoOne (gray=heuristic) with one target per step (the reference's steps) and batched; TODKAT with two dialogues
  per step (the paper's), with and without the topic layer, and with four (``make demo BACKBONE=minilm``'s): its
  steps are small, so the optimizer's pass over every parameter weighs more than in the other rows.

**MFU** = model FLOPs per second / the matmul peak this bench measures in the same process (same device, dtype and
thread count: the best of several ``torch.mm`` of two 2048 x 2048 fp32 matrices on a CPU, 8192 x 8192 on a GPU,
before and after the epochs, so a machine slowed by other work while the peak is measured does not inflate MFU).
Model FLOPs are counted analytically from the encoder's weights and the batches' *real* token counts (padding is
waste, not model work), forward + backward = 3 x forward (1 x for an encoder that is not trained):

- per token and layer, 2 FLOPs per weight of the layer's ``nn.Linear`` modules (Q, K, V, attention output, the
  feed-forward), plus attention's 4 * l * d (Q K^T and the weighted sum of V over the sequence's l tokens);
- in the last layer, only what the first-token vector the classifiers read needs: K and V for every token, Q,
  the attention output and the feed-forward for the first token alone (so ``cls_vectors``' shortcut does not count
  as speed; an encoder run in full does work that is not counted);
- TODKAT's layers after the encoder, per real turn: the topic model (the decoder over the vocabulary in
  training), the fusing projection, the turn transformer (with attention over the dialogue's turns) and the
  classifier: 2 to 4 % of its FLOPs;
- not counted: embeddings (lookups), layer norms, softmax, dropout, GELU (not matmuls); CoMPM's GRU and the linear
  heads of CoMPM and EmoOne (under 1 % of their FLOPs); the optimizer.

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


# ---- the matmul peak and the model's FLOPs ------------------------------------------------------------
def matmul_peak(device: str, repeats: int = 7) -> float:
    """The best fp32 ``torch.mm`` rate (FLOP/s) on ``device`` with this process's torch threads."""
    import torch

    n = 8192 if device.startswith("cuda") else 2048
    a, b = torch.randn(n, n, device=device), torch.randn(n, n, device=device)
    torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        _sync(device)
        started = time.perf_counter()
        torch.mm(a, b)
        _sync(device)
        best = min(best, time.perf_counter() - started)
    return 2 * n**3 / best


def layer_linear_weights(encoder) -> int:
    """Weights of one encoder layer's ``nn.Linear`` modules (all layers of these encoders are alike)."""
    layers = encoder.encoder.layer if hasattr(encoder, "encoder") and hasattr(encoder.encoder, "layer") else \
        encoder.layers
    return linear_weights(layers[-1])


def encoder_forward_flops(encoder, lengths) -> float:
    """Forward matmul FLOPs an encoder needs for the first-token vectors of sequences of ``lengths`` real tokens
    (see the module docstring)."""
    config = encoder.config
    d, layers = config.hidden_size, config.num_hidden_layers
    per_token = 2 * layer_linear_weights(encoder)                 # one token through one layer's linears
    kv = 2 * 2 * d * d                                             # the last layer's K and V projections, per token
    total = 0.0
    for n in lengths:
        total += (layers - 1) * (n * per_token + 4 * n * n * d)     # full layers
        total += n * kv + (per_token - kv) + 4 * n * d               # last layer: K, V everywhere; the rest at token 0
    return total


def encoder_inputs(model, batch: dict) -> list[tuple[Any, Any, bool]]:
    """(encoder, attention mask, trained) of every encoder call a batch makes."""
    kind = type(model).__name__
    if kind == "TODKAT":
        calls = [(model.net.encoder, batch["attention_mask"])]
        if "knowledge_attention_mask" in batch:
            calls.append((model.net.encoder, batch["knowledge_attention_mask"]))
        return [(e, m, True) for e, m in calls]
    calls = [(model.context_model, batch["attention_mask"], True)]
    if kind == "CoMPM" and "pm_mask" in batch:
        calls.append((model.pm, batch["pm_mask"], not model.pm_frozen))
    return calls


def linear_weights(*modules) -> int:
    """Weights of the ``nn.Linear`` modules (and ``nn.MultiheadAttention``'s joined Q/K/V projection) in ``modules``."""
    import torch

    return sum(m.weight.numel() if isinstance(m, torch.nn.Linear) else m.in_proj_weight.numel()
               for module in modules for m in module.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.MultiheadAttention)))


def todkat_head_flops(net, turn_mask) -> float:
    """Forward matmul FLOPs of TODKAT's layers after the utterance encoder, over the batch's real turns: the topic
    model (its encoder and, in training, the decoder over the vocabulary), the fusing projection, the turn
    transformer (2 FLOPs per weight per turn, plus attention's 4 * T * d over a dialogue's T turns) and the
    classifier."""
    turns = turn_mask.sum(1).tolist()
    per_turn = linear_weights(net.fuse, net.turns, net.classifier) + (linear_weights(net.topic) if net.topic else 0)
    attention = len(net.turns.layers) * sum(4 * t * t * net.turns.layers[0].self_attn.embed_dim for t in turns)
    return 2 * per_turn * sum(turns) + attention


def batch_flops(model, batch: dict) -> tuple[float, int, int]:
    """(model FLOPs of one training step on ``batch``, real encoder tokens, padded encoder tokens)."""
    flops, real, padded = 0.0, 0, 0
    for encoder, mask, trained in encoder_inputs(model, batch):
        lengths = mask.sum(1).tolist()
        flops += (3 if trained else 1) * encoder_forward_flops(encoder, lengths)
        real, padded = real + sum(lengths), padded + mask.numel()
    if type(model).__name__ == "TODKAT":
        flops += 3 * todkat_head_flops(model.net, batch["turn_mask"])
    return flops, real, padded


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


def _step(model, optimizer, loss) -> None:
    import torch

    loss.backward()
    torch.nn.utils.clip_grad_norm_(model.parameters(), 10)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)


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
        _step(model, optimizer, model.loss(batch, model(batch)))


def reference_samples(data: list) -> list[tuple[Any, int]]:
    """(dialogue, target turn) of every utterance, shuffled: the released code's one target per step."""
    import random

    samples = [(d, t) for d in data for t in range(len(d))]
    random.Random(0).shuffle(samples)
    return samples


def reference_steps(model, samples: list[tuple[Any, int]], optimizer, device: str) -> None:
    """CoMPM one target per step as the released code computes it (see the module docstring)."""
    import torch
    import torch.nn.functional as F

    tok = model.tokenizer
    labels = {name: i for i, name in enumerate(model.labels)}
    h0 = torch.zeros(2, 1, model.gru.hidden_size, device=device)

    def encode_right_truncated(text: str) -> list[int]:
        return [tok.cls_token_id, *tok.convert_tokens_to_ids(tok.tokenize(text)[-511:])]

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


def _seq_first_gru(gru, inputs, h0):
    """Our GRU is batch-first; a (steps, 1, hidden) sequence is the same sequence as (1, steps, hidden)."""
    out, _ = gru(inputs.transpose(0, 1), h0)
    return out.transpose(0, 1)


def _sync(device: str) -> None:
    import torch

    if device.startswith("cuda"):
        torch.cuda.synchronize()


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
    _sync(device)
    seconds = []
    profiler = torch.profiler.profile() if profile else contextlib.nullcontext()
    cpu = time.process_time()
    with profiler:
        for _ in range(repeats):
            started = time.perf_counter()
            epoch()
            _sync(device)
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
