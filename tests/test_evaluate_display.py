"""How Table III/IV print their numbers, in process: p-values on the exact fraction (truncated as the paper prints
them, or rounded half-to-even), the omnibus sentence of each kind of design, and LaTeX-safe text."""

from __future__ import annotations

import math
from fractions import Fraction

import pandas as pd
import pytest

from erc.evaluation.analysis import AGGREGATION, TIES_HANDLING, rank_analysis
from erc.evaluation.collect import COLUMNS
from erc.evaluation.friedman import exact_pvalue_fraction
from erc.evaluation.tables import Display, _tex_escape, omnibus_text, write_table3, write_table4


@pytest.mark.parametrize("value,mode,digits,shown", [
    (Fraction(20259, 100000), "truncate", 4, "0.2025"),   # the paper's 0.20259
    (Fraction(20259, 100000), "round", 4, "0.2026"),
    (Fraction(15, 10**5), "round", 4, "0.0002"),         # half to even: 1.5 -> 2 ...
    (Fraction(25, 10**5), "round", 4, "0.0002"),         # ... and 2.5 -> 2
    (Fraction(1, 10**6), "truncate", 4, "<0.0001"),       # positive but below the last digit
    (Fraction(5, 10**5), "round", 4, "<0.0001"),          # rounds to 0 (half to even), still positive
    (Fraction(0), "truncate", 4, "0.0000"),
    (Fraction(1), "truncate", 4, "1.0000"),
    (Fraction(1), "round", 2, "1.00"),
    (Fraction(2, 3), "truncate", 2, "0.66"),
    (Fraction(2, 3), "round", 2, "0.67"),
    (Fraction(1, 200), "truncate", 2, "<0.01"),
    (Fraction(1, 3), "truncate", 1, "0.3"),                # one decimal is the least
])
def test_p_values_print_from_the_exact_fraction(value, mode, digits, shown) -> None:
    assert Display(p_digits=digits, p_mode=mode).p(value) == shown


def test_the_default_display_prints_p_as_the_paper_does() -> None:
    """Four decimals, truncated: the paper's 0.20259 is 0.2025."""
    assert Display().p(Fraction(20259, 100000)) == "0.2025"


@pytest.mark.parametrize("settings,message", [({"p_mode": "ceil"}, "display.p_mode must be 'truncate' or 'round'"),
                                              ({"p_digits": 0}, "display.p_digits must be >= 1, got 0")])
def test_bad_display_settings_are_refused_naming_the_key(settings, message) -> None:
    with pytest.raises(ValueError, match=message):
        Display(**settings)


def test_display_names_models_sources_instances_and_test_sets() -> None:
    display = Display(names={"compm": "CoMPM"}, sources={"bal": "Balanced"})
    assert display.model("compm[pm=scratch]") == "CoMPM [pm=scratch]" and display.model("other") == "other"
    assert display.instance("compm[pm=scratch]_bal") == "CoMPM [pm=scratch] Balanced"
    assert display.test_set("meld_bal") == "MELD Balanced" and display.test_set("mine_x") == "mine_x"
    assert display.instance("emoone[gray=teacher_post]_bal") == "emoone [gray=teacher_post] Balanced"


def test_the_omnibus_sentence_of_each_kind_of_design() -> None:
    """A test not run says why; undefined statistics name their degrees of freedom; an infinite F shows as ∞ with the
    degeneracy; an ordinary one gives chi-square and F to 3 decimals and p to 3 significant digits."""
    base = {"chi2_df": 2, "f_df1": 2, "f_df2": 6}
    assert omnibus_text({"not_computed": "needs 3"}) == "needs 3: not computed."
    undefined = omnibus_text({**base, "chi2": math.nan, "degenerate": "all tied"})
    assert undefined == "Friedman χ²(2) and Iman-Davenport F(2, 6) undefined: all tied."
    infinite = omnibus_text({**base, "chi2": 8.0, "chi2_p": 0.0183156, "iman_davenport_f": math.inf, "f_p": 0.0,
                             "degenerate": "identical"})
    assert infinite == ("Friedman χ²(2) = 8.000, p = 0.0183; Iman-Davenport F(2, 6) = ∞, p = 0. "
                        "Degenerate: identical.")
    ordinary = omnibus_text({**base, "chi2": 4.5, "chi2_p": 0.105399, "iman_davenport_f": 3.8571428, "f_p": 0.0841,
                             "degenerate": None})
    assert ordinary == "Friedman χ²(2) = 4.500, p = 0.105; Iman-Davenport F(2, 6) = 3.857, p = 0.0841."


