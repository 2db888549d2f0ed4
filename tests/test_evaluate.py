"""evaluate.py end to end: the paper's Table IV from its W-F1 matrix, sweep folders of results.json, bad input."""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest

from erc.data import DataError
from erc.evaluation import evaluate
from erc.evaluation.analysis import IncompleteResultsError
from erc.paths import PROJECT_ROOT

from helpers.config import compose_config
from helpers.evaluation import INSTANCES, PAPER_SCORES, compose_evaluate, paper_matrix, write_paper_sweep, write_result

# The paper's Table IV (Kaplan et al.): ranks per test set as printed in parentheses, then its bottom rows.
PAPER_RANKS = {
    "meld_org": [6, 4, 3, 5, 2, 1, 9, 8, 7],
    "meld_nat": [7, 1, 3, 6, 2, 5, 9, 4, 8],
    "meld_bal": [8, 6, 2, 5, 4, 1, 9, 7, 3],
    "emorynlp_org": [6, 1, 3, 8, 4, 2, 9, 7, 5],
    "emorynlp_nat": [6, 2, 5, 8, 4, 3, 9, 1, 7],
    "emorynlp_bal": [7, 4, 2, 8, 5, 1, 9, 6, 3],
    "iemocap_org": [6, 2, 3, 5, 1, 4, 8, 7, 9],
    "iemocap_nat": [9, 1, 6, 8, 2, 5, 7, 3, 4],
    "iemocap_bal": [8, 3, 2, 9, 4, 1, 7, 6, 5],
}
PAPER_RANK_SUMS = [63, 24, 29, 62, 28, 23, 76, 49, 51]
PAPER_DIFFS = {"compm_nat": 39, "compm_bal": 34, "emoone_nat": 34, "emoone_bal": 39, "todkat_nat": 27,
               "todkat_bal": 25}
PAPER_P_ADJ = {"compm_nat": "0.0034", "compm_bal": "0.0186", "emoone_nat": "0.0186", "emoone_bal": "0.0034",
               "todkat_nat": "0.1273", "todkat_bal": "0.2025"}


def p_row(table4_md: str) -> list[str]:
    line = next(line for line in table4_md.splitlines() if line.startswith("| p (Bonferroni"))
    return [cell.strip() for cell in line.strip("|").split("|")[1:]]


# LaTeX's escapes undone, longest first ("---" is an em dash before "--" is an en dash).
TEX_UNESCAPED = [(r"\textbackslash{}", "\\"), (r"\&", "&"), (r"\%", "%"), (r"\_", "_"), (r"\#", "#"),
                 (r"\textless{}", "<"), (r"$\pm$", "±"), ("---", "—"), ("--", "–"), (r"$\chi^2$", "χ²"),
                 (r"$\infty$", "∞")]


def tex_text(text: str) -> str:
    for escaped, char in TEX_UNESCAPED:
        text = text.replace(escaped, char)
    return re.sub(r"\\textbf\{(.*)\}", r"**\1**", text)


def markdown_table(md: str) -> list[list[str]]:
    """The cells of the first Markdown table, header first, without its alignment rule."""
    lines = md[md.index("\n|") + 1:].split("\n\n")[0].splitlines()
    return [[cell.strip() for cell in line.strip("|").split("|")] for i, line in enumerate(lines) if i != 1]


