"""``generate(cfg)``: ask the LLM for every dialogue still missing, then post-process.

Dialogue ``k`` is a slot with a fixed prompt (speakers, balanced target) and a sequence of derived
seeds, one per attempt. A slot is finished when an attempt is accepted or ``max_attempts`` requests
were made and at least one answer held a dialogue. A slot whose answers held no dialogue at all
(empty, or prose: the server, template or model was at fault, not the dialogue) stays open: the next
run asks it ``max_attempts`` more times with the following seeds. What is finished is read back
from ``requests.jsonl`` by fingerprint, so rerunning the same command continues where a crash
stopped it and raising ``n_dialogues`` only adds slots. Requests run on ``llm.concurrency`` workers
(bounded in-flight requests) over round-robin replicas; one ``generate`` holds ``out_dir`` at a time
(:class:`erc.locks.FolderLock`).
"""

from __future__ import annotations

import asyncio
import json
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from erc.data.labels import label_set
from erc.errors import UserError
from erc.generation.backends import Backend, FatalRequestError, TransientError, make_backend
from erc.generation.backends.base import Prompt
from erc.generation.chat_templates import chat_template_setup
from erc.generation.checks import check_generation_config
from erc.generation.dialects import template_stop
from erc.generation.grammar import Constraint, DialogueGrammar
from erc.generation.json_output import dialogue_schema
from erc.generation.parsing import NO_DIALOGUE, Rules, validate
from erc.generation.postprocess import postprocess
from erc.generation.prompts import DialogueSpec, load_template, plan_dialogue, render_user_prompt
from erc.generation.sampling import Sampling, derive_seed, warn_lost
from erc.generation.store import RequestStore, canonical_hash, fingerprint
from erc.judge.checks import check_judge_config
from erc.io import append_jsonl
from erc.locks import FolderLock

log = logging.getLogger(__name__)


class GenerationError(UserError, RuntimeError):
    """The run stopped (server unreachable after all retries, or a request it will never accept)."""


@dataclass
class Job:
    """One dialogue slot still to finish: attempts ``first_attempt`` up to (not including) ``end_attempt``."""

    spec: DialogueSpec
    prompt: Prompt
    constraint: Constraint | None
    first_attempt: int
    end_attempt: int


RESUME = "Nothing finished is lost: rerun the same command to resume."


@dataclass(frozen=True)
class RetryPolicy:
    """``llm.max_retries``, ``llm.backoff_s``, ``llm.backoff_max_s`` and ``llm.request_deadline_s``
    (None: no deadline) as plain numbers."""

    max_retries: int
    backoff_s: float
    backoff_max_s: float
    deadline_s: float | None = None

    @classmethod
    def from_config(cls, llm: DictConfig, backend: Backend) -> RetryPolicy:
        """The deadline applies only to backends that can be interrupted mid-request (see
        :attr:`Backend.interruptible`)."""
        deadline = llm.get("request_deadline_s") if backend.interruptible else None
        return cls(int(llm.max_retries), float(llm.backoff_s), float(llm.backoff_max_s),
                   None if deadline is None else float(deadline))


async def with_retries(call, *args, policy: RetryPolicy, what: str, failures: Counter[str] | None = None):
    """Await ``call(*args)``, retrying :class:`TransientError` (malformed answers included) with
    exponential backoff and jitter (half the delay fixed, half random, so replicas recovering together
    are not hit in lockstep). ``policy.deadline_s`` bounds all tries and waits together: a server that
    accepts connections and never answers would otherwise hold a request for ``max_retries + 1``
    client timeouts. Each retried fault is counted in ``failures`` by its type."""
    started = time.monotonic()
    for retry in range(policy.max_retries + 1):
        left = None if policy.deadline_s is None else policy.deadline_s - (time.monotonic() - started)
        try:
            async with asyncio.timeout(left) as budget:
                return await call(*args)
        except TimeoutError:
            if not budget.expired():
                raise
            raise GenerationError(f"{what}: no answer within llm.request_deadline_s={policy.deadline_s:g} s "
                                  f"({retry + 1} tries): the server accepts requests but does not answer; check "
                                  f"it, or raise llm.request_deadline_s for a slow one. {RESUME}") from None
        except TransientError as err:
            if failures is not None:
                failures[type(err).__name__] += 1
            if retry == policy.max_retries:
                raise GenerationError(f"{what}: gave up after {policy.max_retries} retries: {err}. {RESUME}") from err
            delay = min(policy.backoff_max_s, policy.backoff_s * 2**retry)
            delay = delay / 2 + random.uniform(0, delay / 2)
            if policy.deadline_s is not None and time.monotonic() - started + delay >= policy.deadline_s:
                raise GenerationError(f"{what}: gave up after {retry + 1} tries within llm.request_deadline_s="
                                      f"{policy.deadline_s:g} s: {err}. {RESUME}") from err
            log.warning("%s: %s; retry %d/%d in %.1fs", what, err, retry + 1, policy.max_retries, delay)
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")


