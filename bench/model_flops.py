"""Model-FLOPs utilisation (MFU) pieces shared by the training benchmarks (``train_throughput.py``, ``gpu_check.py``):
the matmul peak a bench measures on its own device, and the model FLOPs of a training step counted analytically
from the encoders' weights and a batch's *real* token counts.

Model FLOPs, forward + backward = 3 x forward (1 x for an encoder that is not trained):

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

Padding is waste, not model work, so it is never counted.
"""

from __future__ import annotations

import time
from typing import Any

import torch


def sync(device: str | torch.device) -> None:
    """Wait for the device's queued work (a no-op on the CPU), so that wall-clock timings cover it."""
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def matmul_peak(device: str | torch.device, dtype: torch.dtype = torch.float32, repeats: int = 7,
                size: int | None = None) -> float:
    """The best ``torch.mm`` rate (FLOP/s) of two square ``dtype`` matrices on ``device`` with this process's torch
    threads: ``size`` x ``size``, by default 2048 on a CPU, one product a timing, and 8192 on a GPU, ten products a
    timing after three untimed ones (the clocks ramp up, and one product is short against a synchronisation)."""
    gpu = torch.device(device).type != "cpu"
    n, inner = (8192, 10) if gpu else (2048, 1)
    n = size or n
    a, b = torch.randn(n, n, device=device, dtype=dtype), torch.randn(n, n, device=device, dtype=dtype)
    for _ in range(3 if gpu else 1):
        torch.mm(a, b)
    best = float("inf")
    for _ in range(repeats):
        sync(device)
        started = time.perf_counter()
        for _ in range(inner):
            torch.mm(a, b)
        sync(device)
        best = min(best, (time.perf_counter() - started) / inner)
    return 2 * n**3 / best


def linear_weights(*modules) -> int:
    """Weights of the ``nn.Linear`` modules (and ``nn.MultiheadAttention``'s joined Q/K/V projection) in ``modules``."""
    return sum(m.weight.numel() if isinstance(m, torch.nn.Linear) else m.in_proj_weight.numel()
               for module in modules for m in module.modules()
               if isinstance(m, (torch.nn.Linear, torch.nn.MultiheadAttention)))


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
