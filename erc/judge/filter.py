"""The judge's filter (beyond the paper, opt-in: ``generate.py ... judge=llm judge.filter=true``).

A generated set passed through it keeps the dialogues whose agreement with the judge (the share of utterances the
judge labelled as generated) is at least ``judge.min_agreement``; a dialogue the judge gave no usable answer for
cannot be vouched for and is removed too. The kept dialogues keep their ids and splits and go to a set of their
own beside it, ``<set>_judge`` (source ``<source>_judge``), trainable with ``train.py data=<set>_judge``;
``removed.jsonl`` lists each removed dialogue with its generated and judged labels. The unfiltered set is left as
it was.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any

from erc.data.names import filtered_source, unfiltered_source
from erc.data.schema import SPLITS, Dialogue
from erc.data.sets import filtered_folder, write_filtered_set
from erc.judge.agreement import dialogue_agreement

NAME = "judge"


def judge_filter(out_dir: Path, name: str, dialogues: list[Dialogue], judged: dict[str, list[str]],
                 min_agreement: float) -> tuple[Path, list[Dialogue], dict[str, Any]]:
    """Write ``<out_dir>_judge`` (see the module docstring); returns its folder, its dialogues and the card's
    ``filter`` entry."""
    folder = filtered_folder(out_dir, NAME)
    kept: list[Dialogue] = []
    removed: list[dict[str, Any]] = []
    for dialogue in dialogues:
        labels = judged.get(dialogue.id)
        share = None if labels is None else dialogue_agreement(dialogue, labels)
        if share is not None and share >= min_agreement:
            kept.append(replace(dialogue, source=filtered_source(unfiltered_source(dialogue.source), NAME)))
            continue
        removed.append({"id": dialogue.id, "split": dialogue.split, "utterances": len(dialogue),
                        "reason": "unjudged" if share is None else "disagreement",
                        "agreement": None if share is None else round(share, 4),
                        "turns": [{"speaker": u.speaker, "text": u.text, "label": u.label,
                                   "judge": None if labels is None else labels[i]}
                                  for i, u in enumerate(dialogue.utterances)]})
    write_filtered_set(folder, kept, removed, step=NAME)
    entry = {
        "filter": NAME, "from": name,
        "rule": f"a dialogue is kept when the blind LLM judge labelled at least {min_agreement:.0%} of its "
                f"utterances as generated; a dialogue without a usable judge answer is removed",
        "min_agreement": min_agreement,
        "dialogues": {"before": len(dialogues), "kept": len(kept), "removed": len(removed),
                      "unjudged": sum(r["reason"] == "unjudged" for r in removed)},
        "utterances": {"before": sum(len(d) for d in dialogues), "kept": sum(len(d) for d in kept)},
        "removed_by_split": {s: sum(r["split"] == s for r in removed) for s in SPLITS},
        "removed_file": "removed.jsonl",
    }
    return folder, kept, entry