class Progress:
    """Counts and a tqdm bar: accepted/rejected, dialogues/min, tokens/s and ETA. A run with nothing to do draws
    no bar (the log line before it says so)."""

    def __init__(self, total: int, name: str) -> None:
        self.bar = tqdm(total=total, desc=f"generate {name}", unit="dialogue", dynamic_ncols=True, disable=not total)
        self.start = time.monotonic()
        self.requests = self.accepted = self.rejected = self.failed = self.tokens = 0
        self.reasons: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()  # transient faults retried, by type (MalformedAnswerError, ...)

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
                "rejection_reasons": dict(sorted(self.reasons.items())),
                "retried_faults": dict(sorted(self.retried.items()))}


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
        self.format = str(cfg.prompt.format)  # "lines" (the paper's) or "json" (erc.generation.json_output)
        self.retry = RetryPolicy.from_config(cfg.llm, backend)
        self.setup = {"backend": backend.kind, "model": provenance["model"], "template_hash": self.template.hash,
                      "parameters": self.parameters, "constrained": backend.sampling.constrained,
                      "grammar": OmegaConf.to_container(cfg.sampling.grammar) if backend.sampling.constrained else None,
                      "benchmark": self.benchmark, "mode": cfg.prompt.mode, "seed": int(cfg.seed)}
        # The route only on the chat route, where the server applies the model's template and the client-side
        # chat_template is not used: the setup hash of a completions-route (or TGI, embedded) store stays what it was.
        if backend.route == "chat":
            self.setup["route"] = "chat"
        else:
            self.setup.update(chat_template_setup(cfg.llm))  # auto: also the tokenizer and its template's hash
        if self.format == "json":  # only then: the setup hash of a store of lines stays what it was
            self.setup.update(format="json", grammar=OmegaConf.to_container(cfg.sampling.grammar))
        self.setup_hash = canonical_hash(self.setup, 16)
        if self.setup["grammar"] and self.setup["grammar"]["no_label_counting"]:
            if self.format == "json":
                backend.lost.append("sampling.grammar.no_label_counting (a JSON schema cannot express it)")
            elif not backend.speaks_gbnf:
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

    def _fingerprint(self, job_prompt: Prompt, seed: int, constraint: Constraint | None) -> str:
        return fingerprint(backend=self.backend.kind, model=self.provenance["model"],
                           template_hash=self.template.hash, prompt=job_prompt, parameters=self.parameters,
                           seed=seed, grammar=constraint.identity() if constraint else None,
                           route=self.backend.route)

    def plan(self) -> tuple[list[Job], int, int]:
        """The jobs still to run, how many slots are already finished, and how many of the jobs are
        slots reopened because no answer so far held a dialogue."""
        gen = self.cfg.benchmark.generation
        jobs, finished, reopened = [], 0, 0
        for index in range(int(self.cfg.n_dialogues)):
            spec = plan_dialogue(index, seed=int(self.cfg.seed), mode=self.cfg.prompt.mode, labels=self.labels,
                                 speaker_pool=list(gen.speaker_pool),
                                 speakers_per_dialogue=list(gen.speakers_per_dialogue))
            user = render_user_prompt(self.template, spec, participants=gen.participants, labels=self.labels)
            prompt = self.backend.prompt(user, self.cfg.prompt.get("system"))
            constraint: Constraint | None = None
            g = self.cfg.sampling.grammar
            if self.format == "json":  # the schema, whether sampling.constrained or not: it is the format
                constraint = dialogue_schema(spec.speakers, self.labels, self.rules.min_turns, int(g.max_turns),
                                             int(g.max_utterance_chars))
            elif self.backend.sampling.constrained:
                constraint = DialogueGrammar(spec.speakers, len(self.labels), self.rules.min_turns,
                                             int(g.max_turns), int(g.max_utterance_chars), bool(g.no_label_counting))
            attempts = self._attempts_to_run(index, prompt, constraint)
            if attempts is None:
                finished += 1
            else:
                jobs.append(Job(spec, prompt, constraint, *attempts))
                reopened += attempts[0] >= self.max_attempts
        return jobs, finished, reopened

    def _attempts_to_run(self, index: int, prompt: Prompt, constraint: Constraint | None) -> tuple[int, int] | None:
        """``(first, end)`` attempts slot ``index`` still needs, or None when it is finished.

        Attempts come in rounds of ``max_attempts``. A slot is finished by an accepted attempt, or by a
        complete round when some answer held a dialogue (rejected for its content: the model had its
        chances). When no answer held one, a complete round opens the next round."""
        made, dialogue_seen = 0, False
        while (done := self.store.by_fingerprint.get(
                self._fingerprint(prompt, self._seed(index, made), constraint))) is not None:
            if done["status"] == "accepted":
                return None
            dialogue_seen |= NO_DIALOGUE not in done["reasons"]
            made += 1
        if made and made % self.max_attempts == 0:
            return None if dialogue_seen else (made, made + self.max_attempts)
        return made, (made // self.max_attempts + 1) * self.max_attempts

    def _seed(self, index: int, attempt: int) -> int:
        return derive_seed(self.base_seed, index, attempt)

    async def run_job(self, job: Job, progress: Progress) -> None:
        """Ask for one slot's dialogue, re-asking with the next derived seed until accepted."""
        accepted = False
        for attempt in range(job.first_attempt, job.end_attempt):
            seed = self._seed(job.spec.index, attempt)
            started = time.monotonic()
            completion = await with_retries(self.backend.complete, job.prompt, seed, job.constraint, policy=self.retry,
                                            what=f"dialogue {job.spec.index}", failures=progress.retried)
            latency = time.monotonic() - started
            parsed = validate(completion.text, truncated=completion.truncated, benchmark=self.benchmark,
                              labels=self.labels, speakers=list(job.spec.speakers), target=job.spec.target,
                              rules=self.rules, format=self.format)
            self.store.append({
                "fingerprint": self._fingerprint(job.prompt, seed, job.constraint), "setup_hash": self.setup_hash,
                "dialogue": job.spec.index, "attempt": attempt, "seed": seed, "benchmark": self.benchmark,
                "mode": self.mode, "format": self.format, "target": job.spec.target,
                "speakers": list(job.spec.speakers),
                "template_hash": self.template.hash, "backend": self.backend.kind, "model": self.provenance["model"],
                "route": self.backend.route, "constrained": job.constraint is not None, "prompt": job.prompt,
                "text": completion.text,
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
        progress = Progress(len(jobs), Path(self.cfg.out_dir).name)
        try:
            await run_workers(jobs, lambda job: self.run_job(job, progress), int(self.cfg.llm.concurrency))
        finally:
            progress.bar.close()
            self.store.close()
        return progress.summary()


async def run_workers(jobs: list[Any], run_one: Callable[[Any], Awaitable[None]], concurrency: int) -> None:
    """Run ``run_one(job)`` for every job on ``concurrency`` workers (bounded requests in flight); shared by
    generation and the judge. The first :class:`GenerationError` or :class:`FatalRequestError` stops new jobs;
    jobs in flight still finish (and store their answers), then the error is raised."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for job in jobs:
        queue.put_nowait(job)
    errors: list[BaseException] = []

    async def worker() -> None:
        while not errors and not queue.empty():
            job = queue.get_nowait()
            try:
                await run_one(job)
            except (GenerationError, FatalRequestError) as err:
                errors.append(err)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(jobs))))))
    if errors:
        raise errors[0] if isinstance(errors[0], GenerationError) else GenerationError(str(errors[0]))


async def run_requests(cfg: DictConfig) -> dict[str, Any]:
    """Generate every missing request of ``cfg`` into ``<out_dir>/requests.jsonl``. A run with nothing
    to do leaves ``runs.jsonl`` as it was, so a rerun changes no file."""
    out_dir = Path(cfg.out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    sampling = Sampling.from_config(cfg.sampling, template_stop(cfg.llm))
    backend = make_backend(cfg.llm, sampling)
    warn_lost(backend.kind, backend.lost)
    started = time.time()
    run: dict[str, Any] = {"started_at": started, "n_dialogues": int(cfg.n_dialogues), "route": backend.route,
                           "concurrency": int(cfg.llm.concurrency), "not_honoured": backend.lost}
    try:
        provenance = await with_retries(backend.start, policy=RetryPolicy.from_config(cfg.llm, backend),
                                        what=f"{backend.kind} backend")
        generator = Generator(cfg, backend, provenance)
        jobs, finished, reopened = generator.plan()
        run.update(provenance=provenance, setup=generator.setup, setup_hash=generator.setup_hash,
                   slots_already_finished=finished, slots_to_run=len(jobs), slots_reopened=reopened)
        log.info("%s: %d dialogue slot(s) finished before, %d to run", out_dir, finished, len(jobs))
        if reopened:
            log.warning("%s: %d slot(s) got no dialogue in any earlier answer (empty or prose only) and are asked "
                        "again with new seeds", out_dir, reopened)
        run.update(await generator.run(jobs))
    except BaseException as err:
        run["error"] = f"{type(err).__name__}: {err}"
        raise
    finally:
        await backend.close()
        run["finished_at"] = time.time()
        if run.get("slots_to_run") != 0:
            append_jsonl(out_dir / "runs.jsonl", run)
    return run


# A run keeping fewer dialogues than this share of n_dialogues is reported as a warning.
LOW_YIELD = 0.5


def check_yield(cfg: DictConfig, card: dict[str, Any]) -> None:
    """Say when a run kept far fewer dialogues than asked (a warning with the rejection counts) and
    stop with :class:`GenerationError` when it kept none: a silent exit 0 with an empty set sends the
    user on to training. Mostly truncated answers name ``sampling.max_new_tokens``."""
    kept, asked, requests = card["counts"]["kept"], int(cfg.n_dialogues), card["counts"]["requests"]
    rejections = card["rejections"]
    truncated = rejections.get("truncated", 0)
    if truncated * 2 >= requests > 0:
        log.warning("%s: %d of %d answers were cut by the token limit (finish_reason=length): raise "
                    "sampling.max_new_tokens (now %d)", cfg.out_dir, truncated, requests,
                    int(cfg.sampling.max_new_tokens))
    summary = (f"{cfg.out_dir}: {kept} of {asked} dialogues kept from {requests} requests; rejected requests by "
               f"reason: {json.dumps(rejections)}, duplicates removed: {json.dumps(card['counts']['duplicates_removed'])}")
    if kept == 0:
        hint = (f" Most answers were cut by the token limit: raise sampling.max_new_tokens (now "
                f"{int(cfg.sampling.max_new_tokens)})." if truncated * 2 >= requests else
                " See the rejected answers in requests.jsonl (field 'reasons').")
        raise GenerationError(f"no dialogue kept. {summary}.{hint}")
    if kept < LOW_YIELD * asked:
        log.warning("far fewer dialogues than asked: %s", summary)


def generate(cfg: DictConfig) -> dict[str, Any]:
    """Generate the dataset of ``cfg`` (``conf/generate.yaml``), then post-process it.
    With ``postprocess_only`` no LLM is called: parsing, dedup, split and export are redone from
    ``requests.jsonl``. Every setting is checked first, then ``out_dir`` is locked for this process
    (a second ``generate`` on it is refused, naming this one's pid and host). Returns the run's
    figures and the post-processing summary; raises :class:`GenerationError` when no dialogue was kept."""
    check_generation_config(cfg)
    check_judge_config(cfg)
    result: dict[str, Any] = {}
    with FolderLock(cfg.out_dir, what="generate.py"):
        if not cfg.postprocess_only:
            result["generation"] = asyncio.run(run_requests(cfg))
        result.update(postprocess(cfg, ask_judge=not cfg.postprocess_only))
    check_yield(cfg, result)
    return result
