"""The GPU check: CoMPM, EmoOne and TODKAT at the paper's sizes, trained through ``train.py``'s Lightning path with
``trainer=gpu`` (bf16 autocast) on one GPU, timed, and the packed encoder path checked against the plain forward.

The recipe (``docs/full-scale.md``). Where this project is installed: ``python bench/gpu_check.py``. On a CUDA image
with Python 3.12, torch, transformers and Lightning but no network, bring this checkout and the wheels of what such
an image lacks (Hydra, OmegaConf, ANTLR's runtime), made here with ``make gpu-wheels`` (into ``.whl/``), and run
there, from the checkout's root, the one command::

    python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \\
      --target /tmp/site .whl/*.whl \\
      && export PYTHONPATH=/tmp/site HF_HUB_OFFLINE=1 PYTHONUNBUFFERED=1 \\
      && python3 bench/gpu_check.py --json ${OUT:-outputs}/gpu_check.json --budget 360

On a CPU, with tiny encoders, in seconds (``tests/test_gpu_check.py`` runs this form)::

    python bench/gpu_check.py --device cpu --in-process --steps 1 --warmup 1 --dialogues 6 --json out.json

What it does, per classifier, each part in a fresh process (``--in-process``: all in this one), on MELD-shaped
batches (``meld_dialogues.py``: MELD's train split where found, else dialogues drawn from its shape):

1. **train**: the classifier as ``train.py`` builds it (its Hydra config with ``trainer=gpu schedule=default``),
   the encoders random (no hub): roberta-large's shape for CoMPM and EmoOne, roberta-base's for TODKAT (as the
   paper), or tiny ones on a CPU; ``--warmup`` Lightning steps, then ``--steps`` timed ones through the runner's
   trainer factory and data module. It reports utterances/s, encoder tokens/s, model-FLOPs utilisation (MFU, FLOPs
   counted as ``model_flops.py`` says) against the bf16 (the precision's) matmul peak measured in the same process
   before and after, the peak memory (CUDA: allocated; CPU: the process's resident set) and the batch size.
2. **reference** (CoMPM): the released code's work per step (``compm_reference.py``: one target a step, the prefix
   re-tokenized, the speaker's earlier turns re-encoded) on the same device, under the same autocast (so the ratio
   is the loop's shape, not the precision), and the ratio of the batched path's utterances/s to it.
3. **packed**: the packed path (``erc/models/packed_encoder.py``, ``classifier.fast_path=on``) against the plain
   forward (``off``) on the same weights and batch, dropout off: the logits and every parameter's gradient of the
   classifier's loss, in fp32 (TF32 off) and under bf16 autocast; then the time of a training step's forward and
   backward (dropout on) on each path, in both precisions, so ``fast_path=auto`` can be decided from a measurement.

**Tolerances.** Errors are relative: logits ``max|packed - plain| / max|plain|``; gradients the worst parameter's
``||packed - plain|| / ||plain||`` among parameters whose plain gradient norm is at least 1e-3 of the largest
(smaller ones, such as the key biases, whose gradient is zero up to rounding, have no meaningful relative error;
the global ``||all packed - all plain|| / ||all plain||`` is reported beside it). **fp32: 1e-5.** The two paths
compute the same function with sums in other orders (packed rows, another GEMM shape), so they differ by a few
fp32 roundings (2**-24 = 6e-8) amplified by the depth: 1e-7 to 7e-7 on a CPU at 4, 12 and 24 layers. **bf16: 3e-2.**
Under autocast every matrix product rounds its inputs to bf16 (8 significant bits, a unit roundoff of 2**-8 = 3.9e-3),
and each path rounds differently. Measured on a CPU (CoMPM, hidden 128, 4 / 12 / 24 layers, MELD batches of 8), the
plain bf16 forward differs from the fp32 one by 3e-3 to 7e-3 in the logits and 7e-3 to 8e-3 in the worst gradient,
the packed one from the plain one by 3e-3 to 5e-3, with no growth in depth (layer norms rescale every layer). Two
bf16 computations can differ by the sum of their errors; 3e-2 is about 8 unit roundoffs, 4 times the largest error
measured, and far under what a wrong mask, position or token gives (errors of order 1). Both paths' errors against
the fp32 plain forward are reported (``plain_vs_fp32``, ``packed_vs_fp32``), so the GPU's own figures show whether
the packed path is as accurate as the plain one.

It degrades instead of stopping: a part that raises, runs out of memory, crashes or outlives its share of
``--budget`` (seconds, hard: a part's process is killed at its deadline) is reported as such in the table and the
JSON, and the others still run. It prints one summary table and writes the JSON (``--json``) that
``docs/performance.md`` takes its GPU figures from; exit status 1 when a part failed or a tolerance was exceeded.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib.metadata
import json
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

CLASSIFIERS = ("compm", "emoone", "todkat")
# The encoder shapes of the paper's checkpoints (their config.json), built with random weights: no hub needed.
PAPER_SHAPES: dict[str, dict[str, Any]] = {
    "roberta-large": {"hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
                      "intermediate_size": 4096, "vocab_size": 50265, "layer_norm_eps": 1e-5},
    "roberta-base": {"hidden_size": 768, "num_hidden_layers": 12, "num_attention_heads": 12,
                     "intermediate_size": 3072, "vocab_size": 50265, "layer_norm_eps": 1e-5},
}
PAPER_BACKBONE = {"compm": "roberta-large", "emoone": "roberta-large", "todkat": "roberta-base"}
FP32_TOLERANCE = 1e-5
BF16_TOLERANCE = 3e-2
# Parameters whose plain gradient norm is under this share of the largest are left out of the worst-parameter error.
SMALL_GRADIENT = 1e-3
SUBPARTS = ("train", "reference", "packed")
# The issue's goals on a GPU (docs/performance.md): reported as met or not, never a failure of the check.
GOALS = {"compm_vs_reference": 5.0, "mfu": 0.35}


# ---- options --------------------------------------------------------------------------------------------------
def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda", help="cuda (one GPU) or cpu")
    parser.add_argument("--size", choices=("paper", "tiny"), default=None,
                        help="paper: roberta-large / roberta-base shapes; tiny: the tests' encoders (default: paper "
                             "on a GPU, tiny on a CPU)")
    parser.add_argument("--precision", default="bf16-mixed", help="the Trainer's precision (trainer=gpu's)")
    parser.add_argument("--classifiers", default=",".join(CLASSIFIERS), help="comma-separated subset")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="samples per step (default: schedule=default's batch_size)")
    parser.add_argument("--warmup", type=int, default=5, help="untimed steps first (allocation, kernel choice)")
    parser.add_argument("--steps", type=int, default=40, help="timed training steps")
    parser.add_argument("--reference-steps", type=int, default=40, help="timed steps of CoMPM's reference loop")
    parser.add_argument("--packed-repeats", type=int, default=8,
                        help="timed forward and backward passes per path and precision")
    parser.add_argument("--packed-batches", type=int, default=4,
                        help="training batches the packed path's speed is measured on (the first also checked)")
    parser.add_argument("--dialogues", type=int, default=400, help="MELD train dialogues to draw batches from")
    parser.add_argument("--data", choices=("auto", "real", "drawn"), default="auto",
                        help="auto: MELD where found ($ERC_DATA_DIR, ./data, ../shared/data), else drawn from its "
                             "shape (bench/meld_shape.json)")
    parser.add_argument("--fast-path", default="auto", help="classifier.fast_path of the training part")
    parser.add_argument("--budget", type=float, default=360.0,
                        help="seconds for everything; each part's process is killed at its share's end")
    parser.add_argument("--json", type=Path, default=ROOT / "outputs" / "gpu_check.json", help="where to write")
    parser.add_argument("--in-process", action="store_true",
                        help="run every part in this process (no isolation; the deadline is checked between parts)")
    parser.add_argument("--part", help=argparse.SUPPRESS)           # a child: run this classifier's parts
    parser.add_argument("--result", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--deadline", type=float, help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    args.classifiers = [c for c in args.classifiers.split(",") if c]
    unknown = sorted(set(args.classifiers) - set(CLASSIFIERS))
    if unknown:
        parser.error(f"--classifiers: unknown {', '.join(unknown)}; valid: {', '.join(CLASSIFIERS)}")
    if args.size is None:
        args.size = "tiny" if args.device == "cpu" else "paper"
    if min(args.steps, args.reference_steps, args.packed_repeats, args.packed_batches) < 1 or args.warmup < 0:
        parser.error("--steps, --reference-steps, --packed-repeats and --packed-batches must be >= 1, --warmup >= 0")
    return args


# ---- building a classifier as train.py does -------------------------------------------------------------------
def backbone_overrides(classifier: str, size: str) -> list[str]:
    """Hydra overrides for the classifier's encoder: the local random ``small`` encoder reshaped to the paper's
    checkpoint (its tokenizer is the local one: roberta-large's needs the hub), or ``tiny``."""
    if size == "tiny":
        return ["classifier.backbone=tiny"]
    shape = ",".join(f"{k}:{v}" for k, v in PAPER_SHAPES[PAPER_BACKBONE[classifier]].items())
    return ["classifier.backbone=small", f"classifier.backbone_config={{{shape}}}"]


def compose(classifier: str, args: argparse.Namespace, folder: Path) -> Any:
    """train.py's config for this classifier on ``trainer=gpu``, fitting ``--warmup + --steps`` steps without
    validation, checkpoints, logger or progress bar."""
    from hydra import compose as hydra_compose
    from hydra import initialize_config_dir

    from erc.paths import CONFIG_DIR

    overrides = [f"classifier={classifier}", "trainer=gpu", "schedule=default", "logger=none",
                 *backbone_overrides(classifier, args.size), f"classifier.fast_path={args.fast_path}",
                 f"trainer.precision={args.precision}", "trainer.enable_progress_bar=false",
                 f"+trainer.max_steps={args.warmup + args.steps}", "+trainer.limit_val_batches=0",
                 "+trainer.enable_checkpointing=false", "schedule.finetune.epochs=1000",
                 f"paths.log_dir={folder}", f"paths.output_dir={folder}"]
    if args.device == "cpu":
        overrides.append("trainer.accelerator=cpu")
    if args.batch_size:
        overrides.append(f"schedule.batch_size={args.batch_size}")
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return hydra_compose(config_name="train", overrides=overrides)


def build(cfg: Any, device: str) -> Any:
    """The classifier, its parameters made on ``device`` directly (a roberta-large's random initialisation takes
    tens of seconds on a CPU); on the CPU if the device cannot build it."""
    import torch

    from erc.training.phases import build_classifier

    torch.manual_seed(0)
    try:
        with torch.device(device):
            return build_classifier(cfg.classifier, "meld")
    except Exception as err:                   # a module that cannot be made on the device: the CPU, then moved
        print(f"gpu_check: building on {device} failed ({type(err).__name__}: {err}); building on the CPU",
              flush=True)
        return build_classifier(cfg.classifier, "meld")


# ---- measuring ------------------------------------------------------------------------------------------------
def autocast(precision: str, device: str) -> contextlib.AbstractContextManager:
    """The autocast a Lightning precision runs the model under (none for full precision)."""
    import torch

    dtype = {"bf16-mixed": torch.bfloat16, "16-mixed": torch.float16}.get(precision)
    return torch.autocast(torch.device(device).type, dtype=dtype) if dtype else contextlib.nullcontext()


def measure_peak(args: argparse.Namespace) -> float:
    """The matmul peak of the training precision's dtype on ``--device``. A CPU's is measured on 256 x 256 matrices:
    a CPU without bf16 instructions multiplies bf16 some 40 times slower than fp32 (2048 x 2048 would take minutes),
    and MFU on a CPU is not what this check is for."""
    from model_flops import matmul_peak

    return matmul_peak(args.device, peak_dtype(args.precision), size=256 if args.device == "cpu" else None)


def peak_dtype(precision: str) -> Any:
    """The matmul dtype MFU is measured against: the one the precision's matrix products run in."""
    import torch

    return {"bf16-mixed": torch.bfloat16, "bf16-true": torch.bfloat16, "16-mixed": torch.float16,
            "16-true": torch.float16}.get(precision, torch.float32)


@contextlib.contextmanager
def full_fp32() -> Iterator[None]:
    """fp32 matrix products without TF32 (whose 10-bit mantissa would hide the fp32 comparison)."""
    import torch

    before = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = before


def peak_memory_mib(device: str) -> tuple[float, str]:
    import resource

    import torch

    if torch.device(device).type == "cuda":
        return torch.cuda.max_memory_allocated() / 2**20, "allocated (CUDA)"
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, "resident (the CPU process)"


def reset_memory(device: str) -> None:
    import gc

    import torch

    gc.collect()
    if torch.device(device).type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats()


def to_device(batch: dict, device: str) -> dict:
    return {k: v.to(device) if hasattr(v, "to") else v for k, v in batch.items()}


def set_fast_path(model: Any, value: str) -> None:
    """``classifier.fast_path`` on every module that reads it (CoMPM and EmoOne hold it, TODKAT's net does)."""
    for module in model.modules():
        if hasattr(module, "fast_path"):
            module.fast_path = value


class StepTimer:
    """A Lightning callback timing steps ``warmup + 1`` to the last (``max_steps``), the device synchronised at both
    ends, and keeping their batches (for FLOPs and token counts, counted after the fit)."""

    def __init__(self, warmup: int, device: str) -> None:
        self.warmup, self.device = warmup, device
        self.started: float | None = None
        self.seconds: float | None = None
        self.batches: list[dict] = []

    def callback(self) -> Any:
        from pytorch_lightning.callbacks import Callback

        timer = self

        class _Timer(Callback):
            def on_train_batch_start(self, trainer, pl_module, batch, batch_idx):
                if timer.started is None and trainer.global_step >= timer.warmup:
                    from model_flops import sync

                    sync(timer.device)
                    timer.started = time.perf_counter()
                if timer.started is not None:
                    timer.batches.append(batch)

            def on_train_batch_end(self, trainer, pl_module, outputs, batch, batch_idx):
                if timer.started is not None and trainer.global_step >= trainer.max_steps:
                    from model_flops import sync

                    sync(timer.device)
                    timer.seconds = time.perf_counter() - timer.started

        return _Timer()


def train_part(model: Any, cfg: Any, dialogues: list, args: argparse.Namespace, folder: Path) -> dict[str, Any]:
    """Fit ``--warmup + --steps`` steps as the runner fits a phase; the timed steps' figures."""
    import torch
    from model_flops import batch_flops

    from erc.models.backbone import uses_packed_path
    from erc.training.data import ERCDataModule
    from erc.training.phases import PhaseContext
    from erc.training.progress_store import ProgressStore
    from erc.training.schedule import phase_schedule
    from erc.training.trainers import TrainerFactory

    schedule = phase_schedule(cfg.schedule, "finetune")
    model.configure_phase("finetune", schedule)
    datamodule = ERCDataModule(model, dialogues, [], batch_size=schedule.batch_size,
                               eval_batch_size=schedule.eval_batch_size, seed=int(cfg.seed),
                               bucket_batches=schedule.bucket_batches)
    factory = TrainerFactory(cfg.trainer, int(cfg.seed))
    timer = StepTimer(args.warmup, args.device)
    trainer = factory.trainer(folder, schedule, [timer.callback()], logger=None)
    model.before_fit(PhaseContext("finetune", folder, False, schedule, datamodule, trainer.strategy.root_device,
                                  factory, ProgressStore(folder / "progress.json")))
    peak = measure_peak(args)
    reset_memory(args.device)
    trainer.fit(model, datamodule=datamodule)
    memory, memory_kind = peak_memory_mib(args.device)
    peak = max(peak, measure_peak(args))
    if timer.seconds is None:
        raise RuntimeError(f"the fit ended after {trainer.global_step} steps, before the timed ones ended "
                           f"(--dialogues too few for --warmup + --steps?)")
    counts = [batch_flops(model, batch) for batch in timer.batches]
    flops, real = sum(c[0] for c in counts), sum(c[1] for c in counts)
    utterances = sum(int(b["labels"].numel()) for b in timer.batches)
    return {"batch_size": schedule.batch_size, "steps": len(timer.batches), "seconds": timer.seconds,
            "utterances": utterances, "utterances_per_s": utterances / timer.seconds,
            "tokens_per_s": real / timer.seconds, "padding": 1 - real / sum(c[2] for c in counts),
            "model_tflops_per_s": flops / timer.seconds / 1e12, "peak_tflops": peak / 1e12,
            "mfu": flops / timer.seconds / peak, "peak_memory_mib": memory, "memory": memory_kind,
            "precision": args.precision, "fast_path": args.fast_path,
            "packed_path": uses_packed_path(args.fast_path, torch.device(args.device))}


def reference_part(model: Any, dialogues: list, args: argparse.Namespace) -> dict[str, Any]:
    """CoMPM's released per-step loop, ``--warmup`` untimed steps then ``--reference-steps`` timed, under the
    training precision's autocast, with the optimizer that precision gets in training."""
    import torch
    from compm_reference import reference_samples, reference_steps
    from model_flops import sync

    from erc.models.base import fused_adamw

    model.to(args.device).train()
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-5, fused=fused_adamw(args.precision, model.parameters()))
    samples = reference_samples(dialogues)[: args.warmup + args.reference_steps]
    with autocast(args.precision, args.device):
        reference_steps(model, samples[: args.warmup], optimizer, args.device)
        sync(args.device)
        started = time.perf_counter()
        reference_steps(model, samples[args.warmup:], optimizer, args.device)
        sync(args.device)
    seconds = time.perf_counter() - started
    del optimizer
    model.zero_grad(set_to_none=True)
    return {"steps": len(samples) - args.warmup, "seconds": seconds,
            "utterances_per_s": (len(samples) - args.warmup) / seconds, "precision": args.precision}


