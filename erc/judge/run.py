"""Asking the judge, resumably and concurrently, exactly as generation asks the generator.

Each kept dialogue is a slot with a fixed question (its judge prompt) and derived seeds, one per attempt
(``derive_seed(judge.seed, dialogue, attempt)``); an answer without one label per utterance is re-asked with the
next seed, up to ``judge.max_attempts``. Every answer is appended, raw and flushed, to its own store,
``<out_dir>/judge/requests.jsonl`` (:class:`erc.generation.store.RequestStore`: one fingerprint per request, a torn
last line cut off), so a SIGKILL loses at most the requests in flight and a rerun asks nothing already answered.
Answers are found again by question (the hash of the judge prompt) and attempt under the judge's setup (backend,
model, template, parameters, constraint, chat template, seed); a store made with another setup is refused, as
generation refuses one, rather than mixed in. Without asking (``postprocess_only=true``) only stored answers are
read: the setup's model is the one the stored records name.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf
from tqdm.auto import tqdm

from erc.data.labels import label_set
from erc.data.schema import Dialogue
from erc.generation.backends import Backend, make_backend
from erc.generation.chat_templates import chat_template_setup
from erc.generation.dialects import template_stop
from erc.generation.pipeline import GenerationError, RetryPolicy, run_workers, with_retries
from erc.generation.sampling import Sampling, derive_seed, warn_lost
from erc.generation.store import RequestStore, canonical_hash, fingerprint, read_records
from erc.io import append_jsonl
from erc.judge.checks import judge_llm_config, load_judge_template, public_judge_llm
from erc.judge.export import judge_folder
from erc.judge.prompt import answer_schema, judge_prompt, parse_answer

log = logging.getLogger(__name__)


@dataclass
class Slot:
    """One dialogue to judge: its question and the attempts still to make (``first`` up to ``end``)."""

    dialogue: Dialogue
    user: str
    question: str
    first: int
    end: int


@dataclass
class Judgement:
    """What the judge said of a set: per dialogue id the judged labels (dialogues without a usable answer are
    absent), how many dialogues are unjudged (never asked, or asked ``max_attempts`` times without one label per
    utterance), and the facts the card records."""

    labels: dict[str, list[str]] = field(default_factory=dict)
    unjudged: int = 0
    failed: int = 0
    facts: dict[str, Any] = field(default_factory=dict)


class Judge:
    """The judge of one generated set (see the module docstring)."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.llm = judge_llm_config(cfg)
        self.labels = label_set(cfg.benchmark.name)
        self.template = load_judge_template(cfg.judge.template)
        sampling = Sampling.from_config(cfg.judge.sampling, template_stop(self.llm))
        self.backend: Backend = make_backend(self.llm, sampling)
        self.constrained = bool(cfg.judge.sampling.constrained)
        self.seed, self.max_attempts = int(cfg.judge.seed), int(cfg.judge.max_attempts)
        self.folder = judge_folder(cfg.out_dir)
        self.store_path = self.folder / "requests.jsonl"
        self.store: RequestStore | None = None

    def setup(self, model: str | None) -> dict[str, Any]:
        """What makes two answers comparable: changing any of it asks a different judge (``model`` None: not
        known yet, no answer stored)."""
        return {"backend": self.backend.kind, "model": model, "template_hash": self.template.hash,
                "parameters": self.backend.request_parameters(), "constrained": self.constrained,
                **chat_template_setup(self.llm), "route": self.backend.route,
                "benchmark": str(self.cfg.benchmark.name), "seed": self.seed}

    def _refuse_other_setups(self, records: list[dict[str, Any]], setup_hash: str) -> None:
        others = Counter(r.get("setup_hash") for r in records if r.get("setup_hash") != setup_hash)
        if others:
            raise GenerationError(
                f"{self.store_path} holds {sum(others.values())} judge answer(s) made with other judge settings "
                f"(setup {', '.join(map(str, others))}, now {setup_hash}: judge.llm, judge.sampling, judge.template "
                f"or judge.seed changed; see {self.folder / 'runs.jsonl'}). Mixing them would mix two judges: set "
                f"the judge back, or move {self.folder} away to judge again with the new settings.")

    def _by_question(self, records: list[dict[str, Any]]) -> dict[tuple[str, int], dict[str, Any]]:
        return {(r["question"], r["attempt"]): r for r in records}

    def plan(self, dialogues: list[Dialogue], records: list[dict[str, Any]]
             ) -> tuple[list[Slot], dict[str, list[str]], int]:
        """The slots still to ask, the labels already answered, and how many dialogues used up their attempts."""
        asked = self._by_question(records)
        slots, answered, failed = [], {}, 0
        for dialogue in dialogues:
            user = judge_prompt(self.template, dialogue, self.labels)
            question = canonical_hash(user)
            made, judged = 0, None
            while judged is None and (record := asked.get((question, made))) is not None:
                judged = parse_answer(record["text"], self.labels, len(dialogue))[0]
                made += 1
            if judged is not None:
                answered[dialogue.id] = judged
            elif made >= self.max_attempts:
                failed += 1
            else:
                slots.append(Slot(dialogue, user, question, made, self.max_attempts))
        return slots, answered, failed

    def stored(self, dialogues: list[Dialogue]) -> Judgement:
        """The judgement from stored answers only (no request)."""
        records = read_records(self.store_path)
        if not records:
            return Judgement(unjudged=len(dialogues), facts=self._facts([], self.setup(None)))
        # The setup of the stored answers, computed with the model they name: equal to the records' only when
        # no judge setting changed since.
        known = {canonical_hash(self.setup(m), 16): m for m in sorted({r["model"] for r in records})}
        stored_hashes = {r.get("setup_hash") for r in records}
        setup_hash = next((h for h in known if h in stored_hashes), next(iter(known)))
        self._refuse_other_setups(records, setup_hash)
        model = known[setup_hash]
        slots, answered, failed = self.plan(dialogues, records)
        return Judgement(answered, unjudged=len(slots) + failed, failed=failed,
                         facts=self._facts(records, self.setup(model)))

    async def ask(self, dialogues: list[Dialogue]) -> Judgement:
        """Ask for every dialogue not answered yet, then return the judgement."""
        self.folder.mkdir(parents=True, exist_ok=True)
        warn_lost(self.backend.kind, self.backend.lost)
        policy = RetryPolicy.from_config(self.llm, self.backend)
        run: dict[str, Any] = {"started_at": time.time(), "dialogues": len(dialogues),
                               "concurrency": int(self.llm.concurrency), "not_honoured": self.backend.lost}
        try:
            provenance = await with_retries(self.backend.start, policy=policy, what=f"judge {self.backend.kind}")
            setup = self.setup(provenance["model"])
            setup_hash = canonical_hash(setup, 16)
            self.store = RequestStore(self.store_path)
            self._refuse_other_setups(self.store.records, setup_hash)
            slots, _, failed_before = self.plan(dialogues, self.store.records)
            run.update(provenance=provenance, setup=setup, setup_hash=setup_hash, slots_to_run=len(slots))
            log.info("%s: %d dialogue(s) judged before, %d to judge", self.folder, len(dialogues) - len(slots),
                     len(slots))
            run.update(await self._run(slots, setup_hash, provenance["model"], policy))
        except BaseException as err:
            run["error"] = f"{type(err).__name__}: {err}"
            raise
        finally:
            await self.backend.close()
            if self.store is not None:
                self.store.close()
            run["finished_at"] = time.time()
            if run.get("slots_to_run") != 0:
                append_jsonl(self.folder / "runs.jsonl", run)
        records = read_records(self.store_path)
        slots, answered, failed = self.plan(dialogues, records)
        return Judgement(answered, unjudged=len(slots) + failed, failed=failed,
                         facts=self._facts(records, setup))

    async def _run(self, slots: list[Slot], setup_hash: str, model: str, policy: RetryPolicy) -> dict[str, Any]:
        parameters = self.backend.request_parameters()
        bar = tqdm(total=len(slots), desc=f"judge {Path(self.cfg.out_dir).name}", unit="dialogue",
                   dynamic_ncols=True, disable=not slots)
        counts: Counter[str] = Counter()
        retried: Counter[str] = Counter()

        async def judge_one(slot: Slot) -> None:
            assert self.store is not None
            prompt = self.backend.prompt(slot.user)
            n = len(slot.dialogue)
            constraint = answer_schema(self.labels, n) if self.constrained else None
            index = int(slot.dialogue.meta["dialogue"])
            for attempt in range(slot.first, slot.end):
                seed = derive_seed(self.seed, index, attempt)
                started = time.monotonic()
                completion = await with_retries(self.backend.complete, prompt, seed, constraint, policy=policy,
                                                what=f"judge {slot.dialogue.id}", failures=retried)
                judged, reason = parse_answer(completion.text, self.labels, n)
                self.store.append({
                    "fingerprint": fingerprint(backend=self.backend.kind, model=model,
                                               template_hash=self.template.hash, prompt=prompt,
                                               parameters=parameters, seed=seed,
                                               grammar=constraint.identity() if constraint else None,
                                               route=self.backend.route),
                    "setup_hash": setup_hash, "question": slot.question, "dialogue_id": slot.dialogue.id,
                    "dialogue": index, "attempt": attempt, "seed": seed, "utterances": n,
                    "backend": self.backend.kind, "model": model, "constrained": constraint is not None,
                    "prompt": prompt, "text": completion.text, "finish_reason": completion.finish_reason,
                    "generated_tokens": completion.generated_tokens, "replica": completion.replica,
                    "latency_s": round(time.monotonic() - started, 4), "finished_at": time.time(),
                    "status": "answered" if judged else "rejected", "reason": reason})
                counts["requests"] += 1
                counts["answered" if judged else reason or "rejected"] += 1
                if judged:
                    break
            bar.update(1)

        started = time.monotonic()
        try:
            await run_workers(slots, judge_one, int(self.llm.concurrency))
        finally:
            bar.close()
        return {**dict(counts), "retried_faults": dict(sorted(retried.items())),
                "wall_s": round(time.monotonic() - started, 3)}

    def _facts(self, records: list[dict[str, Any]], setup: dict[str, Any]) -> dict[str, Any]:
        """The card's record of the judge: its server, model, sampling and how many requests it took (the same
        whether the answers were just asked or read back, so a rerun leaves the card as it was)."""
        return {"llm": public_judge_llm(self.llm), "model": setup["model"],
                "parameters_sent": setup["parameters"], "not_honoured": list(self.backend.lost),
                "constrained": self.constrained, "template": {"path": str(self.cfg.judge.template),
                                                              "hash": self.template.hash},
                "sampling": OmegaConf.to_container(self.cfg.judge.sampling, resolve=True), "seed": self.seed,
                "max_attempts": self.max_attempts, "requests": len(records),
                "rejections": dict(sorted(Counter(r["reason"] for r in records if r.get("reason")).items()))}


def judge_set(cfg: DictConfig, dialogues: list[Dialogue], ask: bool) -> Judgement:
    """Judge ``dialogues`` (the kept dialogues of ``cfg.out_dir``); ``ask=False`` reads stored answers only."""
    judge = Judge(cfg)
    judgement = asyncio.run(judge.ask(dialogues)) if ask else judge.stored(dialogues)
    if judgement.unjudged:
        log.warning("%s: %d of %d dialogue(s) have no judge answer: %d after judge.max_attempts=%d answers without "
                    "one label per utterance (raise it to ask again), %d not asked yet (rerun without "
                    "postprocess_only=true)", judge.folder, judgement.unjudged, len(dialogues), judgement.failed,
                    judge.max_attempts, judgement.unjudged - judgement.failed)
    return judgement