def test_latex_text_escapes_every_special_character() -> None:
    assert _tex_escape(r"a_b & 50% #1 <0.05 ± — – χ² ∞ \x") == (
        r"a\_b \& 50\% \#1 \textless{}0.05 $\pm$ --- -- $\chi^2$ $\infty$ \textbackslash{}x")


# ---- the notes and the comparison list, written in process from small hand-checked designs -------------------------

def long_table(cells: dict[tuple[str, str, str], list[float]]) -> pd.DataFrame:
    """The evaluation's long table: one row per (classifier, source, test set, seed)."""
    rows = [{"classifier": c, "variant": None, "source": s, "benchmark": t.split("_")[0], "test_set": t, "seed": seed,
             "wf1": wf1, "origin": "test"}
            for (c, s, t), scores in cells.items() for seed, wf1 in enumerate(scores, start=1)]
    return pd.DataFrame(rows, columns=COLUMNS)


def notes(md: str) -> list[str]:
    return [line[2:] for line in md.splitlines() if line.startswith("- ")]


def test_a_seed_without_a_score_is_not_counted_among_a_cells_seeds(tmp_path) -> None:
    """A job that reported no W-F1 for a test set (NaN) adds no seed to that cell: its mean, std and n are those of
    the scored seeds, so the cell reads as one seed (no ± nan) and says n=1 beside the two-seed cells."""
    table = long_table({("compm", "org", "meld_org"): [0.60, 0.62], ("compm", "bal", "meld_org"): [0.70, math.nan]})
    write_table3(table, tmp_path, Display())
    frame = pd.read_csv(tmp_path / "table3.csv")
    assert frame.set_index("source").loc["bal", "seeds"] == 1
    assert "| MELD | Bal | **70.00 (n=1)** |" in (tmp_path / "table3.md").read_text()


def test_table_iii_marks_a_cell_with_fewer_seeds_a_missing_cell_and_says_how_cells_are_made(tmp_path) -> None:
    """Two seeds per cell except one (shown with its n) and one job with no score (the dash, and its note)."""
    table = long_table({("compm", "org", "meld_org"): [0.60, 0.62], ("compm", "bal", "meld_org"): [math.nan],
                        ("emoone", "org", "meld_org"): [0.50, 0.54], ("emoone", "bal", "meld_org"): [0.70]})
    write_table3(table, tmp_path, Display())
    md = (tmp_path / "table3.md").read_text()
    assert "| MELD | Org | 61.00 ± 1.41 | 52.00 ± 2.83 |" in md            # sample std: 0.02 / sqrt(2), 0.04 / sqrt(2)
    assert "| MELD | Bal | — | **70.00 (n=1)** |" in md                   # the cells after a gap stay in place
    assert "\n| :--- | ---: | ---: | ---: |\n" in md                      # names left, numbers right
    assert notes(md)[1:] == ["mean ± sample standard deviation over seeds (n=2 unless shown).",
                             "—: no finished run reported this score."]
    one_seed = long_table({("compm", "org", "meld_org"): [0.60], ("emoone", "org", "meld_org"): [0.50]})
    write_table3(one_seed, tmp_path, Display())
    assert len(notes((tmp_path / "table3.md").read_text())) == 1          # one seed, every cell: no ± and no dash