def relative_errors(packed: tuple, plain: tuple) -> dict[str, Any]:
    """Logits, global and worst-parameter gradient errors of ``packed`` against ``plain`` (see the module
    docstring); each a (logits, {name: gradient}) pair."""
    import torch

    logits = (packed[0] - plain[0]).abs().max().item() / max(plain[0].abs().max().item(), 1e-30)
    norms = {name: grad.norm().item() for name, grad in plain[1].items()}
    largest = max(norms.values(), default=0.0)
    differences = {name: (packed[1][name] - grad).norm().item() for name, grad in plain[1].items()}
    considered = {name: differences[name] / norms[name] for name in norms if norms[name] >= SMALL_GRADIENT * largest}
    worst = max(considered, key=considered.get) if considered else None
    total = math.sqrt(sum(d * d for d in differences.values())) / max(math.sqrt(sum(n * n for n in norms.values())),
                                                                     1e-30)
    missing = sorted(set(plain[1]) ^ set(packed[1]))
    return {"logits": logits, "gradients": considered[worst] if worst else 0.0, "worst_parameter": worst,
            "gradients_global": total, "parameters_without_a_gradient_on_one_path": missing,
            "finite": bool(torch.isfinite(packed[0]).all() and torch.isfinite(plain[0]).all())}


