"""The resumable runner every LLM task runs on, and the contract a task fills in.

A *task* (the dialogue generator, the blind judge) says what it asks: its slots, each a prompt with an output
constraint and a range of attempts, the seed of each attempt, how an answer is judged, and what makes two runs the
same run (its *setup*). The runner does the rest, the same way for every task:

- starts the backend (retried as any request), computes the setup hash and refuses a store made with another setup
  rather than mixing two experiments in one file;
- asks the task which slots are still open in its store, so a rerun sends nothing already answered;
- runs the slots on ``<key>.concurrency`` workers, their requests gated by the adaptive window and the published
  limits (:mod:`erc.llm.ratelimit`), each attempt retried on transient faults (:func:`erc.llm.retry.with_retries`)
  and appended raw, with one record shape and the server's token counts, to the task's append-only
  ``requests.jsonl`` (:class:`erc.llm.store.RequestStore`) as soon as it is answered;
- draws one progress bar (with the tokens, and the cost so far and projected where ``<key>.price`` is given) and
  writes one line per run that had work to ``runs.jsonl``: when its slots are planned (so a run killed by SIGKILL
  still leaves its line, ``status: running``), completed in place at its end (``complete`` or ``failed``, with its
  totals).
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from abc import ABC, abstractmethod
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig
from tqdm.auto import tqdm

from erc.io import read_jsonl, write_jsonl_atomic
from erc.llm.backends import Backend, FatalRequestError, make_backend
from erc.llm.backends.base import Completion, EmptyAnswerError, Prompt
from erc.llm.dialects import template_stop
from erc.llm.grammar import Constraint
from erc.llm.ratelimit import AdaptiveLimiter
from erc.llm.retry import LLMRunError, RetryPolicy, with_retries
from erc.llm.sampling import Sampling, warn_lost
from erc.llm.store import RequestStore, canonical_hash, fingerprint
from erc.llm.usage import Prices

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """One thing a task asks for: ``prompt`` under ``constraint``, attempts ``first`` up to (not including)
    ``end``; ``item`` is the task's own (a dialogue plan, a dialogue to judge)."""

    item: Any
    prompt: Prompt
    constraint: Constraint | None
    first: int
    end: int


@dataclass
class Answer:
    """What a task makes of one completion: accepted or not, why not (``reasons``, counted on the bar and in the
    run log), and its own fields for the record."""

    accepted: bool
    reasons: list[str] = field(default_factory=list)
    fields: dict[str, Any] = field(default_factory=dict)


@dataclass
class Plan:
    """The slots still open, how many were finished before, and how many of the open ones were reopened (asked
    again after a full round of attempts that all failed for reasons outside the model's answer)."""

    slots: list[Slot]
    finished: int
    reopened: int = 0


