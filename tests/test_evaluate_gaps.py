"""What a design lacks, found from a small long score table in process (the whole-pipeline refusals are in
test_evaluate_completeness.py): every kind of gap is listed, wherever in the design it lies."""

from __future__ import annotations

import math

import pandas as pd
import pytest

from erc.evaluation.analysis import IncompleteResultsError, rank_analysis, score_matrix
from erc.evaluation.collect import COLUMNS
from erc.evaluation.completeness import Gaps, find_gaps, planned_comparisons


def long_table(jobs: list[tuple[str, str, object]], benchmark: str = "meld") -> pd.DataFrame:
    """One row per (classifier, source, seed) job, scored on the benchmark's org test set."""
    rows = [{"classifier": c, "variant": None, "source": s, "benchmark": benchmark, "test_set": f"{benchmark}_org",
             "seed": seed, "wf1": 0.5, "origin": f"{c}_{s}_{seed}"} for c, s, seed in jobs]
    return pd.DataFrame(rows, columns=COLUMNS)


def gaps_of(table: pd.DataFrame):
    return find_gaps(table, score_matrix(table), unfinished=[])


def test_an_absent_instance_does_not_hide_the_missing_jobs_of_the_instances_after_it() -> None:
    """compm_nat is absent (emoone has a nat source, so the design has it); compm_bal, after it in table order,
    lacks seed 2: both are listed."""
    table = long_table([("compm", "org", 1), ("compm", "org", 2), ("compm", "bal", 1),
                        ("emoone", "org", 1), ("emoone", "org", 2), ("emoone", "nat", 1), ("emoone", "nat", 2),
                        ("emoone", "bal", 1), ("emoone", "bal", 2)])
    gaps = gaps_of(table)
    assert gaps.missing_instances == ["compm_nat"]
    assert gaps.missing_jobs == ["(compm, bal, meld, seed 2)"]


def test_seeds_read_as_floats_are_seeds_and_only_a_missing_one_is_no_seed() -> None:
    """A scores file with one blank seed reads its seeds as floats (1.0, 2.0, NaN): 1.0 and 2.0 make the seed
    grid, so a job without seed 2.0 is missing; the blank adds no seed of its own."""
    table = long_table([("compm", "org", 1.0), ("compm", "org", 2.0), ("compm", "bal", 1.0),
                        ("compm", "bal", math.nan)])
    assert gaps_of(table).missing_jobs == ["(compm, bal, meld, seed 2.0)"]


def test_the_rank_analysis_itself_refuses_empty_cells_naming_each() -> None:
    """The Friedman design needs every cell: called on a matrix with gaps (not through evaluate, which checks the
    design first), the analysis lists each empty (model, source, test set), column by column, instead of ranking
    around them."""
    model = "emoone[gray=teacher_post]"                                    # a variant with an underscore
    matrix = pd.DataFrame({f"{model}_org": [0.5, math.nan], f"{model}_bal": [0.6, 0.4],
                           "todkat_bal": [math.nan, math.nan]}, index=["meld_org", "meld_bal"])
    with pytest.raises(IncompleteResultsError) as refused:
        rank_analysis(matrix, [])
    assert f"3 missing: ({model}, org, meld_bal); (todkat, bal, meld_org); (todkat, bal, meld_bal)." \
        in str(refused.value)


def test_an_empty_cell_of_a_job_with_one_seed_missing_is_listed_beside_the_missing_job() -> None:
    """compm_bal has seed 1, scored on meld_org only, and no seed 2: the missing job is listed, and so is its empty
    meld_nat cell (no seed scored it), since the job of seed 1 exists and lacks that score."""
    table = long_table([("compm", "org", 1), ("compm", "org", 2), ("compm", "bal", 1)])
    nat = table[table["source"] == "org"].assign(test_set="meld_nat")
    gaps = gaps_of(pd.concat([table, nat], ignore_index=True))
    assert gaps.missing_jobs == ["(compm, bal, meld, seed 2)"]
    assert gaps.missing_cells == ["(compm, bal, meld_nat)"]


