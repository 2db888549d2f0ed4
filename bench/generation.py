"""Generation throughput: prints figures, asserts nothing.

1. Concurrency: dialogues/s of the whole request pipeline (TGI client, validation, store) against
   the loopback TGI-protocol server answering after a fixed latency, at llm.concurrency = 1, 8, 32,
   128, as a ratio to the ideal C / latency (the paper's sequential client reaches 1 / latency).
   The server runs in its own process so it does not share the client's interpreter lock.
2. Embedded overhead: tokens/s of the `local` backend through the pipeline against a bare
   llama-cpp-python loop over the same prompts, seeds and parameters (model loading excluded).

    .venv/bin/python bench/generation.py [--latency 0.25] [--embedded-n 6] [--skip-embedded]
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "tests")]
os.environ.setdefault("TQDM_DISABLE", "1")  # figures only, no progress bars

from hydra import compose, initialize_config_dir  # noqa: E402

import erc  # noqa: E402, F401
from erc.data.labels import label_set  # noqa: E402
from erc.generation import run_requests  # noqa: E402
from erc.paths import CONFIG_DIR  # noqa: E402

from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues  # noqa: E402


class AlwaysValid(ScriptedDialogues):
    """Every answer is a valid, distinct dialogue: one request per dialogue."""

    @staticmethod
    def kind(seed: int) -> str:
        return "valid"


def serve(latency: float, urls, stop) -> None:
    with LoopbackTGI(AlwaysValid(label_set("iemocap")), latency_s=latency) as server:
        urls.put(server.url)
        stop.wait()


def compose_generate(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=list(overrides))


def concurrency_figures(latency: float, waves: int) -> None:
    context = multiprocessing.get_context("spawn")
    urls, stop = context.Queue(), context.Event()
    process = context.Process(target=serve, args=(latency, urls, stop), daemon=True)
    process.start()
    url = urls.get(timeout=60)
    print(f"\n== concurrency: loopback TGI server, fixed latency {latency:.3f} s/request ==")
    print(f"{'C':>5} {'requests':>9} {'wall s':>8} {'dialogues/s':>12} {'ideal C/lat':>12} {'ratio':>6} "
          f"{'client CPU ms/req':>18}")
    try:
        for concurrency in (1, 8, 32, 128):
            n = max(16, waves * concurrency)
            with tempfile.TemporaryDirectory() as tmp:
                cfg = compose_generate("llm=tgi", f"llm.url={url}", "benchmark=iemocap", f"n_dialogues={n}",
                                       "max_attempts=1", f"llm.concurrency={concurrency}", f"paths.data_dir={tmp}",
                                       f"paths.synthetic_dir={tmp}/synthetic")
                cpu = time.process_time()
                summary = run_requests(cfg)
                cpu = time.process_time() - cpu
            rate = summary["accepted"] / summary["wall_s"]
            ideal = concurrency / latency
            print(f"{concurrency:>5} {summary['requests']:>9} {summary['wall_s']:>8.2f} {rate:>12.1f} "
                  f"{ideal:>12.1f} {rate / ideal:>6.2f} {1000 * cpu / summary['requests']:>18.2f}")
            print(f"summary: generation, TGI loopback C={concurrency}: {rate:.1f} dialogues/s = "
                  f"{rate / ideal:.2f} x ideal C/latency" + (" (goal >= 0.9)" if concurrency == 32 else ""))
    finally:
        stop.set()
        process.join(timeout=10)


def embedded_figures(n: int, max_new_tokens: int, rounds: int) -> None:
    """Best of ``rounds`` for each side, alternating, so a busy neighbour hurts both alike."""
    from llama_cpp import Llama

    from erc.generation.prompts import plan_dialogue, render_user_prompt
    from erc.llm.backends.local import LocalBackend, bundled_model_path
    from erc.llm.sampling import Sampling, derive_seed
    from erc.llm.templates import load_template

    overrides = ["sampling=paper", f"sampling.max_new_tokens={max_new_tokens}", f"n_dialogues={n}", "max_attempts=1",
                 "llm.n_threads=1"]
    cfg = compose_generate(*overrides)
    # The bare loop: the same rendered prompts, seeds and parameters, nothing else.
    llama = Llama(model_path=str(bundled_model_path()), n_ctx=cfg.llm.n_ctx, n_threads=1, verbose=False)
    helper = LocalBackend(cfg.llm, Sampling.from_config(cfg.sampling, list(cfg.llm.stop)))
    helper.llama = llama  # only to render the GGUF chat template exactly as the pipeline does
    labels, gen = label_set("meld"), cfg.benchmark.generation
    template = load_template(cfg.prompt.template)
    prompts = []
    for index in range(n):
        spec = plan_dialogue(index, seed=int(cfg.seed), mode="natural", labels=labels,
                             speaker_pool=list(gen.speaker_pool), speakers_per_dialogue=list(gen.speakers_per_dialogue))
        prompts.append((helper.prompt(render_user_prompt(template, spec, participants=gen.participants,
                                                              labels=labels)), derive_seed(int(cfg.seed), index, 0)))
    pipeline, bare = [], []
    for _ in range(rounds):
        with tempfile.TemporaryDirectory() as tmp:
            summary = run_requests(compose_generate(f"paths.data_dir={tmp}", f"paths.synthetic_dir={tmp}/synthetic",
                                                     *overrides))
        pipeline.append((summary["generated_tokens"], summary["wall_s"]))
        tokens, start = 0, time.monotonic()
        for prompt, seed in prompts:
            tokens += llama.create_completion(prompt, seed=seed, **helper.params)["usage"]["completion_tokens"]
        bare.append((tokens, time.monotonic() - start))
    llama.close()
    best_pipeline = max(t / s for t, s in pipeline)
    best_bare = max(t / s for t, s in bare)
    print(f"\n== embedded llama.cpp (SmolLM2-135M Q4_1, 1 thread, free sampling, {n} requests x {rounds} rounds, "
          f"max_new_tokens={max_new_tokens}) ==")
    print(f"pipeline (generate's request loop):  {pipeline[0][0]} tokens/round, best {best_pipeline:.1f} tokens/s")
    print(f"bare llama-cpp-python loop:          {bare[0][0]} tokens/round, best {best_bare:.1f} tokens/s")
    print(f"overhead: {100 * (1 - best_pipeline / best_bare):+.1f}%")
    print(f"summary: generation, embedded backend {best_pipeline:.1f} vs bare llama-cpp-python {best_bare:.1f} "
          f"tokens/s: overhead {100 * (1 - best_pipeline / best_bare):+.1f}% (goal <= 10%)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--latency", type=float, default=0.25, help="server latency per request, seconds")
    parser.add_argument("--waves", type=int, default=12, help="requests per concurrency slot")
    parser.add_argument("--embedded-n", type=int, default=6, help="requests for the embedded comparison")
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--rounds", type=int, default=3, help="alternating rounds for the embedded comparison")
    parser.add_argument("--skip-embedded", action="store_true")
    parser.add_argument("--skip-concurrency", action="store_true")
    args = parser.parse_args()
    print(f"machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPU(s) visible, "
          f"Python {platform.python_version()}")
    if not args.skip_concurrency:
        concurrency_figures(args.latency, args.waves)
    if not args.skip_embedded:
        embedded_figures(args.embedded_n, args.max_new_tokens, args.rounds)


if __name__ == "__main__":
    main()