def forward_backward(model: Any, batch: dict, precision: str, device: str) -> tuple[Any, dict[str, Any]]:
    """(logits as fp32, every parameter's gradient as fp32) of the classifier's loss on ``batch``."""
    model.zero_grad(set_to_none=True)
    with autocast(precision, device):
        logits = model(batch)
        loss = model.loss(batch, logits)
    loss.backward()
    grads = {n: p.grad.detach().float().clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)
    return logits.detach().float(), grads


def packed_part(model: Any, batches: list[dict], args: argparse.Namespace) -> dict[str, Any]:
    """The packed path against the plain forward: equality in fp32 and under the precision's autocast, dropout off,
    then the time of a forward and backward on each path in both precisions, dropout on."""
    from model_flops import sync
    from transformers import PreTrainedModel

    from erc.models.backbone import has_fast_path_layout

    for encoder in (m for m in model.modules() if isinstance(m, PreTrainedModel)):
        if not has_fast_path_layout(encoder):      # both "paths" would be the plain forward: nothing compared
            raise RuntimeError(f"{type(encoder).__name__} is not laid out as the packed path needs "
                               f"(erc.models.backbone.has_fast_path_layout): fast_path=on runs its plain forward")
    model.to(args.device)
    batches = [to_device(b, args.device) for b in batches]
    result: dict[str, Any] = {"batches": len(batches), "samples": [int(b["labels"].numel()) for b in batches]}
    model.eval()
    outputs = {}
    with full_fp32():
        for path in ("on", "off"):
            set_fast_path(model, path)
            outputs["fp32", path] = forward_backward(model, batches[0], "32-true", args.device)
        for path in ("on", "off"):
            set_fast_path(model, path)
            outputs["mixed", path] = forward_backward(model, batches[0], args.precision, args.device)
    fp32 = relative_errors(outputs["fp32", "on"], outputs["fp32", "off"])
    fp32.update(tolerance=FP32_TOLERANCE,
                ok=fp32["finite"] and fp32["logits"] <= FP32_TOLERANCE and fp32["gradients"] <= FP32_TOLERANCE
                and not fp32["parameters_without_a_gradient_on_one_path"])
    mixed = relative_errors(outputs["mixed", "on"], outputs["mixed", "off"])
    mixed.update(tolerance=BF16_TOLERANCE, precision=args.precision,
                 plain_vs_fp32=relative_errors(outputs["mixed", "off"], outputs["fp32", "off"]),
                 packed_vs_fp32=relative_errors(outputs["mixed", "on"], outputs["fp32", "off"]),
                 ok=mixed["finite"] and mixed["logits"] <= BF16_TOLERANCE and mixed["gradients"] <= BF16_TOLERANCE
                 and not mixed["parameters_without_a_gradient_on_one_path"])
    del outputs
    result.update(fp32=fp32, mixed=mixed)
    model.train()
    speed: dict[str, dict[str, float]] = {}
    for precision in (args.precision, "32-true"):
        times: dict[str, list[float]] = {"on": [], "off": []}
        for repeat in range(args.packed_repeats + 1):                # the first of each path untimed
            for path in ("on", "off"):
                set_fast_path(model, path)
                sync(args.device)
                started = time.perf_counter()
                for batch in batches:
                    model.zero_grad(set_to_none=True)
                    with autocast(precision, args.device):
                        loss = model.loss(batch, model(batch))
                    loss.backward()
                sync(args.device)
                if repeat:
                    times[path].append((time.perf_counter() - started) / len(batches))
        packed_ms, plain_ms = (1000 * statistics.median(times[p]) for p in ("on", "off"))
        speed[precision] = {"packed_ms": packed_ms, "plain_ms": plain_ms, "plain_over_packed": plain_ms / packed_ms}
    model.zero_grad(set_to_none=True)
    set_fast_path(model, args.fast_path)
    result["speed"] = speed
    return result


