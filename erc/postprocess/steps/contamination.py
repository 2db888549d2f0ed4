"""The contamination check as a post-processing step: the set's card and README say how many of its utterances
reproduce a line of the benchmark's train, dev and test splits, with examples, and how many dialogues
decontamination removed (:mod:`erc.postprocess.decontaminate`, which checks the dialogues while the set is built so
that the removed ones never reach a split)."""

from __future__ import annotations

from typing import Any

from erc.postprocess.card import table
from erc.postprocess.step import SetContext, Step


class ContaminationStep(Step):
    """See the module docstring."""

    sections = ("contamination",)

    def enabled(self, ctx: SetContext) -> bool:
        return ctx.built.contamination is not None

    def run(self, ctx: SetContext) -> bool:
        entry = ctx.built.contamination
        ctx.card["contamination"] = entry
        return "skipped" not in (entry or {})  # checked again once the benchmark's data is there

    def readme(self, card: dict[str, Any]) -> str:
        """The matches per split (before decontamination), the dialogues removed and a few examples."""
        entry = card.get("contamination")
        if entry is None:
            return ""
        if "skipped" in entry:
            return (f"\nContamination check: skipped ({entry['skipped']}), so this set has not been checked for "
                    f"the benchmark's own lines.\n")
        splits = entry["splits"]
        rows = [(split, f["utterances"], f["exact"], f["ngram"], f["dialogues"]) for split, f in splits.items()]
        removed = (f"Decontamination (`postprocess.decontaminate={entry['decontaminate']}`) removed "
                   f"{entry['removed']} dialogue(s) carrying such a line (listed with the line matched in "
                   f"`{entry['removed_file']}`); the figures above count them." if entry["decontaminate"] else
                   "Decontamination was off (`postprocess.decontaminate=[]`): the dialogues counted are in the set.")
        examples = [(e["split"], e["how"], _quote(e["utterance"]), e["benchmark_id"])
                    for f in splits.values() for e in f["examples"]][:5]
        shown = (f"\n\n{table(examples, ('split', 'how', 'generated', 'benchmark line id'))}" if examples else "")
        return (f"\nContamination: every utterance compared with {entry['against']}'s own lines (equal after "
                f"normalisation with at least {entry['min_words']} words, or a shared run of {entry['ngram']} "
                f"words):\n\n{table(rows, ('split', 'utterances', 'equal', 'shared run', 'dialogues'))}\n\n"
                f"{removed}{shown}\n")


def _quote(text: str, width: int = 80) -> str:
    text = text.replace("|", "/").replace("\n", " ")
    return text if len(text) <= width else text[:width - 1] + "…"