class Task(ABC):
    """One kind of LLM work on the runner (see the module docstring)."""

    #: The task's name on the progress bar, in log lines and in ``runs.jsonl``.
    name: str = ""
    #: The config node of its server (``llm``, ``judge.llm``): every message names its keys under it.
    key: str = "llm"
    #: Its error class: what the task's caller catches.
    error: type[LLMRunError] = LLMRunError
    #: How the refusal of a store with another setup reads: what a record is, which settings make the setup, what
    #: mixing them would do and how to go on.
    record_noun: str = "request"
    setup_settings: str = "settings"
    mixing: str = "make an incoherent result"

    def __init__(self, llm: DictConfig, sampling: DictConfig, folder: Path, template_hash: str) -> None:
        self.llm = llm
        self.sampling = sampling
        self.folder = Path(folder)
        self.template_hash = template_hash
        self.backend: Backend | None = None
        self.parameters: dict[str, Any] = {}  # the backend's request_parameters(), read once with the backend
        self.model = ""

    @property
    def store_path(self) -> Path:
        return self.folder / "requests.jsonl"

    @property
    def runs_path(self) -> Path:
        return self.folder / "runs.jsonl"

    def make_backend(self) -> Backend:
        """The backend of ``self.llm`` with this task's sampling."""
        self.backend = make_backend(self.llm, Sampling.from_config(self.sampling, template_stop(self.llm)), self.key)
        self.parameters = self.backend.request_parameters()
        return self.backend

    @abstractmethod
    def setup(self, model: str | None) -> dict[str, Any]:
        """What makes two answers comparable (its hash is in every record): backend, model, template, parameters,
        constraint, seed and whatever else the task's answers depend on. ``model`` None: not known yet."""

    @abstractmethod
    def plan(self, store: RequestStore) -> Plan:
        """The slots still to ask, given what ``store`` already holds."""

    @abstractmethod
    def seed(self, slot: Slot, attempt: int) -> int:
        """The seed of ``attempt`` at ``slot`` (derived, so a rerun sends the same requests)."""

    @abstractmethod
    def judge_answer(self, slot: Slot, completion: Completion) -> Answer:
        """Parse and judge one completion."""

    def slot_fields(self, slot: Slot, attempt: int) -> dict[str, Any]:
        """The task's fields that come first in each record (the slot's identity)."""
        return {}

    def describe(self, slot: Slot) -> str:
        """How log lines and errors name ``slot`` (e.g. ``dialogue 12``)."""
        return f"{self.name} {slot.item}"

    def run_facts(self) -> dict[str, Any]:
        """What the run log records of the task's request (e.g. how many slots were asked for)."""
        return {}

    def remedy(self) -> str:
        """How to go on when the store holds answers of another setup."""
        return f"choose another folder than {self.folder}, or move it away"

    def fingerprint(self, prompt: Prompt, seed: int, constraint: Constraint | None) -> str:
        """The identity of one request (see :func:`erc.llm.store.fingerprint`)."""
        assert self.backend is not None
        return fingerprint(backend=self.backend.kind, model=self.model, template_hash=self.template_hash,
                           prompt=prompt, parameters=self.parameters, seed=seed,
                           grammar=constraint.identity() if constraint else None, route=self.backend.route)

    def refuse_other_setups(self, records: list[dict[str, Any]], setup_hash: str) -> None:
        """Raise the task's error when ``records`` hold answers made with a setup other than ``setup_hash``."""
        others = Counter(r.get("setup_hash") for r in records if r.get("setup_hash") != setup_hash)
        if others:
            raise self.error(
                f"{self.store_path} holds {sum(others.values())} {self.record_noun}(s) made with other "
                f"{self.setup_settings} (setup {', '.join(map(str, others))}, now {setup_hash}: "
                f"{self.changed_settings()} changed; see {self.runs_path}). Mixing them would {self.mixing}: "
                f"{self.remedy()}.")

    def changed_settings(self) -> str:
        """The settings whose change makes another setup, as the user writes them."""
        return f"{self.key}.*, the sampling, the template or the seed"


class Progress:
    """Counts and a tqdm bar: accepted/rejected, slots/min, tokens/s, the request window, the cost so far and
    projected for the slots left (with prices), and the ETA. A run with nothing to do draws no bar (the log line
    before it says so)."""

    def __init__(self, total: int, desc: str, unit: str, prices: Prices | None = None,
                 limiter: AdaptiveLimiter | None = None) -> None:
        self.bar = tqdm(total=total, desc=desc, unit=unit, dynamic_ncols=True, disable=not total)
        self.start = time.monotonic()
        self.requests = self.accepted = self.rejected = self.failed = self.tokens = self.prompt_tokens = 0
        self.prices = prices or Prices()
        self.limiter = limiter
        self.reasons: Counter[str] = Counter()
        self.retried: Counter[str] = Counter()  # transient faults retried, by type (MalformedAnswerError, ...)

    def cost(self) -> float | None:
        return self.prices.cost(self.prompt_tokens, self.tokens)

    def projected_cost(self) -> float | None:
        """The cost of the whole run at the cost per slot so far (None before a slot is done or without prices)."""
        cost, done = self.cost(), self.bar.n
        return None if cost is None or not done else cost * self.bar.total / done

    def request_done(self, answer: Answer, completion: Completion) -> None:
        self.requests += 1
        self.tokens += completion.generated_tokens or 0
        self.prompt_tokens += completion.prompt_tokens or 0
        self.accepted += answer.accepted
        self.rejected += not answer.accepted
        self.reasons.update(answer.reasons)
        elapsed = max(time.monotonic() - self.start, 1e-9)
        postfix = {"accepted": self.accepted, "rejected": self.rejected,
                   "dlg_min": f"{60 * self.accepted / elapsed:.1f}", "tok_s": f"{self.tokens / elapsed:.0f}"}
        if self.limiter is not None:
            postfix["window"] = self.limiter.describe()
        cost, projected = self.cost(), self.projected_cost()
        if cost is not None:
            postfix["cost"] = f"${cost:.2f}" + (f"->${projected:.2f}" if projected is not None else "")
        self.bar.set_postfix(postfix)

    def slot_done(self, accepted: bool) -> None:
        self.failed += not accepted
        self.bar.update(1)

    def summary(self) -> dict[str, Any]:
        wall = time.monotonic() - self.start
        cost = self.cost()
        return {"requests": self.requests, "accepted": self.accepted, "rejected": self.rejected,
                "slots_failed": self.failed, "prompt_tokens": self.prompt_tokens, "generated_tokens": self.tokens,
                "cost_usd": None if cost is None else round(cost, 6), "wall_s": round(wall, 3),
                "dialogues_per_min": round(60 * self.accepted / wall, 2) if wall else None,
                "tokens_per_s": round(self.tokens / wall, 2) if wall else None,
                "rejection_reasons": dict(sorted(self.reasons.items())),
                "retried_faults": dict(sorted(self.retried.items())),
                **(self.limiter.summary() if self.limiter is not None else {})}


