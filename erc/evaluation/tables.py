"""The paper's Table III and Table IV as Markdown (to read), CSV (to compute with) and LaTeX (to paste).

W-F1 is shown x100 with two decimals, as in the paper. p-values are *truncated* to 4 decimals by
default because that is how the paper prints them (0.20259 shows as 0.2025); ``p_mode=round``
rounds instead. Both work on the exact rational p-value, so no float error can change a digit.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import pandas as pd

from erc.data import BENCHMARKS, SOURCES, benchmark_info, parse_test_set
from erc.data.names import SOURCE_TITLES
from erc.evaluation.analysis import AGGREGATION, TIES_HANDLING, RankAnalysis, cell_stats
from erc.evaluation.collect import add_models, order_classifiers
from erc.io import write_text_atomic

MISSING = "—"


@dataclass
class Display:
    """How tables print: p-value digits and mode (truncate|round), and display names of models/sources."""

    p_digits: int = 4
    p_mode: str = "truncate"
    names: Mapping[str, str] = field(default_factory=dict)
    sources: Mapping[str, str] = field(default_factory=lambda: dict(SOURCE_TITLES))

    def __post_init__(self) -> None:
        if self.p_mode not in ("truncate", "round"):
            raise ValueError(f"display.p_mode must be 'truncate' or 'round', got {self.p_mode!r}")
        if self.p_digits < 1:
            raise ValueError(f"display.p_digits must be >= 1, got {self.p_digits}")

    def p(self, value: Fraction) -> str:
        """A p-value with ``p_digits`` decimals; a positive p that would print as zero shows as ``<0.0001``.

        Works on the exact value: truncation is ``floor(p 10^d) / 10^d``, rounding is half-to-even.
        """
        scale = 10 ** self.p_digits
        units = math.floor(value * scale) if self.p_mode == "truncate" else round(value * scale)
        if units == 0 and value > 0:
            units, prefix = 1, "<"
        else:
            prefix = ""
        return f"{prefix}{units // scale}.{units % scale:0{self.p_digits}d}"

    def model(self, model: str) -> str:
        base, bracket, rest = model.partition("[")
        return self.names.get(base, base) + (f" [{rest}" if bracket else "")

    def source(self, source: str) -> str:
        return self.sources.get(source, source)

    def instance(self, instance: str) -> str:
        model, _, source = instance.rpartition("_")
        return f"{self.model(model)} {self.source(source)}"

    def test_set(self, test_set: str) -> str:
        benchmark, split = parse_test_set(test_set)
        if benchmark in BENCHMARKS:
            return f"{benchmark_info(benchmark)['display_name']} {self.source(split)}"
        return test_set


def _pct(value: float) -> str:
    return MISSING if value is None or math.isnan(value) else f"{100 * value:.2f}"


def _num(value: float) -> str:
    """Rank sums and differences: integers without decimals, averaged ties as e.g. 24.5."""
    return f"{value:g}"


def omnibus_text(o: Mapping[str, Any]) -> str:
    """The omnibus test in one sentence (Table IV notes, CD diagram): a test that was not run or whose statistic
    is degenerate says so instead of printing a number that looks like a measurement."""
    if "not_computed" in o:
        return f"{o['not_computed']}: not computed."
    if math.isnan(o["chi2"]):
        return (f"Friedman χ²({o['chi2_df']}) and Iman-Davenport F({o['f_df1']}, {o['f_df2']}) undefined: "
                f"{o['degenerate']}.")
    f_value = "∞" if math.isinf(o["iman_davenport_f"]) else f"{o['iman_davenport_f']:.3f}"
    text = (f"Friedman χ²({o['chi2_df']}) = {o['chi2']:.3f}, p = {o['chi2_p']:.3g}; Iman-Davenport "
            f"F({o['f_df1']}, {o['f_df2']}) = {f_value}, p = {o['f_p']:.3g}")
    return text + (f". Degenerate: {o['degenerate']}." if o.get("degenerate") else ".")


def _markdown(header: list[str], rows: list[list[str]]) -> str:
    """Names (the first column) left-aligned, numbers right-aligned."""
    rule = [":---" if i == 0 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(cells) + " |" for cells in [header, rule, *rows]]
    return "\n".join(lines) + "\n"


def _tex_escape(text: str) -> str:
    for char, escaped in (("\\", r"\textbackslash{}"), ("&", r"\&"), ("%", r"\%"), ("_", r"\_"), ("#", r"\#"),
                          ("<", r"\textless{}"), ("±", r"$\pm$"), ("—", "---"), ("–", "--"), ("χ²", r"$\chi^2$"),
                          ("∞", r"$\infty$")):
        text = text.replace(char, escaped)
    return text


def _tex_cell(text: str) -> str:
    return r"\textbf{" + _tex_escape(text[2:-2]) + "}" if text.startswith("**") else _tex_escape(text)


# ---------------------------------------------------------------- Table III

def table3_frame(table: pd.DataFrame) -> pd.DataFrame:
    """W-F1 (x100) on each benchmark's original test split, per benchmark x source x model: mean, std, seeds.

    Every (benchmark, source, model) seen anywhere in the input gets a row, so a failed run shows
    up as a missing cell (seeds = 0) instead of disappearing.
    """
    table = add_models(table)
    stats = cell_stats(table[table["test_set"] == table["benchmark"].astype(str) + "_org"])
    known = table["benchmark"].dropna()
    benchmarks = [b for b in BENCHMARKS if b in set(known)] + sorted(set(known) - set(BENCHMARKS))
    sources = [s for s in SOURCES if s in set(table["source"])]
    records = []
    for benchmark in benchmarks:
        for source in sources:
            for model in order_classifiers(table["model"]):
                hit = stats[(stats["test_set"] == f"{benchmark}_org") & (stats["source"] == source)
                            & (stats["model"] == model)]
                seeds = int(hit["n"].iloc[0]) if not hit.empty else 0
                records.append({
                    "benchmark": benchmark, "source": source, "model": model,
                    "wf1_pct_mean": 100 * hit["mean"].iloc[0] if seeds else math.nan,
                    "wf1_pct_std": 100 * hit["std"].iloc[0] if seeds else math.nan,
                    "seeds": seeds,
                })
    return pd.DataFrame(records, columns=["benchmark", "source", "model", "wf1_pct_mean", "wf1_pct_std", "seeds"])


def _table3_cells(frame: pd.DataFrame, display: Display) -> tuple[list[str], list[list[str]], list[str]]:
    """Header, body rows (bold = best of its benchmark) and notes, shared by the md and tex writers."""
    models = list(dict.fromkeys(frame["model"]))
    max_seeds = int(frame["seeds"].max()) if not frame.empty else 0
    header = ["Benchmark", "Pretraining", *[display.model(m) for m in models]]
    rows = []
    for benchmark, block in frame.groupby("benchmark", sort=False):
        best = block["wf1_pct_mean"].max()
        for source, line in block.groupby("source", sort=False):
            cells = []
            for model in models:
                hit = line[line["model"] == model]
                if hit.empty or hit["seeds"].iloc[0] == 0:
                    cells.append(MISSING)
                    continue
                mean, std, seeds = hit["wf1_pct_mean"].iloc[0], hit["wf1_pct_std"].iloc[0], int(hit["seeds"].iloc[0])
                text = f"{mean:.2f}" + (f" ± {std:.2f}" if seeds > 1 else "")
                if seeds != max_seeds:
                    text += f" (n={seeds})"
                cells.append(f"**{text}**" if mean == best else text)
            label = benchmark_info(benchmark)["display_name"] if benchmark in BENCHMARKS else benchmark
            rows.append([label, display.source(source), *cells])
    notes = ["W-F1 x100 on each benchmark's original test split; Org: fine-tuned on the benchmark only, "
             "Nat/Bal: pretrained on that generated set, then fine-tuned; bold: best of each benchmark."]
    if max_seeds > 1:
        notes.append(f"mean ± sample standard deviation over seeds (n={max_seeds} unless shown).")
    if (frame["seeds"] == 0).any():
        notes.append(f"{MISSING}: no finished run reported this score.")
    return header, rows, notes


def write_table3(table: pd.DataFrame, out_dir: Path, display: Display) -> list[Path]:
    """table3.csv (numeric, long), table3.md and table3.tex."""
    frame = table3_frame(table)
    header, rows, notes = _table3_cells(frame, display)
    paths = [out_dir / "table3.csv", out_dir / "table3.md", out_dir / "table3.tex"]
    write_text_atomic(paths[0], frame.to_csv(index=False))
    md = "## Table III: W-F1 on the original test splits\n\n" + _markdown(header, rows)
    write_text_atomic(paths[1], md + "\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    spec = "ll" + "r" * (len(header) - 2)
    body = [" & ".join(_tex_cell(c) for c in row) + r" \\" for row in rows]
    tex = [r"\begin{table}[t]", r"\centering", r"\caption{" + _tex_escape(" ".join(notes)) + "}",
           r"\label{tab:wf1}", r"\begin{tabular}{" + spec + "}", r"\toprule",
           " & ".join(_tex_escape(h) for h in header) + r" \\", r"\midrule", *body,
           r"\bottomrule", r"\end{tabular}", r"\end{table}"]
    write_text_atomic(paths[2], "\n".join(tex) + "\n")
    return paths


# ---------------------------------------------------------------- Table IV

def table4_summary(analysis: RankAnalysis | None, refused: str | None, partial: str | None) -> str:
    """The line printed under Table IV's heading: the design actually tested, and whether it is the whole one."""
    if analysis is None:
        return f"**Not tested (incomplete results):** {refused}"
    line = (f"Bonferroni m = {analysis.m} comparisons; k = {analysis.k} instances ranked on n = {analysis.n} "
            "test sets.")
    return f"**PARTIAL TABLE (allow_partial=true):** {partial}\n\n{line}" if partial else line


