"""Post-processing: from ``requests.jsonl`` to a dataset, with no LLM call.

Re-parses every stored answer with the current parser (a better parser never needs new requests),
keeps each dialogue slot's first accepted attempt, removes duplicates, splits by hashed id, and
exports ``dialogues.jsonl``, ``train/dev/test.jsonl``, ``utterances.parquet``, the data card and
``label_distribution.png``. Rerunnable any time: ``python generate.py ... postprocess_only=true``.
"""

from __future__ import annotations

import json
import logging
import time
from collections import Counter, defaultdict
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl, write_dialogues_jsonl
from erc.data.labels import label_set, sentiment_of
from erc.data.load import load_benchmark
from erc.data.plots import plot_label_distribution
from erc.data.schema import SPLITS, DataError, Dialogue, Utterance
from erc.generation.card import write_card
from erc.generation.dedup import deduplicate
from erc.generation.parsing import Rules, validate
from erc.generation.sampling import deviations_from_table_ii
from erc.generation.split import assign_split, check_ratios
from erc.generation.store import read_records

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
                       ) -> tuple[list[Dialogue], Counter[str]]:
    """Each slot's first accepted attempt under the current parser, in slot order, and the
    rejection reasons over all records."""
    labels = label_set(benchmark)
    reasons: Counter[str] = Counter()
    by_slot: dict[int, list[dict[str, Any]]] = defaultdict(list)
    for record in records:
        if record["benchmark"] != benchmark:
            raise DataError(f"request {record['fingerprint']} is for benchmark {record['benchmark']!r}, not "
                            f"{benchmark!r}: post-process with the generating run's benchmark")
        by_slot[record["dialogue"]].append(record)
    dialogues = []
    for slot in sorted(by_slot):
        chosen = None
        for record in sorted(by_slot[slot], key=lambda r: r["attempt"]):
            parsed = validate(record["text"], truncated=record["finish_reason"] == "length", benchmark=benchmark,
                              labels=labels, speakers=record["speakers"], target=record["target"], rules=rules)
            reasons.update(parsed.reasons)
            if parsed.accepted and chosen is None:
                chosen = _dialogue(record, parsed.turns, benchmark, source)
        if chosen is not None:
            dialogues.append(chosen)
    return dialogues, reasons


def write_parquet(path: Path, dialogues: list[Dialogue], labels: list[str]) -> None:
    """One row per utterance, the table shape pandas and datasets users expect."""
    rows = [{"dialogue_id": d.id, "split": d.split, "turn": i, "speaker": u.speaker, "text": u.text,
             "label": u.label, "label_id": labels.index(u.label), "sentiment": u.sentiment, "source": d.source,
             "target": d.meta["target"], "seed": d.meta["seed"], "fingerprint": d.meta["fingerprint"]}
            for d in dialogues for i, u in enumerate(d.utterances)]
    schema = pa.schema([("dialogue_id", pa.string()), ("split", pa.string()), ("turn", pa.int32()),
                        ("speaker", pa.string()), ("text", pa.string()), ("label", pa.string()),
                        ("label_id", pa.int32()), ("sentiment", pa.string()), ("source", pa.string()),
                        ("target", pa.string()), ("seed", pa.int64()), ("fingerprint", pa.string())])
    tmp = path.with_name(f".{path.name}.tmp")
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), tmp)
    tmp.replace(path)


def _label_counts(dialogues: list[Dialogue]) -> Counter[str]:
    return Counter(u.label for d in dialogues for u in d.utterances)


def _reference_sets(cfg: DictConfig, benchmark: str, own: str, own_counts: Counter[str]) -> dict[str, Counter[str]]:
    """The reference benchmark (all splits, when its data is present) and every generated set of
    this benchmark found next to this one, for the Fig. 2 overlay."""
    sets: dict[str, Counter[str]] = {}
    try:
        sets[benchmark] = sum((_label_counts(load_benchmark(benchmark, s, cfg.paths.data_dir)) for s in SPLITS),
                              Counter())
    except DataError as err:
        log.warning("label_distribution.png without the reference %s: %s", benchmark, str(err).splitlines()[0])
    for source in ("nat", "bal"):
        name = f"{benchmark}_{source}"
        if name == own:
            sets[name] = own_counts
            continue
        path = Path(cfg.paths.synthetic_dir) / name / "dialogues.jsonl"
        if path.is_file():
            sets[name] = _label_counts(read_dialogues_jsonl(path, benchmark, "train", source))
    return sets


