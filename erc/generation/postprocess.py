"""Post-processing: from ``requests.jsonl`` to a dataset, with no LLM call.

Re-parses every stored answer with the current parser (a better parser never needs new requests),
keeps each dialogue slot's first accepted attempt, removes duplicates, splits by hashed id, and
exports ``dialogues.jsonl``, ``train/dev/test.jsonl``, ``utterances.parquet``, the data card and
``label_distribution.png``, then scores the set against its benchmark (:mod:`erc.quality`: ``quality.md``,
``quality.json`` and PNGs, a summary in the card; ``quality.enabled=false`` skips it) and, with
``postprocess.filter=probe``, writes its filtered variant ``<out_dir>_probe`` with a card of its own. Rerunnable
any time: ``python generate.py ... postprocess_only=true``.

Two steps: :func:`build` (parse, deduplicate, split: nothing written) and :func:`export` (files, report, cards).
With ``judge=llm`` the blind LLM judge (:mod:`erc.judge`) runs between them, on the kept dialogues, so its
agreement reaches the card and the report, and ``judge.filter=true`` writes ``<out_dir>_judge``; it asks the LLM
only when :func:`postprocess` is told to (``generate.py`` without ``postprocess_only``), else it reads its stored
answers.

A file is written only when its bytes change, and the card's ``created_at`` alone never counts as a
change: a rerun with nothing new leaves every file (and its mtime) as it was, so whatever watches
the files (training job keys, make) sees no new data.
"""

from __future__ import annotations

import io
import json
import logging
import tempfile
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pyarrow as pa
import pyarrow.parquet as pq
from omegaconf import DictConfig, OmegaConf

from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl
from erc.data.labels import label_set, sentiment_of
from erc.data.load import load_benchmark
from erc.data.names import GENERATED_SOURCES, dataset_name
from erc.data.plots import plot_label_distribution
from erc.data.schema import SPLITS, DataError, Dialogue, Utterance
from erc.generation.card import readme_text
from erc.generation.dedup import deduplicate
from erc.generation.parsing import NO_DIALOGUE, Rules, validate
from erc.generation.sampling import deviations_from_table_ii
from erc.generation.split import assign_splits, check_ratios, dialogues_needed
from erc.generation.store import read_records
from erc.io import write_atomic

if TYPE_CHECKING:
    from erc.judge.run import Judgement
    from erc.quality import SetAssessment

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


def write_if_changed(path: Path, data: bytes) -> bool:
    """Write ``data`` to ``path`` (atomically) unless the file already holds exactly these bytes;
    True when it was written."""
    if path.is_file() and path.read_bytes() == data:
        return False
    write_atomic(path, lambda handle: handle.write(data), binary=True)
    return True


def jsonl_bytes(dialogues: list[Dialogue]) -> bytes:
    """The synthetic JSONL format (see :mod:`erc.data.formats.synthetic_jsonl`) as bytes."""
    return "".join(json.dumps(d.to_dict(), ensure_ascii=False) + "\n" for d in dialogues).encode()


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


def plot_bytes(sets: dict[str, Counter[str]], labels: list[str], title: str, folder: Path) -> bytes:
    """The label-distribution PNG as bytes (drawn into a temporary file of ``folder``)."""
    with tempfile.TemporaryDirectory(dir=folder, prefix=".plot.") as tmp:
        return plot_label_distribution(sets, labels, title, Path(tmp) / "plot.png").read_bytes()


def write_set(folder: Path, dialogues: list[Dialogue]) -> None:
    """A set's ``dialogues.jsonl`` (all, with their split) and ``train/dev/test.jsonl``."""
    write_if_changed(folder / "dialogues.jsonl", jsonl_bytes(dialogues))
    for split in SPLITS:
        write_if_changed(folder / f"{split}.jsonl", jsonl_bytes([d for d in dialogues if d.split == split]))


def write_card(out_dir: Path, card: dict[str, Any]) -> None:
    """``card.json`` and ``README.md``; when the card differs from the one on disk only in
    ``created_at``, the old card (and its date) stays."""
    path = out_dir / "card.json"
    try:
        old = json.loads(path.read_text(encoding="utf-8")) if path.is_file() else None
    except ValueError:
        old = None
    if isinstance(old, dict) and "created_at" in old and {**old, "created_at": card["created_at"]} == card:
        card = old
    write_if_changed(path, (json.dumps(card, indent=2, ensure_ascii=False) + "\n").encode())
    write_if_changed(out_dir / "README.md", readme_text(card).encode())


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
    for source in GENERATED_SOURCES:
        name = dataset_name(benchmark, source)
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


def _assess(cfg: DictConfig, out_dir: Path, kept: list[Dialogue]) -> SetAssessment:
    """The quality report and the filter (:func:`erc.quality.assess_generated_set`), when the set has dialogues
    and the config asks for either (a config without a ``quality`` node asks for neither)."""
    from erc.quality import SetAssessment, assess_generated_set   # imported here: scikit-learn, cleanlab, torch

    if not kept or "quality" not in cfg:
        return SetAssessment()
    return assess_generated_set(cfg, out_dir)


