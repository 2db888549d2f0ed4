"""The fidelity filter (beyond the paper, opt-in: ``generate.py ... postprocess.filter=probe``).

A generated set passed through it loses every dialogue in which more than ``postprocess.max_rejected`` of the
utterances have a label that cleanlab flags under the probe trained on the real benchmark (confident learning:
per-class thresholds, so a class the probe rarely predicts is not rejected wholesale). The kept dialogues keep
their ids and splits (the filtered test split is a subset of the unfiltered one) and go to a set of their own
beside it, ``<set>_probe`` (source ``<source>_probe``), trainable with ``train.py data=<set>_probe``.
``removed.jsonl`` lists each removed dialogue with its flagged utterances; the card records the rule and counts.
The unfiltered set, the paper's method, is left as it was.
"""

from __future__ import annotations

from dataclasses import replace
from typing import Any

import numpy as np

from erc.data.names import filtered_source, unfiltered_source
from erc.data.schema import SPLITS, Dialogue
from erc.data.sets import filtered_folder, write_filtered_set
from erc.quality.corpus import Corpus
from erc.quality.report import ScoredSet


def filter_set(scored: ScoredSet, names: list[str], max_rejected: float, filter_name: str = "probe"
               ) -> tuple[Corpus, dict[str, Any]]:
    """Write the filtered set of ``scored`` (see the module docstring); returns it and the card's ``filter``
    entry."""
    corpus, fidelity = scored.corpus, scored.fidelity
    assert corpus.folder is not None, "only a generated set on disk is filtered"
    out = filtered_folder(corpus.folder, filter_name)
    kept: list[Dialogue] = []
    removed: list[dict[str, Any]] = []
    for d, dialogue in enumerate(corpus.dialogues):
        rows = np.flatnonzero(corpus.dialogue_index == d)
        share = float(fidelity.flagged[rows].mean())
        source = filtered_source(unfiltered_source(dialogue.source), filter_name)
        if share <= max_rejected:
            kept.append(replace(dialogue, source=source))
            continue
        removed.append({"id": dialogue.id, "split": dialogue.split, "utterances": len(rows),
                        "flagged": int(fidelity.flagged[rows].sum()), "flagged_share": round(share, 4),
                        "flagged_utterances": [
                            {"turn": int(corpus.turns[r]), "speaker": dialogue.utterances[corpus.turns[r]].speaker,
                             "text": corpus.texts[r], "label": names[fidelity.labels[r]],
                             "probe": names[fidelity.predicted[r]],
                             "label_quality": round(float(fidelity.quality[r]), 4)}
                            for r in rows if fidelity.flagged[r]]})
    write_filtered_set(out, kept, removed, step=filter_name)
    summary = {
        "filter": filter_name, "from": corpus.name,
        "rule": f"a dialogue is removed when more than {max_rejected:.0%} of its utterances have a label that "
                f"cleanlab's find_label_issues flags under the probe trained on {corpus.benchmark} train",
        "max_rejected": max_rejected,
        "dialogues": {"before": len(corpus.dialogues), "kept": len(kept), "removed": len(removed)},
        "utterances": {"before": len(corpus), "kept": sum(len(d) for d in kept),
                       "flagged": int(fidelity.flagged.sum())},
        "removed_by_split": {s: sum(r["split"] == s for r in removed) for s in SPLITS},
        "removed_file": "removed.jsonl",
    }
    return Corpus.from_dialogues(out.name, corpus.benchmark, kept, out), summary
