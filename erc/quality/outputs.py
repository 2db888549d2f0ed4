"""What the report writes: ``quality.json``, ``quality.md`` (one table: rows are metrics, columns the real
benchmark and each set, then the suspicious utterances) and the PNGs, and the summary a data card carries.

Files are written only when their bytes change, so a rerun of post-processing leaves a set's folder as it was.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from erc.io import write_if_changed

# Below this many utterances a set's agreement, kappa and probe figures say nothing (one utterance moves kappa by a
# tenth of its range, a probe trained on a handful of utterances is chance): the set is flagged as too small and
# those figures are left out (erc.quality.report) rather than claimed.
MIN_UTTERANCES = 30

# (metric key, row title, format): "f" a number, "%" a share, "i" a count, "flag" yes or "-"; a missing value shows
# as "-".
ROWS: tuple[tuple[str, str, str], ...] = (
    ("agreement", "fidelity: agreement with the probe", "%"),
    ("chance", "fidelity: chance agreement", "%"),
    ("kappa", "fidelity: Cohen's kappa", "f"),
    ("fidelity_ratio", "fidelity: kappa / real kappa", "f"),
    ("flagged", "fidelity: labels flagged by cleanlab", "%"),
    ("probe_wf1", "usefulness: probe W-F1 on real test (TSTR; real: TRTR)", "wf1"),
    ("real_plus_synthetic_wf1", "usefulness: real + synthetic train", "wf1"),
    ("majority_wf1", "usefulness: majority class", "%"),
    ("distinct_1", "diversity: distinct-1", "%"),
    ("distinct_2", "diversity: distinct-2", "%"),
    ("distinct_3", "diversity: distinct-3", "%"),
    ("sample_utterances", "diversity: distinct-n sample (utterances)", "i"),
    ("self_bleu", "diversity: self-BLEU (0-100)", "f"),
    ("self_bleu_utterances", "diversity: self-BLEU sample (utterances)", "i"),
    ("vocabulary", "diversity: vocabulary", "i"),
    ("tokens_mean", "form: tokens per utterance (mean)", "f"),
    ("tokens_p95", "form: tokens per utterance (95th pct)", "f"),
    ("turns_mean", "form: turns per dialogue", "f"),
    ("speakers_mean", "form: speakers per dialogue", "f"),
    ("duplicate_dialogues_exact", "form: exact duplicate dialogues", "%"),
    ("duplicate_dialogues_near", "form: near-duplicate dialogues", "%"),
    ("duplicate_utterances", "form: repeated utterances", "%"),
    ("at_length_cap", "form: utterances at the length cap", "%"),
    ("ends_mid_word", "form: utterances ending mid-word", "%"),
    ("label_js", "distance: label JS divergence", "f"),
    ("precision", "distance: precision (PRDC)", "f"),
    ("recall", "distance: recall (PRDC)", "f"),
    ("density", "distance: density (PRDC)", "f"),
    ("coverage", "distance: coverage (PRDC)", "f"),
    ("frechet", "distance: Fréchet", "f"),
    ("distance_sample", "distance: sample per side", "i"),
    ("contamination_test", "contamination: utterances with a test line", "i"),
    ("contamination_dev", "contamination: utterances with a dev line", "i"),
    ("contamination_train", "contamination: utterances with a train line", "i"),
    ("contamination_near_test", "contamination: near a test line (embeddings)", "i"),
    ("contamination_near_dev", "contamination: near a dev line (embeddings)", "i"),
    ("judge_accuracy", "judge: agreement with the blind LLM judge", "%"),
    ("judge_kappa", "judge: Cohen's kappa with the judge", "f"),
    ("utterances", "size: utterances", "i"),
    ("too_small", f"size: too small for fidelity and usefulness figures (< {MIN_UTTERANCES} utterances)", "flag"),
    ("dialogues", "size: dialogues", "i"),
)

# What a data card keeps of its set's column.
CARD_KEYS = ("too_small", "agreement", "chance", "kappa", "fidelity_ratio", "flagged", "probe_wf1", "probe_wf1_ci",
             "real_plus_synthetic_wf1", "majority_wf1", "distinct_2", "self_bleu", "duplicate_dialogues_exact",
             "duplicate_dialogues_near", "at_length_cap", "ends_mid_word", "label_js", "precision", "recall",
             "coverage", "frechet")


def _cell(metrics: dict[str, Any], key: str, kind: str) -> str:
    value = metrics.get(key)
    if value is None:
        return "-"
    if kind == "flag":
        return "yes" if value else "-"
    if kind == "%":
        return f"{100 * value:.1f}%"
    if kind == "i":
        return str(int(value))
    if kind == "wf1":
        ci = metrics.get(f"{key}_ci")
        return f"{100 * value:.1f}" + (f" [{100 * ci[0]:.1f}, {100 * ci[1]:.1f}]" if ci else "")
    return f"{value:.3f}"


def markdown_table(report: dict[str, Any]) -> str:
    """The metrics table: one row per metric, one column per dataset (the real benchmark first)."""
    columns = report["columns"]
    lines = ["| metric | " + " | ".join(columns) + " |", "|---|" + "---:|" * len(columns)]
    rows = list(ROWS) + [(f"agreement_per_label.{name}", f"fidelity: agreement on {name}", "%")
                         for name in report["labels"]]
    for key, title, kind in rows:
        if "." not in key and not any(key in report["metrics"][c] for c in columns):
            continue     # a figure no column has (the judge's, when no set was judged)
        cells = []
        for column in columns:
            metrics = report["metrics"][column]
            if key.startswith("agreement_per_label."):
                metrics = {key: metrics["agreement_per_label"].get(key.split(".", 1)[1])}
            cells.append(_cell(metrics, key, kind))
        lines.append(f"| {title} | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def markdown_report(report: dict[str, Any]) -> str:
    """``quality.md``: the table, how to read it, and each set's most suspicious utterances."""
    real = report["columns"][0]
    text = [f"# Data quality: generated sets against {real}\n",
            f"Encoder `{report['encoder']['name']}` ({report['encoder']['identity']}); probe: logistic regression "
            f"on frozen embeddings, trained on {real} train; W-F1 in percent on {real} test with 95% bootstrap "
            f"intervals. The {real} column scores the real test split (fidelity, usefulness) and compares it with "
            f"the train split (distance): the ceiling and the scale. See docs/quality.md.\n",
            markdown_table(report)]
    for name, rows in report["suspicious"].items():
        text.append(f"\n## {name}: the {len(rows)} most suspicious labels (lowest label quality)\n")
        text.append("| utterance | text | label | probe | quality |\n|---|---|---|---|---:|")
        text += [f"| {r['id']} | {r['text'].replace('|', '/')} | {r['label']} | {r['probe']} | "
                 f"{r['label_quality']:.3f} |" for r in rows]
        text.append("")
    return "\n".join(text)


def card_summary(report: dict[str, Any], name: str) -> dict[str, Any]:
    """The card's ``quality`` entry for set ``name``: its headline figures and the real column's for reference."""
    real = report["columns"][0]
    pick = {key: report["metrics"][name].get(key) for key in CARD_KEYS}
    reference = {key: report["metrics"][real].get(key) for key in ("agreement", "kappa", "probe_wf1", "majority_wf1",
                                                                   "distinct_2", "self_bleu", "ends_mid_word")}
    return {"encoder": report["encoder"]["identity"], "against": real, name: pick, real: reference,
            "report": "quality.md"}


def write_report(folder: str | Path, report: dict[str, Any], plots: dict[str, bytes]) -> list[Path]:
    """``quality.json``, ``quality.md`` and the plots into ``folder``; returns the paths."""
    folder = Path(folder)      # write_if_changed makes the folder
    files = {"quality.json": (json.dumps(report, indent=2, ensure_ascii=False) + "\n").encode(),
             "quality.md": markdown_report(report).encode(), **plots}
    for name, data in files.items():
        write_if_changed(folder / name, data)
    return [folder / name for name in files]
