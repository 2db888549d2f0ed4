"""``generate(cfg)``: ask the LLM for every dialogue still missing, then post-process.

Dialogue ``k`` is a slot with a fixed prompt (speakers, balanced target) and a sequence of derived
seeds, one per attempt. A slot is finished when an attempt is accepted or ``max_attempts`` requests
were made. What is finished is read back from ``requests.jsonl`` by fingerprint, so rerunning the
same command continues where a crash stopped it and raising ``n_dialogues`` only adds slots.
Requests run on ``llm.concurrency`` workers (bounded in-flight requests) over round-robin replicas.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from erc.data.labels import label_set
from erc.errors import UserError
from erc.generation.backends import Backend, FatalRequestError, TransientError, make_backend
from erc.generation.grammar import DialogueGrammar
from erc.generation.parsing import Rules, validate
from erc.generation.postprocess import postprocess
from erc.generation.prompts import DialogueSpec, load_template, plan_dialogue, render_user_prompt
from erc.generation.sampling import Sampling, derive_seed, warn_lost
from erc.generation.store import RequestStore, canonical_hash, fingerprint
from erc.io import append_jsonl

log = logging.getLogger(__name__)


class GenerationError(UserError, RuntimeError):
    """The run stopped (server unreachable after all retries, or a request it will never accept)."""


@dataclass
class Job:
    """One dialogue slot still to finish, starting at attempt ``first_attempt``."""

    spec: DialogueSpec
    prompt: str
    grammar: DialogueGrammar | None
    first_attempt: int


@dataclass(frozen=True)
class RetryPolicy:
    """``llm.max_retries``, ``llm.backoff_s``, ``llm.backoff_max_s`` as plain numbers."""

    max_retries: int
    backoff_s: float
    backoff_max_s: float

    @classmethod
    def from_config(cls, llm: DictConfig) -> RetryPolicy:
        return cls(int(llm.max_retries), float(llm.backoff_s), float(llm.backoff_max_s))


async def with_retries(call, *args, policy: RetryPolicy, what: str):
    """Await ``call(*args)``, retrying :class:`TransientError` with exponential backoff and jitter
    (half the delay fixed, half random, so replicas recovering together are not hit in lockstep)."""
    for retry in range(policy.max_retries + 1):
        try:
            return await call(*args)
        except TransientError as err:
            if retry == policy.max_retries:
                raise GenerationError(f"{what}: gave up after {policy.max_retries} retries: {err}. Nothing "
                                      f"finished is lost: rerun the same command to resume.") from err
            delay = min(policy.backoff_max_s, policy.backoff_s * 2**retry)
            delay = delay / 2 + random.uniform(0, delay / 2)
            log.warning("%s: %s; retry %d/%d in %.1fs", what, err, retry + 1, policy.max_retries, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class Progress:
    """Counts and a tqdm bar: accepted/rejected, dialogues/min, tokens/s and ETA."""

    def __init__(self, total: int, name: str) -> None:
        self.bar = tqdm(total=total, desc=f"generate {name}", unit="dialogue", dynamic_ncols=True)
        self.start = time.monotonic()
        self.requests = self.accepted = self.rejected = self.failed = self.tokens = 0
        self.reasons: Counter[str] = Counter()

    def request_done(self, accepted: bool, tokens: int | None, reasons: list[str]) -> None:
        self.requests += 1
        self.tokens += tokens or 0
        self.accepted += accepted
        self.rejected += not accepted
        self.reasons.update(reasons)
        elapsed = max(time.monotonic() - self.start, 1e-9)
        self.bar.set_postfix(accepted=self.accepted, rejected=self.rejected,
                             dlg_min=f"{60 * self.accepted / elapsed:.1f}", tok_s=f"{self.tokens / elapsed:.0f}")

    def slot_done(self, accepted: bool) -> None:
        self.failed += not accepted
        self.bar.update(1)

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self.start
        return {"requests": self.requests, "accepted": self.accepted, "rejected": self.rejected,
                "slots_failed": self.failed, "generated_tokens": self.tokens, "wall_s": round(wall, 3),
                "dialogues_per_min": round(60 * self.accepted / wall, 2) if wall else None,
                "tokens_per_s": round(self.tokens / wall, 2) if wall else None,
                "rejection_reasons": dict(sorted(self.reasons.items()))}


class Generator:
    """Plans the slots of one run, skips what ``requests.jsonl`` already holds, runs the rest."""

    def __init__(self, cfg: DictConfig, backend: Backend, provenance: dict[str, Any]) -> None:
        self.cfg = cfg
        self.backend = backend
        self.provenance = provenance
        self.benchmark = cfg.benchmark.name
        self.labels = label_set(self.benchmark)
        self.template = load_template(cfg.prompt.template)
        self.rules = Rules.from_config(cfg.validation)
        self.parameters = backend.request_parameters()
        # Plain values for the per-request path (OmegaConf access is slow at hundreds of requests/s).
        self.base_seed, self.max_attempts, self.mode = int(cfg.seed), int(cfg.max_attempts), str(cfg.prompt.mode)
        self.retry = RetryPolicy.from_config(cfg.llm)
        self.setup = {"backend": backend.kind, "model": provenance["model"], "template_hash": self.template.hash,
                      "parameters": self.parameters, "constrained": backend.sampling.constrained,
                      "grammar": OmegaConf.to_container(cfg.sampling.grammar) if backend.sampling.constrained else None,
                      "benchmark": self.benchmark, "mode": cfg.prompt.mode, "seed": int(cfg.seed),
                      "chat_template": cfg.llm.chat_template}
        self.setup_hash = canonical_hash(self.setup, 16)
        if self.setup["grammar"] and self.setup["grammar"]["no_label_counting"] and not backend.speaks_gbnf:
            backend.lost.append("sampling.grammar.no_label_counting (only GBNF, i.e. llama.cpp, expresses it)")
        self.store = RequestStore(Path(cfg.out_dir) / "requests.jsonl")
        self._check_setup()

    def _check_setup(self) -> None:
        others = Counter(r.get("setup_hash") for r in self.store.records if r.get("setup_hash") != self.setup_hash)
        if others:
            self.store.close()
            raise GenerationError(
                f"{self.store.path} holds {sum(others.values())} request(s) made with other settings (setup "
                f"{', '.join(map(str, others))}, now {self.setup_hash}: backend, model, template, sampling, seed or "
                f"mode changed; see runs.jsonl). Mixing them would make an incoherent dataset: choose another "
                f"out_dir or move the old one away.")

    def _fingerprint(self, job_prompt: str, seed: int, grammar: DialogueGrammar | None) -> str:
        return fingerprint(backend=self.backend.kind, model=self.provenance["model"],
                           template_hash=self.template.hash, prompt=job_prompt, parameters=self.parameters,
                           seed=seed, grammar=grammar.gbnf() if grammar else None)

    def plan(self) -> tuple[list[Job], int]:
        """The jobs still to run, and how many slots are already finished."""
        gen = self.cfg.benchmark.generation
        jobs, finished = [], 0
        for index in range(int(self.cfg.n_dialogues)):
            spec = plan_dialogue(index, seed=int(self.cfg.seed), mode=self.cfg.prompt.mode, labels=self.labels,
                                 speaker_pool=list(gen.speaker_pool),
                                 speakers_per_dialogue=list(gen.speakers_per_dialogue))
            user = render_user_prompt(self.template, spec, participants=gen.participants, labels=self.labels)
            prompt = self.backend.chat_prompt(user)
            grammar = None
            if self.backend.sampling.constrained:
                g = self.cfg.sampling.grammar
                grammar = DialogueGrammar(spec.speakers, len(self.labels), self.rules.min_turns, int(g.max_turns),
                                          int(g.max_utterance_chars), bool(g.no_label_counting))
            first = self._first_missing_attempt(index, prompt, grammar)
            if first is None:
                finished += 1
            else:
                jobs.append(Job(spec, prompt, grammar, first))
        return jobs, finished

    def _first_missing_attempt(self, index: int, prompt: str, grammar: DialogueGrammar | None) -> int | None:
        """The first attempt of slot ``index`` not in the store; None when the slot is finished
        (an attempt was accepted, or all ``max_attempts`` were made)."""
        for attempt in range(self.max_attempts):
            done = self.store.by_fingerprint.get(self._fingerprint(prompt, self._seed(index, attempt), grammar))
            if done is None:
                return attempt
            if done["status"] == "accepted":
                return None
        return None

    def _seed(self, index: int, attempt: int) -> int:
        return derive_seed(self.base_seed, index, attempt)

    async def run_job(self, job: Job, progress: Progress) -> None:
        """Ask for one slot's dialogue, re-asking with the next derived seed until accepted."""
        accepted = False
        for attempt in range(job.first_attempt, self.max_attempts):
            seed = self._seed(job.spec.index, attempt)
            started = time.monotonic()
            completion = await with_retries(self.backend.complete, job.prompt, seed, job.grammar, policy=self.retry,
                                            what=f"dialogue {job.spec.index}")
            latency = time.monotonic() - started
            parsed = validate(completion.text, truncated=completion.truncated, benchmark=self.benchmark,
                              labels=self.labels, speakers=list(job.spec.speakers), target=job.spec.target,
                              rules=self.rules)
            self.store.append({
                "fingerprint": self._fingerprint(job.prompt, seed, job.grammar), "setup_hash": self.setup_hash,
                "dialogue": job.spec.index, "attempt": attempt, "seed": seed, "benchmark": self.benchmark,
                "mode": self.mode, "target": job.spec.target, "speakers": list(job.spec.speakers),
                "template_hash": self.template.hash, "backend": self.backend.kind, "model": self.provenance["model"],
                "constrained": job.grammar is not None, "prompt": job.prompt, "text": completion.text,
                "finish_reason": completion.finish_reason, "generated_tokens": completion.generated_tokens,
                "server_seed": completion.seed, "replica": completion.replica, "latency_s": round(latency, 4),
                "finished_at": time.time(), "status": "accepted" if parsed.accepted else "rejected",
                "reasons": parsed.reasons,
            })
            progress.request_done(parsed.accepted, completion.generated_tokens, parsed.reasons)
            if parsed.accepted:
                accepted = True
                break
        progress.slot_done(accepted)

    async def run(self, jobs: list[Job]) -> dict[str, Any]:
        """Run ``jobs`` on ``llm.concurrency`` workers. The first fatal error stops new requests;
        requests in flight still finish and are stored, then the error is raised."""
        queue: asyncio.Queue[Job] = asyncio.Queue()
        for job in jobs:
            queue.put_nowait(job)
        progress = Progress(len(jobs), Path(self.cfg.out_dir).name)
        errors: list[BaseException] = []

        async def worker() -> None:
            while not errors and not queue.empty():
                job = queue.get_nowait()
                try:
                    await self.run_job(job, progress)
                except (GenerationError, FatalRequestError) as err:
                    errors.append(err)

        try:
            await asyncio.gather(*(worker() for _ in range(max(1, min(int(self.cfg.llm.concurrency), len(jobs))))))
        finally:
            progress.bar.close()
            self.store.close()
        if errors:
            raise errors[0] if isinstance(errors[0], GenerationError) else GenerationError(str(errors[0]))
        return progress.summary()


