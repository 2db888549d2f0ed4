"""The first step of post-processing: from ``requests.jsonl`` to the kept dialogues, with no LLM call and nothing
written. Re-parses every stored answer with the current parser (a better parser never needs new requests), keeps
each dialogue slot's first accepted attempt, removes duplicates, checks the rest for the benchmark's own lines
(removing those carrying a dev or test line: :mod:`erc.postprocess.decontaminate`) and splits by hashed id.
"""

from __future__ import annotations

import logging
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erc.data.dedup import deduplicate
from erc.data.labels import label_set, sentiment_of
from erc.data.schema import SPLITS, DataError, Dialogue, Utterance
from erc.generation.parsing import NO_DIALOGUE, Rules, validate
from erc.generation.split import assign_splits, check_ratios, dialogues_needed
from erc.llm.store import read_records
from erc.postprocess.decontaminate import decontaminate

log = logging.getLogger(__name__)


def _dialogue(record: dict[str, Any], turns: list[tuple[str, str, str]], benchmark: str, source: str) -> Dialogue:
    utterances = [Utterance(speaker=s, text=t, label=label, sentiment=sentiment_of(benchmark, label),
                            id=f"{benchmark}_{source}_{record['dialogue']:06d}_{i}")
                  for i, (s, t, label) in enumerate(turns)]
    meta = {key: record[key] for key in ("dialogue", "attempt", "seed", "target", "speakers", "fingerprint",
                                         "template_hash", "model", "finish_reason", "constrained")}
    return Dialogue(id=f"{benchmark}_{source}_{record['dialogue']:06d}", utterances=utterances,
                    benchmark=benchmark, split="", source=source, meta=meta)


def accepted_dialogues(records: list[dict[str, Any]], benchmark: str, source: str, rules: Rules
                       ) -> tuple[list[Dialogue], Counter[str], list[int]]:
    """Each slot's first accepted attempt under the current parser, in slot order, the rejection
    reasons over all records, and the slots none of whose answers held a dialogue (open: the next
    run asks them again)."""
    labels = label_set(benchmark)
    reasons: Counter[str] = Counter()
    without_dialogue: list[int] = []
    by_slot: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["benchmark"] != benchmark:
            raise DataError(f"request {record['fingerprint']} is for benchmark {record['benchmark']!r}, not "
                            f"{benchmark!r}: post-process with the generating run's benchmark")
        by_slot[record["dialogue"]].append(record)
    dialogues = []
    for slot in sorted(by_slot):
        chosen, dialogue_seen = None, False
        for record in sorted(by_slot[slot], key=lambda r: r["attempt"]):
            parsed = validate(record["text"], truncated=record["finish_reason"] == "length", benchmark=benchmark,
                              labels=labels, speakers=record["speakers"], target=record["target"], rules=rules,
                              format=record.get("format", "lines"))  # records from before JSON output: lines
            reasons.update(parsed.reasons)
            dialogue_seen |= NO_DIALOGUE not in parsed.reasons
            if parsed.accepted and chosen is None:
                chosen = _dialogue(record, parsed.turns, benchmark, source)
        if chosen is not None:
            dialogues.append(chosen)
        elif not dialogue_seen:
            without_dialogue.append(slot)
    return dialogues, reasons, without_dialogue


@dataclass
class BuiltSet:
    """What :func:`build` makes of ``requests.jsonl``: the kept dialogues (split) and the figures the card needs."""

    out_dir: Path
    records: list[dict[str, Any]]
    name: str
    labels: list[str]
    ratios: dict[str, float]
    found: list[Dialogue]
    reasons: Counter[str]
    without_dialogue: list[int]
    kept: list[Dialogue]
    removed: dict[str, int]
    contamination: dict[str, Any] | None = None   # the card's entry (None: not checked)
    decontaminated: list[dict[str, Any]] = field(default_factory=list)   # removed.jsonl's lines


def build(cfg: DictConfig) -> BuiltSet:
    """Parse, deduplicate and split the answers of ``cfg.out_dir``'s ``requests.jsonl`` (no file is written)."""
    out_dir = Path(cfg.out_dir)
    records = read_records(out_dir / "requests.jsonl")
    if not records:
        raise DataError(f"{out_dir / 'requests.jsonl'}: no generated requests to post-process; run "
                        f"`python generate.py` first")
    benchmark, source = cfg.benchmark.name, cfg.prompt.suffix
    ratios = check_ratios(cfg.split)
    found, reasons, without_dialogue = accepted_dialogues(records, benchmark, source,
                                                          Rules.from_config(cfg.validation))
    if without_dialogue:
        log.warning("%s: %d slot(s) got no dialogue in any answer (empty or prose only), e.g. %s: they stay open "
                    "and the next run of the same command asks them again with new seeds", out_dir,
                    len(without_dialogue), without_dialogue[:5])
    kept, removed = deduplicate(found, threshold=float(cfg.dedup.minhash_threshold),
                                num_perm=int(cfg.dedup.num_perm), shingle_words=int(cfg.dedup.shingle_words))
    clean = decontaminate(cfg, kept)
    kept = clean.kept
    splits = assign_splits([d.id for d in kept], ratios)
    for dialogue in kept:
        dialogue.split = splits[dialogue.id]
    if 0 < len(kept) < dialogues_needed(ratios):
        empty = [s for s in SPLITS if ratios[s] > 0 and s not in splits.values()]
        log.warning("%s: split(s) %s empty: %d dialogue(s) kept, %d needed for one in every split with a non-zero "
                    "ratio; raise n_dialogues or set those ratios to 0", out_dir, ", ".join(empty), len(kept),
                    dialogues_needed(ratios))
    return BuiltSet(out_dir, records, f"{benchmark}_{source}", label_set(benchmark), ratios, found, reasons,
                    without_dialogue, kept, removed, clean.entry, clean.removed)