def _table4_notes(analysis: RankAnalysis | None, seeds: int, display: Display, refused: str | None,
                  partial: str | None) -> list[str]:
    notes = ["W-F1 x100; rank within the test set in parentheses (1 = best), bold: rank 1."]
    if seeds > 1:
        notes.append(f"Cells are the {AGGREGATION} (up to {seeds} seeds).")
    if refused:
        notes.append(f"Friedman test not run: {refused}")
        return notes
    assert analysis is not None
    if partial:
        notes.insert(0, f"PARTIAL TABLE (allow_partial=true): {partial}")
    m = analysis.m
    mode = "truncated" if display.p_mode == "truncate" else "rounded"
    notes.append(f"Diff.: the control's rank sum minus the instance's rank sum (> 0: the instance ranks better). "
                 f"p: two-sided exact p-value of the rank-sum difference (Eisinga et al. 2017; k={analysis.k} "
                 f"instances, n={analysis.n} test sets), Bonferroni-adjusted over the m={m} comparisons made and "
                 f"capped at 1, {mode} to {display.p_digits} decimals.")
    if analysis.ties:
        listed = "; ".join(f"{display.test_set(t['test_set'])}: {', '.join(t['instances'])} share rank "
                           f"{_num(t['rank'])}" for t in analysis.ties)
        notes.append(f"Ties: {listed}. Handling: {TIES_HANDLING}.")
    else:
        notes.append("No ties.")
    notes.append(omnibus_text(analysis.omnibus))
    smallest = analysis.smallest_adjusted_p()
    if m == 0:
        notes.append("No comparisons: no instance has its control in the table.")
    elif analysis.critical_difference is not None:
        notes.append(f"Critical rank-sum difference at alpha = {analysis.alpha} after Bonferroni (m={m}): "
                     f"{analysis.critical_difference}.")
    elif smallest is not None:
        notes.append(f"No comparison can be significant at alpha = {analysis.alpha} in this design: even the "
                     f"largest possible rank-sum difference, {analysis.n * (analysis.k - 1)}, has adjusted p = "
                     f"{display.p(smallest)} (k={analysis.k}, n={analysis.n}, m={m}).")
    return notes


