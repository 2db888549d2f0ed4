"""Reading results into the score table, in process (the sweep and CLI paths are in test_evaluate.py): the ends of
the W-F1 range, an identity field that is there but empty, a duplicated job among unique ones, ``select`` by one
value, and the failed jobs ``select`` keeps listed."""

from __future__ import annotations

import pandas as pd
import pytest

from erc.data import DataError
from erc.evaluation.collect import COLUMNS, empty_table, read_sweep, rows_from_result, select_rows, unfinished_jobs


def result(wf1: float, **identity: str) -> dict:
    return {"identity": {"classifier": "compm", "source": "org", "benchmark": "meld", "seed": 1, **identity},
            "metrics": {"test/meld_org/wf1": wf1, "test/meld_bal/wf1": 0.5}}


@pytest.mark.parametrize("wf1", [0.0, 1.0])
def test_a_w_f1_at_either_end_of_its_range_is_a_score(wf1) -> None:
    """0 (nothing right) and 1 (everything right) are W-F1 values a job can report."""
    rows = rows_from_result(result(wf1), "r.json")
    assert [(r["test_set"], r["wf1"]) for r in rows] == [("meld_org", wf1), ("meld_bal", 0.5)]


@pytest.mark.parametrize("field", ["classifier", "source", "benchmark"])
def test_an_empty_identity_field_is_refused_by_name(field) -> None:
    with pytest.raises(DataError, match=rf"^r\.json: field 'identity\.{field}' is missing or not a string$"):
        rows_from_result(result(0.5, **{field: ""}), "r.json")


def test_one_duplicated_job_among_unique_ones_is_refused(tmp_path) -> None:
    """Two seeds of one job are fine; the same seed twice is one job reported twice, whatever else the sweep holds."""
    import json

    for name, seed in (("a", 1), ("b", 2), ("c", 3), ("d", 3)):
        (tmp_path / name).mkdir()
        (tmp_path / name / "results.json").write_text(json.dumps(result(0.5, seed=seed)))
    with pytest.raises(DataError, match=r"the same job appears twice \(compm, variant None, source org, test set "
                                        r"meld_(org|bal), seed 3\): .*c/results.json and .*d/results.json"):
        read_sweep(tmp_path)
    (tmp_path / "d" / "results.json").unlink()
    table, unfinished = read_sweep(tmp_path)
    assert list(table.columns) == COLUMNS and unfinished == []
    assert sorted(pd.unique(table["seed"])) == [1, 2, 3] and len(table) == 6


def test_select_by_a_single_value_keeps_its_rows_and_an_empty_table_stays_empty() -> None:
    table = pd.DataFrame([rows_from_result(result(0.5, source=s), s)[0] for s in ("org", "bal")], columns=COLUMNS)
    assert list(select_rows(table, {"source": "org"})["source"]) == ["org"]
    assert select_rows(empty_table(), {"source": "org"}).empty       # nothing to narrow is no typo to report


def failed_job(folder, config: str) -> None:
    (folder / ".hydra").mkdir(parents=True)
    (folder / ".hydra" / "config.yaml").write_text(config)


def test_a_failed_job_stays_listed_under_a_test_set_selection_or_an_unreadable_config(tmp_path) -> None:
    """A job has no test set of its own (it scores several), so select.test_set cannot leave it out; a job whose
    config cannot be read cannot be matched at all, so it is listed whatever is selected."""
    failed_job(tmp_path / "a", "task_name: train\nclassifier: {name: compm, variant: pm=pretrained}\n"
                               "data: {benchmark: meld, source: org, name: meld}\nseed: 1\n")
    failed_job(tmp_path / "b", "task_name: train\nclassifier: [unclosed\n")
    listed = unfinished_jobs(tmp_path, {"test_set": ["meld_org"], "classifier": ["compm"]})
    assert [line.split(" (")[0] for line in listed] == [str(tmp_path / "a"), str(tmp_path / "b")]
    assert listed[1].endswith("(identity unknown)")


def test_a_scores_file_skips_blank_lines_even_with_spaces_and_strips_its_names(tmp_path) -> None:
    """A hand-edited scores CSV: a line of spaces and commas is blank, names and numbers may have spaces around
    them, and a value of exactly 1 is a fraction (only a value above 1 makes the file percent)."""
    from erc.evaluation.collect import read_scores_csv

    path = tmp_path / "scores.csv"
    path.write_text(" test_set , compm_org , compm_bal \n meld_org , 0.5 , 1 \n  ,  , \n meld_bal ,0.25, 0.75\n")
    table = read_scores_csv(path)
    assert list(zip(table["test_set"], table["classifier"], table["source"], table["wf1"], strict=True)) == [
        ("meld_org", "compm", "org", 0.5), ("meld_org", "compm", "bal", 1.0),
        ("meld_bal", "compm", "org", 0.25), ("meld_bal", "compm", "bal", 0.75)]


@pytest.mark.parametrize(("mode", "reason"), [("online", None), ("run", None),
                                               ("offline", "WANDB_MODE=offline is set")])
def test_wandb_is_read_when_its_mode_is_online_even_when_named(monkeypatch, mode, reason) -> None:
    from erc.evaluation.collect import _wandb_unreachable_reason

    monkeypatch.setenv("WANDB_API_KEY", "0" * 40)
    monkeypatch.setenv("WANDB_MODE", mode)
    assert _wandb_unreachable_reason() == reason


def test_a_projects_evaluate_runs_are_not_read_as_training_jobs() -> None:
    """evaluate.py logs to the same W&B project; its runs have no training identity and are passed over."""
    from types import SimpleNamespace

    from erc.evaluation.collect import rows_from_wandb_runs

    train = SimpleNamespace(id="t", name="t", state="finished", job_type="finetune",
                            config={"identity": result(0.5)["identity"]}, summary_metrics=result(0.5)["metrics"])
    evaluate = SimpleNamespace(id="e", name="e", state="finished", job_type="evaluate", config={"alpha": 0.05},
                               summary_metrics={"test/meld_org/wf1": 0.9})
    table, unfinished = rows_from_wandb_runs([evaluate, train], "me/erc")
    assert list(table["origin"]) == ["W&B run me/erc: t (t)"] * 2 and unfinished == []


def test_classifiers_with_variants_keep_the_papers_order() -> None:
    from erc.evaluation.collect import order_classifiers

    assert order_classifiers(["mine", "todkat[topic=lda]", "emoone[gray=post]", "compm[pm=scratch]", "compm"]) == [
        "compm[pm=scratch]", "compm", "emoone[gray=post]", "todkat[topic=lda]", "mine"]


def test_a_test_set_twice_in_a_scores_file_names_both_lines(tmp_path) -> None:
    from erc.evaluation.collect import read_scores_csv

    path = tmp_path / "scores.csv"
    path.write_text("test_set,compm_org\nmeld_org,0.5\nmeld_bal,0.4\nmeld_org,0.6\n")
    with pytest.raises(DataError, match=r"line 4: test set 'meld_org' already on line 2$"):
        read_scores_csv(path)


def test_a_job_without_a_variant_does_not_make_its_classifier_one_of_several_variants() -> None:
    from erc.evaluation.collect import add_models

    rows = [rows_from_result(result(0.5, source=s, variant=v), s)[0] for s, v in (("org", "pm=pretrained"),
                                                                                  ("bal", None))]
    assert list(add_models(pd.DataFrame(rows, columns=COLUMNS))["model"]) == ["compm", "compm"]
