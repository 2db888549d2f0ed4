"""The second step of post-processing: the kept dialogues written as a set (``dialogues.jsonl``,
``train/dev/test.jsonl``, ``utterances.parquet``) and the card's record of how they were made (generator, counts,
labels, rejections, throughput). The set is written before any optional step runs, so a failing judge or quality
report never costs the data. A set that kept no dialogue is not written at all (the card still says why)."""

from __future__ import annotations

import io
import json
import logging
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from erc.data.schema import SPLITS, Dialogue
from erc.data.sets import write_removed, write_set
from erc.io import write_if_changed
from erc.llm.sampling import deviations_from_table_ii
from erc.llm.usage import Prices, usage_totals
from erc.postprocess.build import BuiltSet

log = logging.getLogger(__name__)


def parquet_bytes(dialogues: list[Dialogue], labels: list[str]) -> bytes:
    """One row per utterance, the table shape pandas and datasets users expect."""
    rows = [{"dialogue_id": d.id, "split": d.split, "turn": i, "speaker": u.speaker, "text": u.text,
             "label": u.label, "label_id": labels.index(u.label), "sentiment": u.sentiment, "source": d.source,
             "target": d.meta["target"], "seed": d.meta["seed"], "fingerprint": d.meta["fingerprint"]}
            for d in dialogues for i, u in enumerate(d.utterances)]
    schema = pa.schema([("dialogue_id", pa.string()), ("split", pa.string()), ("turn", pa.int32()),
                        ("speaker", pa.string()), ("text", pa.string()), ("label", pa.string()),
                        ("label_id", pa.int32()), ("sentiment", pa.string()), ("source", pa.string()),
                        ("target", pa.string()), ("seed", pa.int64()), ("fingerprint", pa.string())])
    buffer = io.BytesIO()
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), buffer)
    return buffer.getvalue()


def label_counts(dialogues: list[Dialogue]) -> Counter[str]:
    """Utterances per label over ``dialogues``."""
    return Counter(u.label for d in dialogues for u in d.utterances)


def sizes(kept: list[Dialogue], labels: list[str]) -> dict[str, Any]:
    """The card's counts of ``kept`` (dialogues and utterances by split) and its label histogram."""
    counts = label_counts(kept)
    return {"counts": {"kept": len(kept), "dialogues": {s: sum(d.split == s for d in kept) for s in SPLITS},
                       "utterances": {s: sum(len(d) for d in kept if d.split == s) for s in SPLITS}},
            "labels": {label: counts.get(label, 0) for label in labels}}


def _throughput(out_dir: Path, records: list[dict[str, Any]]) -> dict[str, Any]:
    """The card's throughput, over every run of ``runs.jsonl`` (whose last full line also gives the setup)."""
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


def base_card(cfg: DictConfig, built: BuiltSet) -> dict[str, Any]:
    """The card before the optional steps add their sections."""
    records, kept = built.records, built.kept
    counted = sizes(kept, built.labels)
    throughput = _throughput(built.out_dir, records)
    last = throughput["last_run"] or {}
    first = records[0]
    return {
        "dataset": built.name, "benchmark": cfg.benchmark.name, "mode": cfg.prompt.mode, "created_at": time.time(),
        "generator": {
            "backend": first["backend"], "model": first["model"], "provenance": last.get("provenance", {}),
            "template": {"path": str(cfg.prompt.template), "hash": first["template_hash"], "reconstruction": True},
            "chat_template": last.get("setup", {}).get("chat_template"),
            "parameters_sent": last.get("setup", {}).get("parameters", {}),
            "not_honoured": last.get("not_honoured", []), "constrained": bool(first["constrained"]),
            "format": first.get("format", "lines"),
            "sampling": OmegaConf.to_container(cfg.sampling, resolve=True),
            "deviations_from_table_ii": deviations_from_table_ii(cfg.sampling), "seed": int(cfg.seed),
            "max_attempts": int(cfg.max_attempts)},
        "counts": {"requests": len(records), "dialogue_slots": len({r["dialogue"] for r in records}),
                   "accepted": len(built.found), "duplicates_removed": built.removed,
                   "decontaminated": len(built.decontaminated), "kept": len(kept),
                   "slots_without_dialogue": len(built.without_dialogue), **counted["counts"]},
        "labels": counted["labels"],
        "rejections": dict(sorted(built.reasons.items())),
        "throughput": throughput,
        "tokens": usage_totals(records, Prices.from_config(cfg.llm)),
        "validation": OmegaConf.to_container(cfg.validation, resolve=True),
        "dedup": OmegaConf.to_container(cfg.dedup, resolve=True), "split": built.ratios,
    }


def export_set(cfg: DictConfig, built: BuiltSet) -> dict[str, Any]:
    """Write the set of ``built`` (none when it kept no dialogue); returns the card's base."""
    if built.kept:
        write_set(built.out_dir, built.kept)
        write_if_changed(built.out_dir / "utterances.parquet", parquet_bytes(built.kept, built.labels))
    else:
        log.warning("%s: the export step kept no dialogue, so no set is written (see the rejections in card.json)",
                    built.out_dir)
    removed = built.out_dir / "removed.jsonl"
    if built.decontaminated:
        write_removed(built.out_dir, built.decontaminated)
    elif removed.is_file():
        removed.unlink()  # an earlier run's: this one removed nothing
    return base_card(cfg, built)