def assert_latex_is_the_markdown_table(md_path: Path, tex_path: Path, spec: str, header_rows: int) -> None:
    """The .tex table holds the .md table's cells, row by row (bold as \\textbf), under a column spec of one letter
    per cell, with the notes as its caption; its header (LaTeX: a model row of \\multicolumn spans over a source
    row) names the same columns."""
    md, tex = md_path.read_text(), tex_path.read_text()
    assert f"\\begin{{tabular}}{{{spec}}}" in tex and "**" not in tex          # LaTeX has no Markdown bold
    rows = [line.removesuffix(r" \\").split(" & ") for line in tex.splitlines() if line.endswith(r" \\")]
    table = markdown_table(md)
    assert [[tex_text(cell) for cell in row] for row in rows[header_rows:]] == table[1:]
    assert all(len(row) == len(spec) for row in table)
    header = rows[0]
    if header_rows == 2:                     # \multicolumn{span}{c}{model} above each source
        spans = [re.fullmatch(r"\\multicolumn\{(\d+)\}\{c\}\{(.*)\}", cell).groups() for cell in header[1:]]
        models = [tex_text(model) for span, model in spans for _ in range(int(span))]
        header = [header[0], *[f"{model} {source}" for model, source in zip(models, rows[1][1:], strict=True)]]
    assert [tex_text(cell) for cell in header] == table[0]
    lines = tex.splitlines()
    body = [i for i, line in enumerate(lines) if line.endswith(r" \\")][header_rows:]
    rules = [body[0] - 1, *[i - 1 for i in body if lines[i].startswith("Rank sum &")]]
    assert [i for i, line in enumerate(lines) if line == r"\midrule"] == rules   # under the header, above the sums
    notes = " ".join(line[2:] for line in md.splitlines() if line.startswith("- "))
    assert tex_text(re.search(r"\\caption\{(.*)\}\n", tex).group(1)) == notes