async def run_workers(items: list[Any], run_one: Callable[[Any], Awaitable[None]], concurrency: int,
                      error: type[LLMRunError] = LLMRunError) -> None:
    """Run ``run_one(item)`` for every item on ``concurrency`` workers (bounded requests in flight). The first
    :class:`LLMRunError` or :class:`FatalRequestError` stops new items; items in flight still finish (and store
    their answers), then the error is raised (as ``error`` when it was a refused request)."""
    queue: asyncio.Queue[Any] = asyncio.Queue()
    for item in items:
        queue.put_nowait(item)
    errors: list[BaseException] = []

    async def worker() -> None:
        while not errors and not queue.empty():
            item = queue.get_nowait()
            try:
                await run_one(item)
            except (LLMRunError, FatalRequestError) as err:
                errors.append(err)

    await asyncio.gather(*(worker() for _ in range(max(1, min(concurrency, len(items))))))
    if errors:
        raise errors[0] if isinstance(errors[0], LLMRunError) else error(str(errors[0]))


class Runner:
    """Runs one task against its server (see the module docstring)."""

    def __init__(self, task: Task, desc: str, unit: str = "dialogue") -> None:
        self.task = task
        self.desc = desc
        self.unit = unit
        self.store: RequestStore | None = None

    async def run(self) -> dict[str, Any]:
        """Ask every open slot of the task; returns the run's line of ``runs.jsonl`` (written only when the run
        had something to do, so a rerun with nothing to do changes no file)."""
        task = self.task
        task.folder.mkdir(parents=True, exist_ok=True)
        backend = task.backend or task.make_backend()
        warn_lost(backend.kind, backend.lost)
        policy = RetryPolicy.from_config(task.llm, backend, task.key, task.error)
        prices = Prices.from_config(task.llm, task.key)
        run: dict[str, Any] = {"run_id": uuid.uuid4().hex[:12], "status": "running", "task": task.name,
                               "started_at": time.time(), **task.run_facts(), "route": backend.route,
                               "concurrency": int(task.llm.concurrency), "not_honoured": backend.lost}
        if prices.given:
            run["prices"] = prices.to_dict()
        try:
            try:
                provenance = await with_retries(backend.start, policy=policy,
                                                what=f"{task.name} {backend.kind} backend")
            except FatalRequestError as err:  # e.g. nothing listening at the URL: one line, as from a request
                raise task.error(str(err)) from err
            task.model = provenance["model"]
            setup = task.setup(task.model)
            setup_hash = canonical_hash(setup, 16)
            self.store = RequestStore(task.store_path)
            task.refuse_other_setups(self.store.records, setup_hash)
            plan = task.plan(self.store)
            run.update(provenance=provenance, setup=setup, setup_hash=setup_hash,
                       slots_already_finished=plan.finished, slots_to_run=len(plan.slots),
                       slots_reopened=plan.reopened)
            log.info("%s: %d slot(s) finished before, %d to run", task.folder, plan.finished, len(plan.slots))
            if plan.reopened:
                log.warning("%s: %d slot(s) got no usable answer in a full round of attempts for reasons outside "
                            "the model's answer and are asked again with new seeds", task.folder, plan.reopened)
            if plan.slots:
                write_run_line(task.runs_path, run)   # before any request: a killed run still leaves its line
            run.update(await self._run_slots(plan.slots, setup_hash, policy, prices))
            run["status"] = "complete"
            if plan.slots:
                cost = "" if run.get("cost_usd") is None else f", ${run['cost_usd']:.4f}"
                log.info("%s: %s used %d prompt + %d completion tokens in %d requests%s", task.folder, task.name,
                         run["prompt_tokens"], run["generated_tokens"], run["requests"], cost)
        except BaseException as err:
            run.update(status="failed", error=f"{type(err).__name__}: {err}")
            raise
        finally:
            await backend.close()
            if self.store is not None:
                self.store.close()
            run["finished_at"] = time.time()
            if run.get("slots_to_run") != 0:
                write_run_line(task.runs_path, run)
        return run

    async def _run_slots(self, slots: list[Slot], setup_hash: str, policy: RetryPolicy, prices: Prices
                         ) -> dict[str, Any]:
        task, backend, store = self.task, self.task.backend, self.store
        assert backend is not None and store is not None
        limiter = AdaptiveLimiter.from_config(task.llm, task.key)
        progress = Progress(len(slots), self.desc, self.unit, prices, limiter)

        async def complete(prompt: Prompt, seed: int, constraint: Constraint | None) -> Completion:
            """The backend's completion, within the limiter's window and pace; a server's empty one is a fault to
            retry, not an attempt to store."""
            async with limiter.request() as permit:
                completion = await backend.complete(prompt, seed, constraint)
                permit.tokens = (completion.prompt_tokens or 0) + (completion.generated_tokens or 0)
                if backend.remote and not completion.text.strip():
                    raise EmptyAnswerError(completion.replica, completion.finish_reason)
                return completion

        async def run_slot(slot: Slot) -> None:
            accepted = False
            for attempt in range(slot.first, slot.end):
                seed = task.seed(slot, attempt)
                started = time.monotonic()
                completion = await with_retries(complete, slot.prompt, seed, slot.constraint, policy=policy,
                                                what=task.describe(slot), failures=progress.retried)
                latency = time.monotonic() - started
                answer = task.judge_answer(slot, completion)
                store.append({
                    "fingerprint": task.fingerprint(slot.prompt, seed, slot.constraint), "setup_hash": setup_hash,
                    **task.slot_fields(slot, attempt), "attempt": attempt, "seed": seed,
                    "template_hash": task.template_hash, "backend": backend.kind, "model": task.model,
                    "route": backend.route, "constrained": slot.constraint is not None, "prompt": slot.prompt,
                    "text": completion.text, "finish_reason": completion.finish_reason,
                    "prompt_tokens": completion.prompt_tokens, "generated_tokens": completion.generated_tokens,
                    "server_seed": completion.seed,
                    "replica": completion.replica, "latency_s": round(latency, 4), "finished_at": time.time(),
                    **answer.fields})
                progress.request_done(answer, completion)
                if answer.accepted:
                    accepted = True
                    break
            progress.slot_done(accepted)

        try:
            await run_workers(slots, run_slot, int(task.llm.concurrency), task.error)
        finally:
            progress.bar.close()
        return progress.summary()


def write_run_line(path: Path, run: dict[str, Any]) -> None:
    """Write ``run``'s line of ``runs.jsonl``: in place of the line with its ``run_id`` (its start), else at the
    end. The file is small (a line per run) and rewritten whole, atomically."""
    lines = read_jsonl(path) if path.is_file() else []
    at = next((i for i, line in enumerate(lines) if line.get("run_id") == run["run_id"]), len(lines))
    write_jsonl_atomic(path, [*lines[:at], run, *lines[at + 1:]])