# ---- one classifier's parts -----------------------------------------------------------------------------------
def parts_of(classifier: str) -> tuple[str, ...]:
    """The parts run for ``classifier``, in order (the reference loop is CoMPM's alone)."""
    return tuple(part for part in SUBPARTS if part != "reference" or classifier == "compm")


def failure(err: BaseException) -> str:
    """``failed: <type>: <first line>`` of an exception (its traceback goes to stderr)."""
    traceback.print_exception(err)
    first = str(err).strip().splitlines()[0] if str(err).strip() else ""
    return f"failed: {type(err).__name__}: {first}"[:300]


def run_classifier(name: str, args: argparse.Namespace, deadline: float, record: Callable[[dict], None]) -> None:
    """Set up ``name`` and run its parts in order, ``record``-ing the result after each; a part that raises is
    recorded as failed and the next one runs; a part not started by ``deadline`` (less than 10 s left) is skipped."""
    import pytorch_lightning as pl
    import torch
    from meld_dialogues import meld_dialogues

    import erc  # noqa: F401  (registers the config resolvers)

    result: dict[str, Any] = {"classifier": name}
    with tempfile.TemporaryDirectory(prefix=f"gpu_check_{name}_") as tmp:
        folder = Path(tmp)
        try:
            cfg = compose(name, args, folder)
            pl.seed_everything(int(cfg.seed), workers=True)
            started = time.perf_counter()
            model = build(cfg, args.device)
            config = model.context_model.config if hasattr(model, "context_model") else model.net.encoder.config
            dialogues, source = meld_dialogues(args.dialogues, args.data, model.tokenizer)
            utterances = [u.text for d in dialogues for u in d.utterances]
            tokens = sum(len(ids) for ids in model.tokenizer(utterances, add_special_tokens=False)["input_ids"])
            result.update(
                backbone=args.size if args.size == "tiny" else PAPER_BACKBONE[name] + " shape, random weights",
                encoder={k: getattr(config, k) for k in ("hidden_size", "num_hidden_layers", "num_attention_heads",
                                                         "intermediate_size", "vocab_size")},
                parameters=sum(p.numel() for p in model.parameters()), build_s=time.perf_counter() - started,
                data=source, dialogues=len(dialogues), tokens_per_utterance=tokens / max(len(utterances), 1),
                device_name=torch.cuda.get_device_name() if torch.device(args.device).type == "cuda" else
                platform.processor() or platform.machine(), torch=torch.__version__, cuda=torch.version.cuda,
                setup={"status": "ok"})
        except Exception as err:
            result["setup"] = {"status": failure(err)}
            for part in parts_of(name):
                result[part] = {"status": "not run: the setup failed"}
            record(result)
            return
        record(result)
        parts = {"train": lambda: train_part(model, cfg, dialogues, args, folder),
                 "reference": lambda: reference_part(model, dialogues, args),
                 "packed": lambda: packed_part(model, first_batches(model, dialogues, cfg, args.packed_batches), args)}
        for part in parts_of(name):
            run = parts[part]
            if time.time() > deadline - 10:
                result[part] = {"status": "skipped: the budget was spent"}
            else:
                try:
                    result[part] = {"status": "ok", **run()}
                except Exception as err:
                    result[part] = {"status": failure(err)}
                    model.zero_grad(set_to_none=True)
                    reset_memory(args.device)
            record(result)