async def run_requests(cfg: DictConfig) -> dict[str, Any]:
    """Generate every missing request of ``cfg`` into ``<out_dir>/requests.jsonl``."""
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sampling = Sampling.from_config(cfg.sampling, list(cfg.llm.stop))
    backend = make_backend(cfg.llm, sampling)
    warn_lost(backend.kind, backend.lost)
    started = time.time()
    run: dict[str, Any] = {"started_at": started, "n_dialogues": int(cfg.n_dialogues),
                           "concurrency": int(cfg.llm.concurrency), "not_honoured": backend.lost}
    try:
        provenance = await with_retries(backend.start, policy=RetryPolicy.from_config(cfg.llm),
                                        what=f"{backend.kind} backend")
        generator = Generator(cfg, backend, provenance)
        jobs, finished = generator.plan()
        run.update(provenance=provenance, setup=generator.setup, setup_hash=generator.setup_hash,
                   slots_already_finished=finished, slots_to_run=len(jobs))
        log.info("%s: %d dialogue slot(s) finished before, %d to run", out_dir, finished, len(jobs))
        run.update(await generator.run(jobs))
    except BaseException as err:
        run["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        await backend.close()
        run["finished_at"] = time.time()
        append_jsonl(out_dir / "runs.jsonl", run)
    return run


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Generate the dataset of ``cfg`` (``conf/generate.yaml``), then post-process it.
    With ``postprocess_only`` no LLM is called: parsing, dedup, split and export are redone from
    ``requests.jsonl``. Returns the run's figures and the post-processing summary."""
    result: dict[str, Any] = {}
    if not cfg.postprocess_only:
        result["generation"] = asyncio.run(run_requests(cfg))
    result.update(postprocess(cfg))
    return result
