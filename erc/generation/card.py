"""The data card: ``card.json`` (machine-readable) and a short ``README.md`` next to the data.

A generated set is only reusable if it says how it was made: model and server, the template hash
(the prompt is a reconstruction), the parameters as sent and what the backend could not honour,
whether decoding was constrained, counts, label histogram, rejection reasons and throughput; and whether it is
any good: the quality report's headline figures against the benchmark (``quality``, see docs/quality.md), the
blind LLM judge's agreement with its labels (``judge``, see docs/judge.md) and, for a filtered set, what the filter
removed and why (``filter``).
Written by :func:`erc.generation.postprocess.write_card`.
"""

from __future__ import annotations

import json
from typing import Any


def _table(rows: list[tuple[Any, ...]], header: tuple[str, ...]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def _percent(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.1f}"


def quality_text(card: dict[str, Any]) -> str:
    """The README's quality section: the set's headline figures beside the real benchmark's."""
    quality = card.get("quality")
    if quality is None:
        return ""
    if "skipped" in quality:
        return f"\nQuality report: skipped ({quality['skipped']}).\n"
    mine, real, against = quality[card["dataset"]], quality[quality["against"]], quality["against"]
    rows = [("agreement of its labels with a probe trained on the real data, %", _percent(mine["agreement"]),
             _percent(real["agreement"])),
            ("Cohen's kappa of that agreement (0: labels unrelated to the text)", f"{mine['kappa']:.3f}",
             f"{real['kappa']:.3f}"),
            (f"probe trained on it, W-F1 on {against} test (majority class: {_percent(real['majority_wf1'])})",
             _percent(mine["probe_wf1"]), _percent(real["probe_wf1"])),
            ("distinct-2, %", _percent(mine["distinct_2"]), _percent(real["distinct_2"])),
            ("self-BLEU", f"{mine['self_bleu']:.1f}", f"{real['self_bleu']:.1f}"),
            ("utterances ending mid-word, %", _percent(mine["ends_mid_word"]), _percent(real.get("ends_mid_word")))]
    header = ("", card["dataset"], f"{against} (real)")
    return (f"\nQuality against {against} (encoder `{quality['encoder']}`; the full report, plots and the most "
            f"suspicious labels: `{quality['report']}`):\n\n{_table(rows, header)}\n")


def filter_text(card: dict[str, Any]) -> str:
    """The README's section on a filtered set: the rule and what it removed."""
    entry = card.get("filter")
    if entry is None:
        return ""
    dialogues = entry["dialogues"]
    return (f"\n**Filtered** from `{entry['from']}` by the `{entry['filter']}` filter (beyond the paper): "
            f"{entry['rule']}. Kept {dialogues['kept']} of {dialogues['before']} dialogues; removed by split: "
            f"{json.dumps(entry['removed_by_split'])}; each removed dialogue and its flagged utterances are in "
            f"`{entry['removed_file']}`.\n")


def judge_text(card: dict[str, Any]) -> str:
    """The README's section on the blind LLM judge: its model, the agreement and the per label figures."""
    judge = card.get("judge")
    if judge is None:
        return ""
    dialogues = judge["dialogues"]
    kappa = "-" if judge["kappa"] is None else f"{judge['kappa']:.3f}"
    plot = judge.get("files", {}).get("confusion")   # a filtered set's figures come without a plot
    confusion = f"; confusion: `{plot}`" if plot else ""
    rows = [(label, f["generated"], f["judged"], _percent(f["precision"]), _percent(f["recall"]))
            for label, f in judge["per_label"].items()]
    return (f"\n**Blind LLM judge** (beyond the paper): `{judge['model'] or 'not asked yet'}` via the `{judge['llm']['backend']}` "
            f"backend labelled every utterance without seeing the generated labels. Agreement with the generated "
            f"labels: {_percent(judge['accuracy'])}% of {judge['utterances']} utterances, Cohen's kappa {kappa}; "
            f"{dialogues['judged']} dialogues judged, {dialogues['unjudged']} without a judge answer. Per label "
            f"(precision and recall of the judge against the generated label, %{confusion}):\n\n"
            f"{_table(rows, ('label', 'generated', 'judged', 'precision', 'recall'))}\n")


def decoding_text(gen: dict[str, Any]) -> str:
    """How the answers were decoded and asked for: the line format freely (the paper), under its grammar, or as JSON
    under the dialogue's schema (``prompt.format=json``)."""
    if gen.get("format") == "json":
        return ("**Answers were JSON** (`prompt.format=json`, beyond the paper), decoding constrained by the dialogue's "
                "JSON schema where the backend has one (see \"Not honoured\"): the label distribution is not the "
                "model's free one.")
    if gen["constrained"]:
        return ("**Decoding was grammar-constrained** (only `Speaker: utterance (number)` lines): the label "
                "distribution is not the model's free one.")
    return "Decoding was free (no grammar), as in the paper."


def readme_text(card: dict[str, Any]) -> str:
    gen, counts = card["generator"], card["counts"]
    constrained = decoding_text(gen)
    lost = "; ".join(gen["not_honoured"]) or "none"
    changed = "; ".join(f"{k} {v['used']} (paper: {v['paper']})" for k, v in gen["deviations_from_table_ii"].items())
    splits = [(s, counts["dialogues"][s], counts["utterances"][s]) for s in ("train", "dev", "test")]
    labels = [(label, n) for label, n in card["labels"].items()]
    reasons = [(reason, n) for reason, n in card["rejections"].items()] or [("(none)", 0)]
    return f"""# {card['dataset']}: LLM-generated {card['mode']} ERC dialogues ({card['benchmark']} labels)

Generated by `erc` (`python generate.py`) following Kaplan et al. (2025), "Can Large Language Models
Generate Effective Datasets for Emotion Recognition in Conversations?". The prompt template is a
**reconstruction** of the paper's Fig. 3 (hash `{gen['template']['hash']}`).

- Model: `{gen['model']}` via the `{gen['backend']}` backend ({_served(gen['provenance'])})
- Parameters sent: `{json.dumps(gen['parameters_sent'], sort_keys=True)}`
- Deviations from the paper's Table II: {changed or "none"}
- Not honoured by the backend: {lost}
- {constrained}
- Requests: {counts['requests']}, accepted dialogues: {counts['accepted']}, duplicates removed:
  {counts['duplicates_removed']['exact']} exact, {counts['duplicates_removed']['near']} near (MinHash)

{_table(splits, ('split', 'dialogues', 'utterances'))}

Labels (all splits):

{_table(labels, ('label', 'utterances'))}

Rejected requests by reason (a request can have several):

{_table(reasons, ('reason', 'requests'))}
{filter_text(card)}{quality_text(card)}{judge_text(card)}
Files: `train/dev/test.jsonl` (read with `erc.data.load_benchmark("{card['dataset']}", split)`),
{_files(card)}
"""


def _served(provenance: dict[str, Any]) -> str:
    """The server, and the route where the backend has several (``llm=openai``)."""
    server, route = provenance.get("server", ""), provenance.get("route")
    return f"{server}, route {route}" if route else server


def _files(card: dict[str, Any]) -> str:
    if "filter" in card:
        return ("`dialogues.jsonl` (all, with their split), `removed.jsonl` (what the filter removed), `card.json`; "
                f"the raw LLM answers are in `{card['filter']['from']}/requests.jsonl`.")
    return ("`dialogues.jsonl` (all, with their split), `utterances.parquet` (one row per utterance),\n"
            "`requests.jsonl` (every raw LLM answer), `runs.jsonl`, `card.json`, `label_distribution.png`.")
