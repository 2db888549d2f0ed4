"""What the judge adds to a set's folder: ``judge/agreement.json`` (the figures, which the quality report reads),
``judge/labels.jsonl`` (each dialogue's generated and judged labels), ``judge_confusion.png``, the card's ``judge``
entry, and with ``judge.filter=true`` the filtered set ``<out_dir>_judge``. Files are written only when their bytes
change, so a rerun with nothing new leaves them as they were."""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from omegaconf import DictConfig

from erc.data.schema import Dialogue
from erc.io import write_if_changed
from erc.judge.checks import judge_llm_config, judge_llm_key
from erc.llm.store import read_records
from erc.llm.usage import Prices, usage_totals

if TYPE_CHECKING:
    from erc.judge.run import Judgement

log = logging.getLogger(__name__)

AGREEMENT_FILE = "agreement.json"
CONFUSION_PNG = "judge_confusion.png"


def judge_folder(out_dir: str | Path) -> Path:
    """``<out_dir>/judge``: the judge's ``requests.jsonl`` and ``runs.jsonl`` and its figures."""
    return Path(out_dir) / "judge"


@dataclass
class JudgedSet:
    """The card's ``judge`` entry and, with the filter, ``(folder, dialogues, filter entry, judge figures)`` of
    the filtered set."""

    entry: dict[str, Any]
    filtered: tuple[Path, list[Dialogue], dict[str, Any], dict[str, Any]] | None = None


def _json_bytes(value: Any) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def export_judgement(cfg: DictConfig, out_dir: Path, name: str, kept: list[Dialogue], labels: list[str],
                     judgement: Judgement) -> JudgedSet:
    """Write the judge's files for the set ``name`` in ``out_dir`` (see the module docstring)."""
    from erc.judge.agreement import agreement, confusion_figure, dialogue_agreement
    from erc.plots import figure_png

    figures = agreement(kept, judgement.labels, labels)
    folder = judge_folder(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    write_if_changed(folder / AGREEMENT_FILE, _json_bytes({"dataset": name, "labels": labels, **figures}))
    rows = [{"id": d.id, "split": d.split, "generated": [u.label for u in d.utterances],
             "judged": judgement.labels.get(d.id),
             "agreement": (round(dialogue_agreement(d, judgement.labels[d.id]), 4) if d.id in judgement.labels
                           else None)} for d in kept]
    write_if_changed(folder / "labels.jsonl", "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows).encode())
    write_if_changed(out_dir / CONFUSION_PNG, figure_png(confusion_figure(figures, labels, name)))
    entry = {**judgement.facts, **figures, "dialogues": {**figures["dialogues"], "failed": judgement.failed},
             "tokens": usage_totals(read_records(folder / "requests.jsonl"),
                                    Prices.from_config(judge_llm_config(cfg), judge_llm_key(cfg))),
             "files": {"agreement": f"judge/{AGREEMENT_FILE}", "labels": "judge/labels.jsonl",
                       "confusion": CONFUSION_PNG, "requests": "judge/requests.jsonl"}}
    log.info("%s: the judge agrees on %s of %d utterances (kappa %s; %d dialogue(s) unjudged)", out_dir,
             "-" if figures["accuracy"] is None else f"{figures['accuracy']:.1%}", figures["utterances"],
             figures["kappa"], judgement.unjudged)
    judged = JudgedSet(entry)
    if cfg.judge.filter:
        from erc.judge.filter import judge_filter

        filtered, dialogues, filter_entry = judge_filter(out_dir, name, kept, judgement.labels,
                                                         float(cfg.judge.min_agreement))
        log.info("%s: %d of %d dialogues kept by the judge filter", filtered, len(dialogues), len(kept))
        kept_figures = {**judgement.facts, **agreement(dialogues, judgement.labels, labels)}
        judged.filtered = (filtered, dialogues, filter_entry, kept_figures)
    return judged


def forget_judgement(out_dir: Path) -> None:
    """Without a judge (``judge=none``) the set has no judge figures: remove those a judged run left, so neither
    the quality report nor a reader takes them for this set's (the judge's stored answers stay)."""
    for path in (judge_folder(out_dir) / AGREEMENT_FILE, judge_folder(out_dir) / "labels.jsonl",
                 Path(out_dir) / CONFUSION_PNG):
        path.unlink(missing_ok=True)