def first_batches(model: Any, dialogues: list, cfg: Any, count: int) -> list[dict]:
    """The first ``count`` training batches the runner's data module makes (length-bucketed, as in training)."""
    from erc.training.data import ERCDataModule
    from erc.training.schedule import phase_schedule

    schedule = phase_schedule(cfg.schedule, "finetune")
    module = ERCDataModule(model, dialogues, [], batch_size=schedule.batch_size,
                           eval_batch_size=schedule.eval_batch_size, seed=int(cfg.seed))
    batches = []
    for batch in module.train_dataloader():
        batches.append(batch)
        if len(batches) == count:
            break
    return batches


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as JSON atomically (a reader never sees half a file, even when this process is killed)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(value, indent=1, default=str) + "\n")
    os.replace(tmp, path)


def run_part_process(command: list[str], result: Path, timeout: float) -> tuple[dict[str, Any], str | None]:
    """Run one part's process until it ends or ``timeout`` seconds pass (then it is killed); (what it recorded in
    ``result``, None or why it ended badly: ``timed out`` or ``exit status N``)."""
    try:
        completed = subprocess.run(command, timeout=max(timeout, 1), check=False)
        problem = None if completed.returncode == 0 else f"exit status {completed.returncode}"
    except subprocess.TimeoutExpired:
        problem = f"timed out after {timeout:.0f} s"
    recorded = json.loads(result.read_text()) if result.is_file() else {}
    return recorded, problem