def test_table_iv_lists_each_comparison_its_ties_and_its_cells_seeds(tmp_path) -> None:
    """4 instances on 3 test sets, one tie. Ranks (1 = best): meld_org 3, 1.5, 1.5, 4; meld_nat 3, 1, 2, 4;
    meld_bal 4, 1, 2, 3 -> rank sums a_org 10, a_bal 3.5, b_org 5.5, b_bal 11; a_bal's diff 6.5, b_bal's -5.5."""
    scores = pd.DataFrame({"a_org": [0.60, 0.30, 0.50], "a_bal": [0.65, 0.40, 0.70], "b_org": [0.65, 0.35, 0.60],
                           "b_bal": [0.50, 0.20, 0.55]},
                          index=pd.Index(["meld_org", "meld_nat", "meld_bal"], name="test_set"))
    analysis = rank_analysis(scores, [("a_bal", "a_org"), ("b_bal", "b_org")])
    write_table4(scores, analysis, tmp_path, Display(), seeds=3)
    md = (tmp_path / "table4.md").read_text()
    raw = {d: exact_pvalue_fraction(Fraction(d), 4, 3) for d in (6.5, 5.5)}
    comparisons = md.split("### Comparisons\n")[1].strip().split("\n\n")[0].splitlines()
    assert comparisons[0] == "| Instance | Control | Rank sum | Control rank sum | Diff. | p raw | p adjusted |"
    assert comparisons[2:] == [
        f"| a Bal | a Org | 3.5 | 10 | 6.5 | {Display().p(raw[6.5])} | {Display().p(min(1, 2 * raw[6.5]))} |",
        f"| b Bal | b Org | 11 | 5.5 | -5.5 | {Display().p(raw[5.5])} | {Display().p(min(1, 2 * raw[5.5]))} |"]
    assert raw[6.5] < 2 * raw[6.5] < 1                                      # raw and adjusted tell apart
    said = notes(md)
    assert said[1] == f"Cells are the {AGGREGATION} (up to 3 seeds)."
    assert f"Ties: MELD Org: a_bal, b_org share rank 1.5. Handling: {TIES_HANDLING}." in said
    assert "| MELD Org | 60.00 (3) | **65.00 (1.5)** | **65.00 (1.5)** | 50.00 (4) |" in md
    assert "| Diff. | – | 6.5 | – | -5.5 |" in md
    assert any(n.endswith("capped at 1, truncated to 4 decimals.") for n in said)
    write_table4(scores, analysis, tmp_path, Display(p_mode="round", p_digits=3), seeds=3)
    assert any(n.endswith("capped at 1, rounded to 3 decimals.") for n in notes((tmp_path / "table4.md").read_text()))
    assert "\n| :--- | ---: | ---: | ---: | ---: |\n" in md


def test_table_iv_without_ties_or_comparisons_says_so(tmp_path) -> None:
    """Only Org instances: nothing to compare (m = 0), every rank distinct, one seed per cell."""
    scores = pd.DataFrame({"a_org": [0.6, 0.5], "b_org": [0.5, 0.6], "c_org": [0.4, 0.3]},
                          index=pd.Index(["meld_org", "meld_bal"], name="test_set"))
    write_table4(scores, rank_analysis(scores, []), tmp_path, Display(), seeds=1)
    md = (tmp_path / "table4.md").read_text()
    said = notes(md)
    assert "No ties." in said and "No comparisons: no instance has its control in the table." in said
    assert not any(n.startswith("Cells are") for n in said) and "### Comparisons" not in md


def test_table_iii_keeps_a_benchmark_outside_the_papers_after_the_papers(tmp_path) -> None:
    """A scores file may hold a benchmark of the user's own: it gets its rows, after the paper's benchmarks."""
    table = long_table({("compm", "org", "mine_org"): [0.40], ("compm", "org", "meld_org"): [0.60]})
    write_table3(table, tmp_path, Display())
    frame = pd.read_csv(tmp_path / "table3.csv")
    assert list(frame["benchmark"]) == ["meld", "mine"] and list(frame["wf1_pct_mean"]) == [60.0, 40.0]
    assert "| mine | Org | **40.00** |" in (tmp_path / "table3.md").read_text()


def test_table_iv_with_several_comparisons_per_instance_has_no_diff_row(tmp_path) -> None:
    """All-pairs mode compares an instance with several others: one Diff. or p cell per column cannot say which
    comparison it is, so those rows are left out and the comparisons section lists each pair."""
    from erc.evaluation.analysis import comparison_pairs

    scores = pd.DataFrame({"a_org": [0.6, 0.5], "a_nat": [0.5, 0.6], "a_bal": [0.4, 0.3]},
                          index=pd.Index(["meld_org", "meld_bal"], name="test_set"))
    analysis = rank_analysis(scores, comparison_pairs(list(scores.columns), "all"))
    write_table4(scores, analysis, tmp_path, Display(), seeds=1)
    md = (tmp_path / "table4.md").read_text()
    table, section = md.split("### Comparisons\n")
    assert "| Rank sum | 3 | 3 | 6 |" in table and "| Diff." not in table and "| p (Bonferroni" not in table
    comparisons = section.strip().split("\n\n")[0].splitlines()
    assert [row.split(" | ")[:2] for row in comparisons[2:]] == [["| a Nat", "a Org"], ["| a Bal", "a Org"],
                                                                 ["| a Bal", "a Nat"]]