def _table4_cells(scores: pd.DataFrame, analysis: RankAnalysis | None,
                  display: Display) -> tuple[list[str], list[list[str]]]:
    header = ["Test set", *[display.instance(c) for c in scores.columns]]
    rows = []
    for test_set, line in scores.iterrows():
        cells = []
        for column, value in line.items():
            if analysis is None or math.isnan(value):
                cells.append(_pct(value))
                continue
            rank = analysis.ranks.loc[test_set, column]
            text = f"{_pct(value)} ({_num(rank)})"
            cells.append(f"**{text}**" if rank == analysis.ranks.loc[test_set].min() else text)
        rows.append([display.test_set(test_set), *cells])
    if analysis is None:
        return header, rows
    rows.append(["Rank sum", *[_num(analysis.rank_sums[c]) for c in scores.columns]])
    compared = {row.instance: (row.diff, exact) for row, exact in
                zip(analysis.comparisons.itertuples(index=False), analysis.p_exact, strict=True)}
    if len(compared) == len(analysis.comparisons):  # each instance compared once (control mode): paper layout
        rows.append(["Diff.", *[_num(compared[c][0]) if c in compared else "–" for c in scores.columns]])
        rows.append([f"p (Bonferroni, m={len(compared)})",
                     *[display.p(compared[c][1][1]) if c in compared else "–" for c in scores.columns]])
    return header, rows