def complete(name: str, recorded: dict[str, Any], problem: str | None) -> dict[str, Any]:
    """A classifier's result with every part present: the first part a killed or crashed process had not recorded
    is marked with ``problem``, the rest as not run."""
    result = {"classifier": name, **recorded}
    missing = [part for part in ("setup", *parts_of(name)) if part not in result]
    for i, part in enumerate(missing):
        result[part] = {"status": "not run" if not problem else f"failed: {problem}" if i == 0 else
                        f"not run: the {missing[0]} part did not end"}
    return result


def deadlines(start: float, budget: float, count: int) -> list[float]:
    """Each part's latest end: parts run in order, each may use what the earlier left, but every later part keeps a
    share of ``budget / (2 * count)``; 5 s are kept at the end for the summary."""
    end, share = start + budget - 5, budget / (2 * count)
    return [end - share * (count - 1 - i) for i in range(count)]


# ---- the summary ----------------------------------------------------------------------------------------------
def status(part: dict[str, Any] | None) -> str:
    return "-" if part is None else part.get("status", "?")


def summarise(results: dict[str, dict[str, Any]]) -> tuple[list[dict[str, Any]], bool]:
    """One row per classifier, and whether everything ran and every tolerance held."""
    rows, ok = [], True
    for name, r in results.items():
        train, reference, packed = r.get("train", {}), r.get("reference"), r.get("packed", {})
        row: dict[str, Any] = {"classifier": name, "backbone": r.get("backbone", "-"),
                               "batch_size": train.get("batch_size")}
        for key in ("utterances_per_s", "tokens_per_s", "mfu", "peak_memory_mib"):
            row[key] = train.get(key)
        if reference is not None:
            row["reference_utterances_per_s"] = reference.get("utterances_per_s")
            if train.get("utterances_per_s") and reference.get("utterances_per_s"):
                row["batched_over_reference"] = train["utterances_per_s"] / reference["utterances_per_s"]
        for precision in ("fp32", "mixed"):
            check = packed.get(precision)
            if check:
                row[f"packed_{precision}"] = {"logits": check["logits"], "gradients": check["gradients"],
                                              "ok": check["ok"]}
                ok = ok and check["ok"]
        speed = packed.get("speed", {})
        if speed:
            row["plain_over_packed"] = {precision: s["plain_over_packed"] for precision, s in speed.items()}
        problems = [f"{part}: {status(r[part])}" for part in ("setup", *SUBPARTS)
                    if part in r and status(r[part]) != "ok"]
        row["status"] = "; ".join(problems) or "ok"
        ok = ok and not problems
        rows.append(row)
    return rows, ok