def test_paper_table_iv_is_reproduced_from_its_scores(tmp_path):
    result = evaluate(compose_evaluate(tmp_path, f"scores={PAPER_SCORES}"))

    assert result["instances"] == INSTANCES
    assert {t: [result["ranks"][t][i] for i in INSTANCES] for t in PAPER_RANKS} == PAPER_RANKS
    assert [result["rank_sums"][i] for i in INSTANCES] == PAPER_RANK_SUMS
    table4 = pd.read_csv(tmp_path / "table4.csv")
    assert list(table4.columns) == ["instance", "control", "rank_sum", "control_rank_sum", "diff", "p_raw", "p_adj",
                                    "m", "partial"]
    assert set(table4["m"]) == {6} and not table4["partial"].any()
    assert dict(zip(table4["instance"], table4["diff"], strict=True)) == PAPER_DIFFS
    assert list(table4["control"]) == ["compm_org"] * 2 + ["emoone_org"] * 2 + ["todkat_org"] * 2
    # Bonferroni over the 6 comparisons made, raw p kept beside it
    assert table4["p_adj"].to_numpy() == pytest.approx((6 * table4["p_raw"]).clip(upper=1).to_numpy(), rel=1e-12)
    md = (tmp_path / "table4.md").read_text()
    assert p_row(md) == ["–", *[PAPER_P_ADJ[i] for i in INSTANCES[1:3]], "–",
                         *[PAPER_P_ADJ[i] for i in INSTANCES[4:6]], "–", *[PAPER_P_ADJ[i] for i in INSTANCES[7:9]]]
    assert "65.43 (6)" in md and "**67.27 (1)**" in md
    tex = (tmp_path / "table4.tex").read_text()
    assert r"\multicolumn{3}{c}{CoMPM}" in tex and "0.2025" in tex
    assert_latex_is_the_markdown_table(tmp_path / "table4.md", tmp_path / "table4.tex", "l" + "r" * 9, header_rows=2)

    friedman = json.loads((tmp_path / "friedman.json").read_text())
    assert friedman["comparisons"]["m"] == 6 and friedman["ties"] == []
    omni = friedman["omnibus"]
    assert omni["chi2_df"] == 8 and omni["f_df2"] == 64 and omni["chi2"] > 0 and 0 < omni["f_p"] < omni["chi2_p"]
    for name in ("table3.md", "table3.csv", "table3.tex", "cd_diagram.png", "ranks.png"):
        assert (tmp_path / name).stat().st_size > 0, name
    assert (tmp_path / "cd_diagram.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    # the result and the printed listing name every file written, table4.csv included
    assert sorted(Path(f).name for f in result["files"]) == sorted(p.name for p in tmp_path.iterdir())


def test_table_iii_from_the_paper_scores(tmp_path):
    evaluate(compose_evaluate(tmp_path, f"scores={PAPER_SCORES}"))
    table3 = pd.read_csv(tmp_path / "table3.csv")
    assert list(table3.columns) == ["benchmark", "source", "model", "wf1_pct_mean", "wf1_pct_std", "seeds"]
    scores = paper_matrix()
    for row in table3.itertuples():
        assert row.wf1_pct_mean == pytest.approx(scores[f"{row.benchmark}_org"][f"{row.model}_{row.source}"])
    assert len(table3) == 27 and set(table3["seeds"]) == {1}
    md = (tmp_path / "table3.md").read_text()
    assert "| MELD | Bal | 66.16 | **67.27** | 64.27 |" in md
    assert_latex_is_the_markdown_table(tmp_path / "table3.md", tmp_path / "table3.tex", "llrrr", header_rows=1)
    rows = markdown_table(md)[1:]                                   # the paper's order of benchmarks and sources
    assert [row[:2] for row in rows] == [[b, s] for b in ("MELD", "EmoryNLP", "IEMOCAP") for s in ("Org", "Nat", "Bal")]


def test_p_values_can_be_rounded_instead_of_truncated(tmp_path):
    evaluate(compose_evaluate(tmp_path, f"scores={PAPER_SCORES}", "display.p_mode=round"))
    # TODKAT Bal's adjusted p is 0.20259...: truncated 0.2025 (the paper), rounded 0.2026
    assert p_row((tmp_path / "table4.md").read_text())[-1] == "0.2026"


def test_all_pairs_mode_corrects_over_every_comparison(tmp_path):
    result = evaluate(compose_evaluate(tmp_path, f"scores={PAPER_SCORES}", "comparisons.mode=all"))
    pairs = result["comparisons"]["pairs"]
    assert len(pairs) == 36 and result["comparisons"]["m"] == 36
    pair = next(p for p in pairs if (p["instance"], p["control"]) == ("compm_nat", "compm_org"))
    assert pair["p_adj"] == pytest.approx(min(1.0, 36 * pair["p_raw"]))


def test_sweep_folder_with_seeds_gives_mean_and_std(tmp_path):
    sweep = tmp_path / "multirun"
    write_paper_sweep(sweep, seeds=(1, 2))
    out = tmp_path / "out"
    result = evaluate(compose_evaluate(out, f"sweep={sweep}"))

    # seed means are the paper's scores, so Table IV's statistics are the paper's
    assert [result["rank_sums"][i] for i in INSTANCES] == PAPER_RANK_SUMS
    assert p_row((out / "table4.md").read_text())[1:3] == [PAPER_P_ADJ["compm_nat"], PAPER_P_ADJ["compm_bal"]]
    assert result["max_seeds_per_cell"] == 2 and "mean W-F1 over seeds" in result["aggregation"]
    assert "mean W-F1 over seeds" in (out / "table4.md").read_text()
    table3 = pd.read_csv(out / "table3.csv")
    assert set(table3["seeds"]) == {2}
    # two seeds at +-0.05 points: sample std = 0.1 / sqrt(2) points
    assert table3["wf1_pct_std"].to_numpy() == pytest.approx([0.1 / 2 ** 0.5] * 27)
    row = table3[(table3.benchmark == "meld") & (table3.source == "bal") & (table3.model == "emoone")].iloc[0]
    assert row.wf1_pct_mean == pytest.approx(67.27)
    assert "**67.27 ± 0.07**" in (out / "table3.md").read_text()
    assert_latex_is_the_markdown_table(out / "table3.md", out / "table3.tex", "llrrr", header_rows=1)
    assert result["input"]["kind"] == "sweep"


def test_missing_runs_show_as_missing_and_the_friedman_test_refuses(tmp_path):
    sweep = tmp_path / "multirun"
    write_paper_sweep(sweep, seeds=(1,))
    # the TODKAT Bal job on IEMOCAP failed (no results.json); CoMPM Nat on MELD never reached its nat test
    (sweep / "todkat_iemocap_bal_seed1" / "results.json").unlink()
    path = sweep / "compm_meld_nat_seed1" / "results.json"
    result = json.loads(path.read_text())
    result["metrics"]["test/meld_nat/wf1"] = None
    path.write_text(json.dumps(result))
    out = tmp_path / "out"

    with pytest.raises(IncompleteResultsError) as err:
        evaluate(compose_evaluate(out, f"sweep={sweep}"))
    message = str(err.value)
    # the failed job is named as a job (not as its three cells), the unreported test as a cell
    assert "1 job(s) absent from the classifier x source x benchmark x seed grid: (todkat, bal, iemocap, seed 1)" \
        in message
    assert "1 cell(s) without a score: (compm, nat, meld_nat)" in message
    assert "k = 7 instances on n = 9 test sets with Bonferroni m = 4, instead of k = 9, n = 9 and m = 6" in message
    assert "allow_partial=true" in message and "\n" not in message
    table3 = (out / "table3.md").read_text()
    assert "| IEMOCAP | Bal | 67.87 | 67.81 | — |" in table3
    table4 = (out / "table4.md").read_text()
    assert "Friedman test not run" in table4 and "—" in table4 and "Rank sum" not in table4
    assert_latex_is_the_markdown_table(out / "table3.md", out / "table3.tex", "llrrr", header_rows=1)
    assert_latex_is_the_markdown_table(out / "table4.md", out / "table4.tex", "l" + "r" * 9, header_rows=2)
    assert not (out / "table4.csv").exists() and not (out / "friedman.json").exists()


def test_ties_are_averaged_and_reported(tmp_path):
    scores = tmp_path / "scores.csv"
    scores.write_text("test_set,a_org,a_bal,b_org,b_bal\n"
                      "meld_org,0.60,0.65,0.65,0.50\n"
                      "meld_bal,0.40,0.70,0.55,0.50\n"
                      "meld_nat,0.30,0.35,0.32,0.31\n")
    result = evaluate(compose_evaluate(tmp_path, f"scores={scores}"))
    assert result["ranks"]["meld_org"] == {"a_org": 3.0, "a_bal": 1.5, "b_org": 1.5, "b_bal": 4.0}
    assert result["ties"] == [{"test_set": "meld_org", "instances": ["a_bal", "b_org"], "rank": 1.5}]
    assert "average" in result["ties_handling"]
    pair = result["comparisons"]["pairs"][1]  # b_bal vs b_org: rank sums 10 vs 5.5 -> diff -4.5
    assert (pair["instance"], pair["diff"]) == ("b_bal", -4.5)
    from erc.evaluation.friedman import exact_pvalue
    assert pair["p_raw"] == exact_pvalue(5, 4, 3)
    assert "share rank 1.5" in (tmp_path / "table4.md").read_text()


def test_offline_wandb_run_gets_the_tables(tmp_path):
    result = evaluate(compose_evaluate(tmp_path, f"scores={PAPER_SCORES}", "wandb.log=true", "wandb.group=paper"))
    run_dir = Path(result["wandb_dir"])
    tables = {p.name.split("_")[0] if not p.name.startswith("table4_ranks") else "table4_ranks": p
              for p in run_dir.glob("media/table/*.table.json")}
    assert {"table3", "table4", "table4_ranks"} <= set(tables)
    table4 = json.loads(tables["table4"].read_text())
    assert table4["columns"][:5] == ["instance", "control", "rank_sum", "control_rank_sum", "diff"]
    assert [row[4] for row in table4["data"]] == [PAPER_DIFFS[i] for i in INSTANCES if not i.endswith("org")]
    assert list(run_dir.glob("media/images/plots/cd_diagram*.png"))


def test_reading_wandb_offline_is_a_clear_error(tmp_path):
    with pytest.raises(DataError, match=r"WANDB_MODE=offline.*sweep="):
        evaluate(compose_evaluate(tmp_path, "wandb.group=some-sweep"))


@pytest.mark.parametrize("content,expected", [
    ("test_set,compm_org,compm_best\nmeld_org,1,2\n", r"line 1, column 3: 'compm_best' is not <classifier>_<source>"),
    ("test_set,compm_org,compm_bal\nmeld_org,0.5,abc\n", r"line 2, column 'compm_bal': 'abc' is not a number"),
    ("test_set,compm_org,compm_bal\nmeld_org,0.5\n", r"line 2: 2 fields, the header has 3"),
    ("test_set,compm_org,compm_bal\nmeld_org,0.5,0.6\nmeld_org,0.5,0.6\n", r"line 3: test set 'meld_org' already"),
    ("test_set,compm_org,compm_bal\nmeld_org,0.5,-0.6\n", r"line 2, column 'compm_bal': W-F1 must be a fraction"),
])
def test_bad_scores_csv_names_file_line_and_column(tmp_path, content, expected):
    path = tmp_path / "bad.csv"
    path.write_text(content)
    with pytest.raises(DataError, match=expected) as err:
        evaluate(compose_evaluate(tmp_path / "out", f"scores={path}"))
    assert str(path) in str(err.value)


def test_bad_results_json_names_file_and_field(tmp_path):
    sweep = tmp_path / "multirun"
    path = write_result(sweep, "compm", "meld", "org", 1, {"meld_org": 0.6})
    result = json.loads(path.read_text())
    del result["identity"]["source"]
    path.write_text(json.dumps(result))
    with pytest.raises(DataError, match=r"results.json: field 'identity.source' is missing") as err:
        evaluate(compose_evaluate(tmp_path / "out", f"sweep={sweep}"))
    assert str(path) in str(err.value)
    path.write_text("{not json")
    with pytest.raises(DataError, match=r"results.json: not valid JSON \(line 1"):
        evaluate(compose_evaluate(tmp_path / "out", f"sweep={sweep}"))
    with pytest.raises(DataError, match=re.escape("no results.json below")):
        evaluate(compose_evaluate(tmp_path / "out", f"sweep={tmp_path / 'out'}"))


def test_the_same_job_twice_is_refused_not_averaged(tmp_path):
    sweep = tmp_path / "multirun"
    write_result(sweep / "a", "compm", "meld", "org", 1, {"meld_org": 0.6})
    write_result(sweep / "b", "compm", "meld", "org", 1, {"meld_org": 0.7})
    with pytest.raises(DataError, match="the same job appears twice"):
        evaluate(compose_evaluate(tmp_path / "out", f"sweep={sweep}"))
    # select= narrows the sweep to the jobs to evaluate
    write_result(sweep / "c", "compm", "meld", "org", 2, {"meld_org": 0.5})
    write_result(sweep / "d", "compm", "meld", "bal", 2, {"meld_org": 0.7})
    result = evaluate(compose_evaluate(tmp_path / "out", f"sweep={sweep}", "+select.seed=[2]"))
    assert result["scores"] == {"meld_org": {"compm_org": 0.5, "compm_bal": 0.7}}


def test_command_line_reproduces_table_iv(tmp_path):
    out = tmp_path / "run"
    done = subprocess.run([sys.executable, "evaluate.py", f"scores={PAPER_SCORES.relative_to(PROJECT_ROOT)}",
                           f"hydra.run.dir={out}"], cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert "| p (Bonferroni, m=6) | – | 0.0034 | 0.0186 |" in done.stdout
    assert f"Evaluation outputs in {out}" in done.stdout + done.stderr
    assert (out / "table4.csv").exists() and (out / "cd_diagram.png").exists()


def test_cd_cliques_join_exactly_the_instances_no_test_separates(tmp_path):
    from erc.evaluation.plots import _cliques

    result = evaluate(compose_evaluate(tmp_path, f"scores={PAPER_SCORES}", "comparisons.mode=all"))
    average = {i: s / result["n"] for i, s in result["rank_sums"].items()}
    ordered = sorted(average, key=average.get)
    significant = {frozenset((p["instance"], p["control"])) for p in result["comparisons"]["pairs"] if p["significant"]}
    cliques = _cliques(ordered, significant)
    critical = result["comparisons"]["critical_rank_sum_difference"] / result["n"]
    assert cliques
    for first, last in cliques:
        assert average[ordered[last]] - average[ordered[first]] < critical
        if last + 1 < len(ordered):  # maximal: one more instance would include a significant pair
            assert average[ordered[last + 1]] - average[ordered[first]] >= critical
    covered = {i for first, last in cliques for i in range(first, last + 1)}
    singles = set(range(len(ordered))) - covered
    assert all(min(abs(average[ordered[i]] - average[o]) for o in ordered if o != ordered[i]) >= critical
               for i in singles)


def test_ablation_variants_become_separate_instances_each_with_its_own_control(tmp_path):
    sweep = tmp_path / "multirun"
    for variant, base in (("pm=pretrained", 0.60), ("pm=scratch", 0.50)):
        for source, gain in (("org", 0.0), ("bal", 0.02)):
            tests = {f"meld_{split}": base + gain + 0.01 * i for i, split in enumerate(("org", "nat", "bal"))}
            path = write_result(sweep / variant, "compm", "meld", source, 1, tests)
            result = json.loads(path.read_text())
            result["identity"]["variant"] = variant
            path.write_text(json.dumps(result))
    result = evaluate(compose_evaluate(tmp_path / "out", f"sweep={sweep}"))
    assert result["instances"] == ["compm[pm=pretrained]_org", "compm[pm=pretrained]_bal", "compm[pm=scratch]_org",
                                   "compm[pm=scratch]_bal"]
    assert [(p["instance"], p["control"]) for p in result["comparisons"]["pairs"]] == [
        ("compm[pm=pretrained]_bal", "compm[pm=pretrained]_org"), ("compm[pm=scratch]_bal", "compm[pm=scratch]_org")]
    assert "CoMPM [pm=scratch] Bal" in (tmp_path / "out" / "table4.md").read_text()


@pytest.fixture(scope="module")
def real_sweep(tmp_path_factory, benchmark_data, fixtures_dir) -> Path:
    """Two real train() jobs (CoMPM Org and Bal on a few MELD dialogues, tiny backbone) in one sweep folder."""
    from erc.training import train

    root = tmp_path_factory.mktemp("real_sweep")
    data_dir = root / "data"
    (data_dir / "synthetic").mkdir(parents=True)
    (data_dir / "meld").symlink_to(benchmark_data / "meld")
    (data_dir / "synthetic" / "meld_bal").symlink_to(fixtures_dir / "synthetic" / "meld_bal")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("ERC_DATA_DIR", str(data_dir))
        patch.setenv("ERC_SYNTHETIC_DIR", str(data_dir / "synthetic"))
        for number, data in enumerate(("meld", "meld_bal")):
            train(compose_config("train", [
                "classifier=compm", f"data={data}", "classifier.backbone=tiny", "schedule=debug", "logger=none",
                "data.limit_dialogues=4", "trainer.enable_progress_bar=false",
                f"paths.output_dir={root / 'sweep' / f'{number}_{data}'}", f"checkpoint_dir={root / 'checkpoints'}"]))
    return root / "sweep"


@pytest.mark.slow  # two real training jobs: ~30 s on 2 shared cores; the contract-format sweep tests above are fast
def test_sweep_of_real_train_jobs(real_sweep, tmp_path):
    from erc.evaluation.collect import identity_from_config

    results = [json.loads(p.read_text()) for p in sorted(real_sweep.rglob("results.json"))]
    assert [r["identity"]["source"] for r in results] == ["org", "bal"]
    result = evaluate(compose_evaluate(tmp_path, f"sweep={real_sweep}"))

    assert result["instances"] == ["compm_org", "compm_bal"]
    assert result["test_sets"] == ["meld_org", "meld_bal"]
    for r in results:
        instance = f"compm_{r['identity']['source']}"
        for test_set in ("meld_org", "meld_bal"):
            assert result["scores"][test_set][instance] == r["metrics"][f"test/{test_set}/wf1"]
    assert len(pd.read_csv(tmp_path / "table4.csv")) == 1
    table3 = pd.read_csv(tmp_path / "table3.csv")
    assert table3.set_index("source")["wf1_pct_mean"].to_dict() == pytest.approx(
        {r["identity"]["source"]: 100 * r["metrics"]["test/meld_org/wf1"] for r in results})
    # W&B runs carry the same resolved config as results.json: the identity derived from it must match
    for r in results:
        assert identity_from_config(r["config"], "results.json config") == r["identity"]