def _sizes(kept: list[Dialogue], labels: list[str]) -> dict[str, Any]:
    """The card's counts of ``kept`` (dialogues and utterances by split) and its label histogram."""
    counts = _label_counts(kept)
    return {"counts": {"kept": len(kept), "dialogues": {s: sum(d.split == s for d in kept) for s in SPLITS},
                       "utterances": {s: sum(len(d) for d in kept if d.split == s) for s in SPLITS}},
            "labels": {label: counts.get(label, 0) for label in labels}}


def filtered_card(card: dict[str, Any], name: str, kept: list[Dialogue], entry: dict[str, Any], labels: list[str],
                  **sections: Any) -> dict[str, Any]:
    """A filtered set's card: its unfiltered set's, with its own name, counts and labels, the filter's record
    ``entry`` (rule, what was removed: ``removed.jsonl``) and its own ``sections`` (quality, judge) where given;
    the unfiltered set's quality and judge figures are not its own and are left out."""
    sizes = _sizes(kept, labels)
    return {**{k: v for k, v in card.items() if k not in ("quality", "judge")}, "dataset": name,
            "counts": {**card["counts"], **sizes["counts"]}, "labels": sizes["labels"], "filter": entry,
            **{k: v for k, v in sections.items() if v}}


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
    splits = assign_splits([d.id for d in kept], ratios)
    for dialogue in kept:
        dialogue.split = splits[dialogue.id]
    if 0 < len(kept) < dialogues_needed(ratios):
        empty = [s for s in SPLITS if ratios[s] > 0 and s not in splits.values()]
        log.warning("%s: split(s) %s empty: %d dialogue(s) kept, %d needed for one in every split with a non-zero "
                    "ratio; raise n_dialogues or set those ratios to 0", out_dir, ", ".join(empty), len(kept),
                    dialogues_needed(ratios))
    return BuiltSet(out_dir, records, f"{benchmark}_{source}", label_set(benchmark), ratios, found, reasons,
                    without_dialogue, kept, removed)


def _card(cfg: DictConfig, built: BuiltSet) -> dict[str, Any]:
    records, kept = built.records, built.kept
    sizes = _sizes(kept, built.labels)
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
                   "accepted": len(built.found), "duplicates_removed": built.removed, "kept": len(kept),
                   "slots_without_dialogue": len(built.without_dialogue), **sizes["counts"]},
        "labels": sizes["labels"],
        "rejections": dict(sorted(built.reasons.items())),
        "throughput": throughput,
        "validation": OmegaConf.to_container(cfg.validation, resolve=True),
        "dedup": OmegaConf.to_container(cfg.dedup, resolve=True), "split": built.ratios,
    }


def export(cfg: DictConfig, built: BuiltSet, judgement: Judgement | None = None) -> dict[str, Any]:
    """Write the set of ``built`` (data files, the judge's figures, the quality report, the cards, the label plot,
    and the filtered sets asked for); returns the card."""
    out_dir, kept, labels = built.out_dir, built.kept, built.labels
    write_set(out_dir, kept)
    write_if_changed(out_dir / "utterances.parquet", parquet_bytes(kept, labels))
    card = _card(cfg, built)
    judged = None
    if judgement is not None:
        from erc.judge.export import export_judgement   # imported here: scikit-learn and matplotlib

        judged = export_judgement(cfg, out_dir, built.name, kept, labels, judgement)
        card["judge"] = judged.entry
    else:
        from erc.judge.export import forget_judgement

        forget_judgement(out_dir)
    assessment = _assess(cfg, out_dir, kept)   # after the judge: the report shows its agreement
    if assessment.quality is not None:
        card["quality"] = assessment.quality
    write_card(out_dir, card)
    if assessment.filtered is not None:
        write_card(assessment.filtered.folder,
                   filtered_card(card, assessment.filtered.name, assessment.filtered.dialogues, assessment.filter,
                                 labels, quality=assessment.filtered_quality))
    if judged is not None and judged.filtered is not None:
        folder, dialogues, entry, figures = judged.filtered
        write_card(folder, filtered_card(card, folder.name, dialogues, entry, labels, judge=figures))
    counts = _label_counts(kept)
    write_if_changed(out_dir / "label_distribution.png",
                     plot_bytes(_reference_sets(cfg, str(cfg.benchmark.name), built.name, counts), labels,
                                f"Label distribution: {cfg.benchmark.name} and generated sets", out_dir))
    log.info("%s: %d dialogues kept (%s)", out_dir, len(kept), card["counts"]["dialogues"])
    return card


def postprocess(cfg: DictConfig, ask_judge: bool = False) -> dict[str, Any]:
    """Build the dataset of ``cfg.out_dir`` from its ``requests.jsonl``, judge it (``judge=llm``: asking the LLM
    only with ``ask_judge``) and export it; returns the card."""
    from erc.judge.checks import judge_enabled

    built = build(cfg)
    judgement = None
    if judge_enabled(cfg) and built.kept:
        from erc.judge.run import judge_set   # imported here: the judge's runner imports the pipeline

        judgement = judge_set(cfg, built.kept, ask=ask_judge)
    return export(cfg, built, judgement)