def test_the_gap_line_names_each_kind_present_with_its_count_and_entries() -> None:
    """The refusal's one line lists the kinds of gap there are, in the design's order, and no empty kind; a design
    that only has its planned columns has no gap."""
    gaps = Gaps(missing_cells=["(compm, bal, meld_nat)", "(emoone, org, meld_bal)"],
                missing_jobs=["(compm, bal, meld, seed 2)"], planned=["compm_org", "compm_bal"])
    assert gaps.describe() == ("1 job(s) absent from the classifier x source x benchmark x seed grid: (compm, bal, "
                               "meld, seed 2); 2 cell(s) without a score: (compm, bal, meld_nat), (emoone, org, "
                               "meld_bal)")
    assert gaps and not Gaps(planned=["compm_org", "compm_bal"])


@pytest.mark.parametrize("mode, control, m", [("control", "org", 3), ("control", "nat", 2), ("all", "org", 10)])
def test_the_planned_m_counts_the_comparisons_of_the_mode_and_control_asked(mode, control, m) -> None:
    """m of the full design (what Bonferroni would divide by) is counted under the comparisons asked for: in
    ``all`` mode every pair of the 5 planned instances (5 choose 2), in ``control`` mode each model's other sources
    against its own control instance (org: two for compm, one for emoone; nat: two for compm, none for
    emoone, which has no nat instance)."""
    planned = ["compm_org", "compm_nat", "compm_bal", "emoone_org", "emoone_bal"]
    assert planned_comparisons(Gaps(planned=planned), mode, control) == m


def test_the_control_is_planned_in_control_mode_only_and_only_there_named_a_control() -> None:
    """In control mode every model needs its org instance, even when no job of any model trained on org: its
    absence is a missing control, named with what it controls. In all mode nothing is a control: an absent org
    instance is an instance like any other, and a sweep without org sources plans none."""
    pretrained = [("compm", "nat", 1), ("compm", "bal", 1), ("emoone", "nat", 1), ("emoone", "bal", 1)]
    table = long_table(pretrained)
    no_org = find_gaps(table, score_matrix(table), [], mode="control")
    assert no_org.missing_controls == ["compm_org (the control of compm_nat, compm_bal)",
                                       "emoone_org (the control of emoone_nat, emoone_bal)"]
    assert not find_gaps(table, score_matrix(table), [], mode="all")
    table = long_table([*pretrained, ("emoone", "org", 1)])
    control = find_gaps(table, score_matrix(table), [], mode="control")
    assert (control.missing_controls, control.missing_instances) == (
        ["compm_org (the control of compm_nat, compm_bal)"], [])
    every_pair = find_gaps(table, score_matrix(table), [], mode="all")
    assert (every_pair.missing_controls, every_pair.missing_instances) == ([], ["compm_org"])


def test_missing_jobs_are_listed_in_seed_order_and_the_inputs_benchmark_order() -> None:
    """Seeds 1, 2 and 10 are listed 2 before 10 (numbers, not strings), benchmarks as the input first names them
    (meld before emorynlp here), so the refusal reads like the sweep."""
    table = pd.concat([long_table([("compm", "org", 1), ("compm", "org", 2), ("compm", "org", 10),
                                   ("compm", "bal", 1)]),
                       long_table([("compm", "org", 1), ("compm", "bal", 1)], benchmark="emorynlp")],
                      ignore_index=True)
    assert gaps_of(table).missing_jobs == [
        "(compm, org, emorynlp, seed 2)", "(compm, org, emorynlp, seed 10)",
        "(compm, bal, meld, seed 2)", "(compm, bal, meld, seed 10)",
        "(compm, bal, emorynlp, seed 2)", "(compm, bal, emorynlp, seed 10)"]


def test_a_row_that_is_no_test_set_of_the_design_asks_for_no_test_set() -> None:
    """A scores file may hold a row such as an average that names no benchmark split: it adds no benchmark whose
    splits would then be missing."""
    table = long_table([("compm", "org", 1), ("compm", "bal", 1)])
    average = table.assign(test_set="average", benchmark=None)
    gaps = gaps_of(pd.concat([table, average], ignore_index=True))
    assert gaps.missing_test_sets == [] and not gaps
