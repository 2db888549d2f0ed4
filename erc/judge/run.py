"""Asking the judge, resumably and concurrently, exactly as generation asks the generator.

Each kept dialogue is a slot with a fixed question (its judge prompt) and derived seeds, one per attempt
(``derive_seed(judge.seed, dialogue, attempt)``); an answer without one label per utterance is re-asked with the
next seed, up to ``judge.max_attempts``. Every answer is appended, raw and flushed, to its own store,
``<out_dir>/judge/requests.jsonl`` (:class:`erc.llm.store.RequestStore`: one fingerprint per request, a torn
last line cut off), so a SIGKILL loses at most the requests in flight and a rerun asks nothing already answered.
Answers are found again by question (the hash of the judge prompt) and attempt under the judge's setup (backend,
model, template, parameters, constraint, chat template, seed); a store made with another setup is refused, as
generation refuses one, rather than mixed in. Without asking (``postprocess_only=true``) only stored answers are
read: the setup's model is the one the stored records name.
"""

from __future__ import annotations

import asyncio
import logging
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erc.data.labels import label_set
from erc.data.schema import Dialogue
from erc.judge.checks import judge_llm_config, judge_llm_key, load_judge_template, public_judge_llm
from erc.judge.export import judge_folder
from erc.judge.prompt import answer_schema, judge_prompt, parse_answer
from erc.llm.backends.base import Completion
from erc.llm.chat_templates import chat_template_setup
from erc.llm.retry import LLMRunError
from erc.llm.runner import Answer, Plan, Runner, Slot, Task
from erc.llm.sampling import derive_seed
from erc.llm.store import RequestStore, canonical_hash, read_records

log = logging.getLogger(__name__)


@dataclass
class Judgement:
    """What the judge said of a set: per dialogue id the judged labels (dialogues without a usable answer are
    absent), how many dialogues are unjudged (never asked, or asked ``max_attempts`` times without one label per
    utterance), and the facts the card records."""

    labels: dict[str, list[str]] = field(default_factory=dict)
    unjudged: int = 0
    failed: int = 0
    facts: dict[str, Any] = field(default_factory=dict)


class JudgeError(LLMRunError):
    """The judge stopped: its server unreachable after all retries, a request it will never accept, or a store of
    judge answers made with other judge settings."""