def goals(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """The issue's goals (CoMPM >= 5x its reference; MFU of CoMPM and EmoOne >= 0.35): met, not met, or not measured."""
    by = {row["classifier"]: row for row in rows}
    ratio = by.get("compm", {}).get("batched_over_reference")
    found = {"compm_vs_reference": {"goal": GOALS["compm_vs_reference"], "value": ratio,
                                    "met": None if ratio is None else ratio >= GOALS["compm_vs_reference"]}}
    for name in ("compm", "emoone"):
        mfu = by.get(name, {}).get("mfu")
        found[f"{name}_mfu"] = {"goal": GOALS["mfu"], "value": mfu, "met": None if mfu is None else mfu >= GOALS["mfu"]}
    return found


def _figure(value: Any, spec: str) -> str:
    """``value`` formatted by ``spec``, or a dash aligned as ``spec`` says."""
    return format("-", spec.rstrip("dfe").split(".")[0]) if value is None else format(value, spec)


def table(rows: list[dict[str, Any]]) -> str:
    """The summary table, one line per classifier (and its status below when not ok)."""
    head = (f"{'classifier':<8} {'batch':>5} {'utt/s':>8} {'tok/s':>9} {'MFU':>5} {'peak MiB':>9} {'ref utt/s':>9} "
            f"{'ratio':>6} {'fp32 logits/grads':>19} {'bf16 logits/grads':>19} {'plain/packed time':>19}")
    lines = [head, "-" * len(head)]
    for row in rows:
        checks = []
        for precision in ("fp32", "mixed"):
            check = row.get(f"packed_{precision}")
            checks.append("-" if check is None else
                          f"{check['logits']:.0e}/{check['gradients']:.0e} {'ok' if check['ok'] else 'NO'}")
        speed = row.get("plain_over_packed", {})
        speeds = "/".join(f"{v:.2f}" for v in speed.values()) or "-"
        lines.append(f"{row['classifier']:<8} {_figure(row['batch_size'], '>5')} "
                     f"{_figure(row['utterances_per_s'], '>8.1f')} {_figure(row['tokens_per_s'], '>9.0f')} "
                     f"{_figure(row['mfu'], '>5.2f')} {_figure(row['peak_memory_mib'], '>9.0f')} "
                     f"{_figure(row.get('reference_utterances_per_s'), '>9.1f')} "
                     f"{_figure(row.get('batched_over_reference'), '>6.1f')} {checks[0]:>19} {checks[1]:>19} "
                     f"{speeds:>19}")
        if row["status"] != "ok":
            lines.append(f"  {row['classifier']}: {row['status']}")
    return "\n".join(lines)


def versions() -> dict[str, str]:
    found = {"python": platform.python_version()}
    for package in ("torch", "transformers", "pytorch-lightning", "hydra-core", "omegaconf"):
        try:
            found[package] = importlib.metadata.version(package)
        except importlib.metadata.PackageNotFoundError:
            found[package] = "not installed"
    return found


# ---- the entry points -----------------------------------------------------------------------------------------
def child(args: argparse.Namespace) -> None:
    """One classifier's parts in this process, recorded in ``--result`` as they end."""
    run_classifier(args.part, args, args.deadline, lambda result: write_json(args.result, result))


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.part:
        child(args)
        return 0
    start = time.time()
    ends = deadlines(start, args.budget, len(args.classifiers))
    results: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix="gpu_check_") as tmp:
        for name, end in zip(args.classifiers, ends, strict=True):
            print(f"== gpu_check: {name} ({end - time.time():.0f} s left for it)", flush=True)
            if end - time.time() < 20:
                results[name] = {"classifier": name, **{part: {"status": "skipped: the budget was spent"}
                                                        for part in ("setup", *parts_of(name))}}
                continue
            if args.in_process:
                recorded: dict[str, Any] = {}
                run_classifier(name, args, end, recorded.update)
                results[name] = complete(name, recorded, None)
                continue
            result = Path(tmp) / f"{name}.json"
            command = [sys.executable, str(Path(__file__).resolve()), *argv, "--part", name, "--result", str(result),
                       "--deadline", str(end)]
            recorded, problem = run_part_process(command, result, end - time.time())
            results[name] = complete(name, recorded, problem)
    rows, ok = summarise(results)
    names = sorted({r["device_name"] for r in results.values() if "device_name" in r})
    report = {"device": args.device, "device_name": ", ".join(names) or None, "versions": versions(),
              "machine": platform.machine(),
              "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()
                           if k not in ("part", "result", "deadline")},
              "tolerances": {"fp32": FP32_TOLERANCE, "mixed": BF16_TOLERANCE, "small_gradient": SMALL_GRADIENT},
              "summary": rows, "goals": goals(rows), "ok": ok, "classifiers": results,
              "elapsed_s": time.time() - start}
    write_json(args.json, report)
    installed = ", ".join(f"{k} {v}" for k, v in report["versions"].items())
    print(f"\n== gpu_check on {report['device_name'] or args.device} ({installed}), {time.time() - start:.0f} s")
    print(table(rows))
    for goal, found in report["goals"].items():
        print(f"goal {goal}: {_figure(found['value'], '.2f')} (>= {found['goal']}): "
              f"{'not measured' if found['met'] is None else 'met' if found['met'] else 'NOT met'}")
    print(f"{'all parts ran and every tolerance held' if ok else 'NOT ok: see the status lines'}; JSON: {args.json}")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