def _throughput(out_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    runs = []
    path = out_dir / "runs.jsonl"
    if path.is_file():
        runs = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]
    wall = sum(r.get("wall_s", 0) for r in runs)
    tokens = sum(r.get("generated_tokens") or 0 for r in records)
    return {"runs": len(runs), "wall_s": round(wall, 2), "requests": len(records), "generated_tokens": tokens,
            "mean_latency_s": round(sum(r["latency_s"] for r in records) / len(records), 3),
            "requests_per_min": round(60 * sum(r.get("requests", 0) for r in runs) / wall, 2) if wall else None,
            "tokens_per_s": round(sum(r.get("generated_tokens", 0) for r in runs) / wall, 2) if wall else None,
            "last_run": next((r for r in reversed(runs) if "setup" in r), None)}


def postprocess(cfg: DictConfig) -> dict[str, Any]:
    """Build the dataset of ``cfg.out_dir`` from its ``requests.jsonl``; returns the card."""
    out_dir = Path(cfg.out_dir)
    records = read_records(out_dir / "requests.jsonl")
    if not records:
        raise DataError(f"{out_dir / 'requests.jsonl'}: no generated requests to post-process; run "
                        f"`python generate.py` first")
    benchmark, source = cfg.benchmark.name, cfg.prompt.suffix
    name = f"{benchmark}_{source}"
    labels = label_set(benchmark)
    ratios = check_ratios(cfg.split)
    found, reasons = accepted_dialogues(records, benchmark, source, Rules.from_config(cfg.validation))
    kept, removed = deduplicate(found, threshold=float(cfg.dedup.minhash_threshold),
                                num_perm=int(cfg.dedup.num_perm), shingle_words=int(cfg.dedup.shingle_words))
    for dialogue in kept:
        dialogue.split = assign_split(dialogue.id, ratios)
    for split in SPLITS:
        if kept and ratios[split] > 0 and not any(d.split == split for d in kept):
            log.warning("%s: split %r is empty with %d dialogues; raise n_dialogues or the split ratios",
                        out_dir, split, len(kept))
    write_dialogues_jsonl(out_dir / "dialogues.jsonl", kept)
    for split in SPLITS:
        write_dialogues_jsonl(out_dir / f"{split}.jsonl", [d for d in kept if d.split == split])
    write_parquet(out_dir / "utterances.parquet", kept, labels)

    throughput = _throughput(out_dir, records)
    last = throughput["last_run"] or {}
    first = records[0]
    counts = _label_counts(kept)
    card = {
        "dataset": name, "benchmark": benchmark, "mode": cfg.prompt.mode, "created_at": time.time(),
        "generator": {
            "backend": first["backend"], "model": first["model"], "provenance": last.get("provenance", {}),
            "template": {"path": str(cfg.prompt.template), "hash": first["template_hash"], "reconstruction": True},
            "chat_template": last.get("setup", {}).get("chat_template"),
            "parameters_sent": last.get("setup", {}).get("parameters", {}),
            "not_honoured": last.get("not_honoured", []), "constrained": bool(first["constrained"]),
            "sampling": OmegaConf.to_container(cfg.sampling, resolve=True),
            "deviations_from_table_ii": deviations_from_table_ii(cfg.sampling), "seed": int(cfg.seed),
            "max_attempts": int(cfg.max_attempts)},
        "counts": {"requests": len(records), "dialogue_slots": len({r["dialogue"] for r in records}),
                   "accepted": len(found), "duplicates_removed": removed, "kept": len(kept),
                   "dialogues": {s: sum(d.split == s for d in kept) for s in SPLITS},
                   "utterances": {s: sum(len(d) for d in kept if d.split == s) for s in SPLITS}},
        "labels": {label: counts.get(label, 0) for label in labels},
        "rejections": dict(sorted(reasons.items())),
        "throughput": throughput,
        "validation": OmegaConf.to_container(cfg.validation, resolve=True),
        "dedup": OmegaConf.to_container(cfg.dedup, resolve=True), "split": ratios,
    }
    write_card(out_dir, card)
    plot_label_distribution(_reference_sets(cfg, benchmark, name, counts), labels,
                            f"Label distribution: {benchmark} and generated sets", out_dir / "label_distribution.png")
    log.info("%s: %d dialogues kept (%s)", out_dir, len(kept), card["counts"]["dialogues"])
    return card