class JudgeTask(Task):
    """The judge of one generated set (see the module docstring)."""

    name = "judge"
    error = JudgeError
    record_noun = "judge answer"
    setup_settings = "judge settings"
    mixing = "mix two judges"

    def __init__(self, cfg: DictConfig, dialogues: list[Dialogue]) -> None:
        self.template = load_judge_template(cfg.judge.template)
        self.key = judge_llm_key(cfg)
        super().__init__(judge_llm_config(cfg), cfg.judge.sampling, judge_folder(cfg.out_dir), self.template.hash)
        self.cfg = cfg
        self.dialogues = dialogues
        self.labels = label_set(cfg.benchmark.name)
        self.constrained = bool(cfg.judge.sampling.constrained)
        self.judge_seed, self.max_attempts = int(cfg.judge.seed), int(cfg.judge.max_attempts)
        self.make_backend()

    def run_facts(self) -> dict[str, Any]:
        return {"dialogues": len(self.dialogues)}

    def changed_settings(self) -> str:
        return f"{self.key}.*, judge.sampling, judge.template or judge.seed"

    def remedy(self) -> str:
        return f"set the judge back, or move {self.folder} away to judge again with the new settings"

    def describe(self, slot: Slot) -> str:
        return f"judge {slot.item[0].id}"

    def setup(self, model: str | None) -> dict[str, Any]:
        """What makes two answers comparable: changing any of it asks a different judge (``model`` None: not
        known yet, no answer stored). Unlike generation's, it always holds the route (the judge came after the
        chat route), so its keys stay those of the stores written so far."""
        assert self.backend is not None
        return {"backend": self.backend.kind, "model": model, "template_hash": self.template.hash,
                "parameters": self.parameters, "constrained": self.constrained,
                **chat_template_setup(self.llm), "route": self.backend.route,
                "benchmark": str(self.cfg.benchmark.name), "seed": self.judge_seed}

    def _walk(self, records: list[dict[str, Any]]) -> tuple[list[Slot], dict[str, list[str]], int]:
        """The slots still to ask, the labels already answered, and how many dialogues used up their attempts.
        Answers are found by question (the hash of the judge prompt) and attempt."""
        assert self.backend is not None
        asked = {(r["question"], r["attempt"]): r for r in records}
        slots, answered, failed = [], {}, 0
        for dialogue in self.dialogues:
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
                constraint = answer_schema(self.labels, len(dialogue)) if self.constrained else None
                slots.append(Slot((dialogue, question), self.backend.prompt(user), constraint, made,
                                  self.max_attempts))
        return slots, answered, failed

    def plan(self, store: RequestStore) -> Plan:
        slots, _, _ = self._walk(store.records)
        return Plan(slots, len(self.dialogues) - len(slots))

    def seed(self, slot: Slot, attempt: int) -> int:
        return derive_seed(self.judge_seed, int(slot.item[0].meta["dialogue"]), attempt)

    def slot_fields(self, slot: Slot, attempt: int) -> dict[str, Any]:
        dialogue, question = slot.item
        return {"question": question, "dialogue_id": dialogue.id, "dialogue": int(dialogue.meta["dialogue"]),
                "utterances": len(dialogue)}

    def judge_answer(self, slot: Slot, completion: Completion) -> Answer:
        judged, reason = parse_answer(completion.text, self.labels, len(slot.item[0]))
        return Answer(judged is not None, [] if judged else [reason or "rejected"],
                      {"status": "answered" if judged else "rejected", "reason": reason})

    def judgement(self, records: list[dict[str, Any]], model: str | None) -> Judgement:
        """The judgement ``records`` hold for the dialogues."""
        slots, answered, failed = self._walk(records)
        return Judgement(answered, unjudged=len(slots) + failed, failed=failed,
                         facts=self._facts(records, self.setup(model)))

    def stored(self) -> Judgement:
        """The judgement from stored answers only (no request)."""
        records = read_records(self.store_path)
        if not records:
            return Judgement(unjudged=len(self.dialogues), facts=self._facts([], self.setup(None)))
        # The setup of the stored answers, computed with the model they name: equal to the records' only when
        # no judge setting changed since.
        known = {canonical_hash(self.setup(m), 16): m for m in sorted({r["model"] for r in records})}
        stored_hashes = {r.get("setup_hash") for r in records}
        setup_hash = next((h for h in known if h in stored_hashes), next(iter(known)))
        self.refuse_other_setups(records, setup_hash)
        return self.judgement(records, known[setup_hash])

    async def ask(self) -> Judgement:
        """Ask for every dialogue not answered yet, then return the judgement."""
        await Runner(self, f"judge {Path(self.cfg.out_dir).name}").run()
        return self.judgement(read_records(self.store_path), self.model)

    def _facts(self, records: list[dict[str, Any]], setup: dict[str, Any]) -> dict[str, Any]:
        """The card's record of the judge: its server, model, sampling and how many requests it took (the same
        whether the answers were just asked or read back, so a rerun leaves the card as it was)."""
        assert self.backend is not None
        return {"llm": public_judge_llm(self.llm), "model": setup["model"],
                "parameters_sent": setup["parameters"], "not_honoured": list(self.backend.lost),
                "constrained": self.constrained, "template": {"path": str(self.cfg.judge.template),
                                                              "hash": self.template.hash},
                "sampling": OmegaConf.to_container(self.cfg.judge.sampling, resolve=True), "seed": self.judge_seed,
                "max_attempts": self.max_attempts, "requests": len(records),
                "rejections": dict(sorted(Counter(r["reason"] for r in records if r.get("reason")).items()))}


def judge_set(cfg: DictConfig, dialogues: list[Dialogue], ask: bool) -> Judgement:
    """Judge ``dialogues`` (the kept dialogues of ``cfg.out_dir``); ``ask=False`` reads stored answers only."""
    judge = JudgeTask(cfg, dialogues)
    judgement = asyncio.run(judge.ask()) if ask else judge.stored()
    if judgement.unjudged:
        log.warning("%s: %d of %d dialogue(s) have no judge answer: %d after judge.max_attempts=%d answers without "
                    "one label per utterance (raise it to ask again), %d not asked yet (rerun without "
                    "postprocess_only=true)", judge.folder, judgement.unjudged, len(dialogues), judgement.failed,
                    judge.max_attempts, judgement.unjudged - judgement.failed)
    return judgement
