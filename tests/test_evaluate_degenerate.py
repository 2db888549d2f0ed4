"""Degenerate designs are shown as such in print, friedman.json and the tables: identical rankings (F infinite),
all ties (no ranking information), a single test set (no omnibus test; nothing can be significant)."""

from __future__ import annotations

import json
import math
from pathlib import Path

from erc.evaluation import evaluate

from helpers.evaluation import compose_evaluate

INSTANCES = ["compm_org", "compm_bal", "emoone_org", "emoone_bal", "todkat_org", "todkat_bal"]


def scores_csv(tmp_path: Path, rows: dict[str, list[float]]) -> Path:
    path = tmp_path / "scores.csv"
    lines = ["test_set," + ",".join(INSTANCES)] + [f"{t}," + ",".join(map(str, v)) for t, v in rows.items()]
    path.write_text("\n".join(lines) + "\n")
    return path


def strict_json(path: Path) -> dict:
    """friedman.json as a strict JSON parser reads it: Infinity and NaN are not JSON."""
    def refuse(name: str) -> None:
        raise AssertionError(f"{path} holds {name}, which is not JSON")
    return json.loads(path.read_text(), parse_constant=refuse)


def test_identical_rankings_show_an_infinite_f_with_a_note(tmp_path, capsys):
    # the case: k = 6 instances ranked identically on n = 2 test sets printed F(5, 5) = 1876499844737705.750
    row = [0.70, 0.68, 0.66, 0.64, 0.62, 0.60]
    evaluate(compose_evaluate(tmp_path, f"scores={scores_csv(tmp_path, {'meld_org': row, 'meld_bal': row})}"))
    printed = capsys.readouterr().out
    assert "Iman-Davenport F(5, 5) = ∞, p = 0. Degenerate: every test set ranks the instances identically" in printed
    assert "Friedman χ²(5) = 10.000" in printed and "maximum n(k-1) = 10" in printed
    omnibus = strict_json(tmp_path / "friedman.json")["omnibus"]
    assert omnibus["iman_davenport_f"] is None and omnibus["chi2"] == 10
    assert "maximum n(k-1) = 10" in omnibus["degenerate"]
    assert r"= $\infty$" in (tmp_path / "table4.tex").read_text()


def test_all_ties_are_undefined_statistics_and_p_one(tmp_path, capsys):
    flat = [0.5] * len(INSTANCES)
    scores = scores_csv(tmp_path, {"meld_org": flat, "meld_bal": flat})
    result = evaluate(compose_evaluate(tmp_path, f"scores={scores}"))
    assert "undefined: every test set ties all instances: no ranking information" in capsys.readouterr().out
    omnibus = strict_json(tmp_path / "friedman.json")["omnibus"]
    assert omnibus["chi2"] is None and omnibus["iman_davenport_f"] is None and omnibus["f_p"] is None
    assert math.isnan(result["omnibus"]["chi2"])
    assert {p["p_adj"] for p in result["comparisons"]["pairs"]} == {1.0}
    assert len(result["ties"]) == 2


def test_a_single_test_set_skips_the_omnibus_test_and_says_nothing_can_be_significant(tmp_path):
    one_row = scores_csv(tmp_path, {"meld_org": [0.9, 0.1, 0.8, 0.2, 0.7, 0.3]})
    result = evaluate(compose_evaluate(tmp_path, f"scores={one_row}"))
    assert result["omnibus"]["not_computed"] == "Friedman's omnibus test needs at least 2 test sets (n = 1)"
    assert result["comparisons"]["critical_rank_sum_difference"] is None
    # largest difference k - 1 = 5: raw p = 2 / (k (k-1)) = 1/15, times m = 3 comparisons = 0.2
    md = (tmp_path / "table4.md").read_text()
    assert "Friedman's omnibus test needs at least 2 test sets (n = 1): not computed." in md
    assert ("No comparison can be significant at alpha = 0.05 in this design: even the largest possible rank-sum "
            "difference, 5, has adjusted p = 0.2000 (k=6, n=1, m=3).") in md
    assert not any(p["significant"] for p in result["comparisons"]["pairs"])


def test_two_instances_skip_the_omnibus_test_by_name(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("test_set,compm_org,compm_bal\nmeld_org,0.6,0.7\nmeld_bal,0.5,0.8\n")
    result = evaluate(compose_evaluate(tmp_path, f"scores={path}"))
    assert result["omnibus"]["not_computed"] == "Friedman's omnibus test needs at least 3 instances (k = 2)"
    assert strict_json(tmp_path / "friedman.json")["comparisons"]["m"] == 1