def _comparison_rows(analysis: RankAnalysis, display: Display) -> tuple[list[str], list[list[str]]]:
    header = ["Instance", "Control", "Rank sum", "Control rank sum", "Diff.", "p raw", "p adjusted"]
    rows = [[display.instance(r.instance), display.instance(r.control), _num(r.rank_sum), _num(r.control_rank_sum),
             _num(r.diff), display.p(raw), display.p(adj)]
            for r, (raw, adj) in zip(analysis.comparisons.itertuples(index=False), analysis.p_exact, strict=True)]
    return header, rows


def write_table4(scores: pd.DataFrame, analysis: RankAnalysis | None, out_dir: Path, display: Display,
                 seeds: int, refused: str | None = None, partial: str | None = None) -> list[Path]:
    """table4.md and table4.tex (scores, ranks, rank sums, diffs, p) and table4.csv (one row per compared pair,
    with the Bonferroni ``m`` and whether the table is ``partial``).

    With ``analysis=None`` (the test refused, e.g. missing cells) only the scores are written, with the
    gaps marked, and no table4.csv, so that no partial statistics can be mistaken for results. ``partial``
    (allow_partial=true) says what is missing; it heads the Markdown and the LaTeX caption.
    """
    header, rows = _table4_cells(scores, analysis, display)
    notes = _table4_notes(analysis, seeds, display, refused, partial)
    md = ["## Table IV: ranks, rank sums and exact Friedman p-values\n",
          table4_summary(analysis, refused, partial) + "\n", _markdown(header, rows)]
    paths = [out_dir / "table4.md", out_dir / "table4.tex"]
    if analysis is not None and not analysis.comparisons.empty:
        md += ["\n### Comparisons\n", _markdown(*_comparison_rows(analysis, display))]
    write_text_atomic(paths[0], "\n".join(md) + "\n" + "\n".join(f"- {n}" for n in notes) + "\n")
    models = list(dict.fromkeys(c.rpartition("_")[0] for c in scores.columns))
    group_header = ["Test set"] + [r"\multicolumn{" + str(sum(c.rpartition("_")[0] == m for c in scores.columns))
                                   + "}{c}{" + _tex_escape(display.model(m)) + "}" for m in models]
    sub_header = [""] + [_tex_escape(display.source(c.rpartition("_")[2])) for c in scores.columns]
    body = []
    for i, row in enumerate(rows):
        if i == len(scores):
            body.append(r"\midrule")
        body.append(" & ".join(_tex_cell(c) for c in row) + r" \\")
    tex = [r"\begin{table*}[t]", r"\centering", r"\caption{" + _tex_escape(" ".join(notes)) + "}",
           r"\label{tab:friedman}", r"\begin{tabular}{l" + "r" * len(scores.columns) + "}", r"\toprule",
           " & ".join(group_header) + r" \\", " & ".join(sub_header) + r" \\", r"\midrule", *body,
           r"\bottomrule", r"\end{tabular}", r"\end{table*}"]
    write_text_atomic(paths[1], "\n".join(tex) + "\n")
    if analysis is not None:
        csv_path = out_dir / "table4.csv"
        frame = analysis.comparisons.drop(columns=["significant"]).assign(m=analysis.m, partial=partial is not None)
        write_text_atomic(csv_path, frame.to_csv(index=False))
        paths.append(csv_path)
    return paths
