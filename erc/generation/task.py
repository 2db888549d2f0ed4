"""The generator as a task on :mod:`erc.llm.runner`: ask the LLM for every dialogue still missing.

Dialogue ``k`` is a slot with a fixed prompt (speakers, balanced target) and a sequence of derived seeds, one per
attempt. A slot is finished when an attempt is accepted or ``max_attempts`` requests were made and at least one
answer held a dialogue. A slot whose answers held no dialogue at all (prose, or the embedded model's empty text: the
template or model was at fault, not the dialogue; a server's empty answer is retried as a fault, never stored) stays
open: the next run asks it ``max_attempts`` more times with the following
seeds. What is finished is read back from ``requests.jsonl`` by fingerprint, so rerunning the same command continues
where a crash stopped it and raising ``n_dialogues`` only adds slots.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from omegaconf import DictConfig, OmegaConf

from erc.data.labels import label_set
from erc.generation.json_output import dialogue_schema
from erc.generation.parsing import NO_DIALOGUE, Rules, validate
from erc.generation.prompts import DialogueSpec, plan_dialogue, render_user_prompt
from erc.llm.backends.base import Completion
from erc.llm.chat_templates import chat_template_setup
from erc.llm.grammar import Constraint, DialogueGrammar
from erc.llm.retry import LLMRunError
from erc.llm.runner import Answer, Plan, Runner, Slot, Task
from erc.llm.sampling import derive_seed
from erc.llm.store import RequestStore
from erc.llm.templates import load_template


class GenerationError(LLMRunError):
    """Generation stopped (server unreachable after all retries, a request it will never accept, a store made with
    other settings) or kept no dialogue."""


class GenerationTask(Task):
    """The dialogue generator of ``cfg`` (``conf/generate.yaml``)."""

    name = "generate"
    key = "llm"
    error = GenerationError
    setup_settings = "settings"
    mixing = "make an incoherent dataset"

    def __init__(self, cfg: DictConfig) -> None:
        self.template = load_template(cfg.prompt.template)
        super().__init__(cfg.llm, cfg.sampling, Path(cfg.out_dir), self.template.hash)
        self.cfg = cfg
        self.benchmark = str(cfg.benchmark.name)
        self.labels = label_set(self.benchmark)
        self.rules = Rules.from_config(cfg.validation)
        # Plain values for the per-request path (OmegaConf access is slow at hundreds of requests/s).
        self.base_seed, self.max_attempts, self.mode = int(cfg.seed), int(cfg.max_attempts), str(cfg.prompt.mode)
        self.format = str(cfg.prompt.format)  # "lines" (the paper's) or "json" (erc.generation.json_output)

    def run_facts(self) -> dict[str, Any]:
        return {"n_dialogues": int(self.cfg.n_dialogues)}

    def changed_settings(self) -> str:
        return "backend, model, template, sampling, seed or mode"

    def remedy(self) -> str:
        return "choose another out_dir or move the old one away"

    def describe(self, slot: Slot) -> str:
        return f"dialogue {slot.item.index}"

    def setup(self, model: str | None) -> dict[str, Any]:
        """The generation setup. Its keys are those of the stores written so far (so they stay resumable): the
        route only on the chat route, where the server applies the model's template; the client-side chat template
        otherwise; the format only for JSON output."""
        backend = self.backend
        assert backend is not None
        grammar = OmegaConf.to_container(self.cfg.sampling.grammar)
        setup: dict[str, Any] = {
            "backend": backend.kind, "model": model, "template_hash": self.template.hash,
            "parameters": self.parameters, "constrained": backend.sampling.constrained,
            "grammar": grammar if backend.sampling.constrained else None, "benchmark": self.benchmark,
            "mode": self.mode, "seed": self.base_seed}
        if backend.route == "chat":
            setup["route"] = "chat"
        else:
            setup.update(chat_template_setup(self.llm))  # auto: also the tokenizer and its template's hash
        if self.format == "json":
            setup.update(format="json", grammar=grammar)
        if setup["grammar"] and setup["grammar"]["no_label_counting"]:
            if self.format == "json":
                lost = "sampling.grammar.no_label_counting (a JSON schema cannot express it)"
            elif not backend.speaks_gbnf:
                lost = "sampling.grammar.no_label_counting (only GBNF, i.e. llama.cpp, expresses it)"
            else:
                lost = ""
            if lost and lost not in backend.lost:
                backend.lost.append(lost)
        return setup

    def plan(self, store: RequestStore) -> Plan:
        """The slots still to run, how many are finished, and how many of the open ones are reopened because no
        answer so far held a dialogue."""
        assert self.backend is not None
        gen = self.cfg.benchmark.generation
        g = self.cfg.sampling.grammar
        slots, finished, reopened = [], 0, 0
        for index in range(int(self.cfg.n_dialogues)):
            spec = plan_dialogue(index, seed=self.base_seed, mode=self.mode, labels=self.labels,
                                 speaker_pool=list(gen.speaker_pool),
                                 speakers_per_dialogue=list(gen.speakers_per_dialogue))
            user = render_user_prompt(self.template, spec, participants=gen.participants, labels=self.labels)
            prompt = self.backend.prompt(user, self.cfg.prompt.get("system"))
            constraint: Constraint | None = None
            if self.format == "json":  # the schema, whether sampling.constrained or not: it is the format
                constraint = dialogue_schema(spec.speakers, self.labels, self.rules.min_turns, int(g.max_turns),
                                             int(g.max_utterance_chars))
            elif self.backend.sampling.constrained:
                constraint = DialogueGrammar(spec.speakers, len(self.labels), self.rules.min_turns,
                                             int(g.max_turns), int(g.max_utterance_chars), bool(g.no_label_counting))
            slot = Slot(spec, prompt, constraint, 0, 0)
            attempts = self._attempts_to_run(store, slot)
            if attempts is None:
                finished += 1
            else:
                slot.first, slot.end = attempts
                slots.append(slot)
                reopened += slot.first >= self.max_attempts
        return Plan(slots, finished, reopened)

    def _attempts_to_run(self, store: RequestStore, slot: Slot) -> tuple[int, int] | None:
        """``(first, end)`` attempts ``slot`` still needs, or None when it is finished.

        Attempts come in rounds of ``max_attempts``. A slot is finished by an accepted attempt, or by a
        complete round when some answer held a dialogue (rejected for its content: the model had its
        chances). When no answer held one, a complete round opens the next round."""
        made, dialogue_seen = 0, False
        while (done := store.by_fingerprint.get(
                self.fingerprint(slot.prompt, self.seed(slot, made), slot.constraint))) is not None:
            if done["status"] == "accepted":
                return None
            dialogue_seen |= NO_DIALOGUE not in done["reasons"]
            made += 1
        if made and made % self.max_attempts == 0:
            return None if dialogue_seen else (made, made + self.max_attempts)
        return made, (made // self.max_attempts + 1) * self.max_attempts

    def seed(self, slot: Slot, attempt: int) -> int:
        return derive_seed(self.base_seed, slot.item.index, attempt)

    def slot_fields(self, slot: Slot, attempt: int) -> dict[str, Any]:
        spec: DialogueSpec = slot.item
        return {"dialogue": spec.index, "benchmark": self.benchmark, "mode": self.mode, "format": self.format,
                "target": spec.target, "speakers": list(spec.speakers)}

    def judge_answer(self, slot: Slot, completion: Completion) -> Answer:
        spec: DialogueSpec = slot.item
        parsed = validate(completion.text, truncated=completion.truncated, benchmark=self.benchmark,
                          labels=self.labels, speakers=list(spec.speakers), target=spec.target, rules=self.rules,
                          format=self.format)
        return Answer(parsed.accepted, parsed.reasons,
                      {"status": "accepted" if parsed.accepted else "rejected", "reasons": parsed.reasons})


def run_requests(cfg: DictConfig) -> dict[str, Any]:
    """Generate every missing request of ``cfg`` into ``<out_dir>/requests.jsonl``; returns the run's figures. A run
    with nothing to do leaves ``runs.jsonl`` as it was, so a rerun changes no file."""
    return asyncio.run(Runner(GenerationTask(cfg), f"generate {Path(cfg.out_dir).name}").run())
