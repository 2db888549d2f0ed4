"""Evaluation never tests less than its design without saying so: failed job folders, absent grid jobs, columns,
controls, test sets and cells are refused by name unless allow_partial=true, and then every output says so."""

from __future__ import annotations

import csv
import json
import shutil
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import pandas as pd
import pytest
from omegaconf import OmegaConf

from erc.errors import ConfigError, DataError
from erc.evaluation import evaluate
from erc.evaluation.analysis import IncompleteResultsError
from erc.evaluation.collect import rows_from_wandb_runs
from erc.paths import PROJECT_ROOT

from helpers.config import compose_config
from helpers.evaluation import INSTANCES, PAPER_SCORES, compose_evaluate, paper_matrix, write_paper_sweep, write_result

SOURCES = ("org", "nat", "bal")


def hydra_job(folder: Path, classifier: str, data: str, seed: int) -> None:
    """The .hydra/config.yaml Hydra writes into a train.py job folder: the composed config, unresolved."""
    cfg = compose_config("train", [f"classifier={classifier}", f"data={data}", f"seed={seed}"])
    (folder / ".hydra").mkdir(parents=True, exist_ok=True)
    OmegaConf.save(cfg, folder / ".hydra" / "config.yaml")


@pytest.fixture
def meld_multirun(tmp_path) -> Path:
    """A train.py multirun on MELD as Hydra lays it out: one numbered job folder per classifier x source, each
    with .hydra/ and results.json (the paper's MELD scores), and an evaluate run kept inside it."""
    sweep = tmp_path / "multirun"
    scores = paper_matrix()
    for number, instance in enumerate(INSTANCES):
        classifier, source = instance.split("_")
        data = "meld" if source == "org" else f"meld_{source}"
        path = write_result(sweep, classifier, "meld", source, 1,
                            {f"meld_{s}": scores[f"meld_{s}"][instance] / 100 for s in SOURCES})
        job = sweep / f"{number}_classifier={classifier},data={data}"
        path.parent.rename(job)
        hydra_job(job, classifier, data, 1)
    other = compose_config("evaluate")
    (sweep / "evaluate" / ".hydra").mkdir(parents=True)
    OmegaConf.save(other, sweep / "evaluate" / ".hydra" / "config.yaml")  # not a train job: never "unfinished"
    return sweep


def test_a_failed_job_folder_is_refused_by_name_not_dropped(meld_multirun, tmp_path):
    complete = evaluate(compose_evaluate(tmp_path / "complete", f"sweep={meld_multirun}"))
    assert complete["comparisons"]["m"] == 6 and complete["complete"] is True

    failed = meld_multirun / "8_classifier=todkat,data=meld_bal"
    (failed / "results.json").unlink()
    out = tmp_path / "refused"
    with pytest.raises(IncompleteResultsError) as err:
        evaluate(compose_evaluate(out, f"sweep={meld_multirun}"))
    message = str(err.value)
    # before: todkat_bal's column silently vanished and Table IV ran with m = 5
    assert f"1 job(s) without results (failed, killed or unfinished): {failed} (todkat[" in message
    assert "meld_bal, seed 1)" in message
    assert "1 model instance(s) absent: todkat_bal" in message
    assert "m = 5, instead of k = 9, n = 3 and m = 6" in message
    assert not (out / "friedman.json").exists() and not (out / "table4.csv").exists()
    assert "Not tested (incomplete results)" in (out / "table4.md").read_text()

    # the failed job's identity comes from its .hydra config, so select= can leave it out on purpose
    narrowed = evaluate(compose_evaluate(tmp_path / "narrowed", f"sweep={meld_multirun}",
                                         "+select.classifier=[compm,emoone]"))
    assert narrowed["complete"] is True and narrowed["comparisons"]["m"] == 4


def test_allow_partial_ranks_the_complete_part_and_says_so_everywhere(meld_multirun, tmp_path):
    shutil.rmtree(meld_multirun / "6_classifier=todkat,data=meld")  # TODKAT Org: the control of two comparisons
    out = tmp_path / "partial"
    result = evaluate(compose_evaluate(out, f"sweep={meld_multirun}", "allow_partial=true"))

    assert result["complete"] is False
    assert result["comparisons"]["m"] == 4 and result["partial"]["planned_m"] == 6
    assert result["partial"]["missing_controls"] == ["todkat_org (the control of todkat_nat, todkat_bal)"]
    assert [(p["instance"], p["control"]) for p in result["comparisons"]["pairs"]] == [
        ("compm_nat", "compm_org"), ("compm_bal", "compm_org"), ("emoone_nat", "emoone_org"),
        ("emoone_bal", "emoone_org")]
    saved = json.loads((out / "friedman.json").read_text())
    assert saved["complete"] is False and saved["comparisons"]["m"] == 4 and saved["partial"]["planned_m"] == 6
    assert saved["partial"]["left_out_instances"] == []       # todkat_org has no column: nothing ranked is left out
    md = (out / "table4.md").read_text()
    assert md.splitlines()[2].startswith("**PARTIAL TABLE (allow_partial=true):** k = 8 instances on n = 3 test "
                                         "sets with Bonferroni m = 4, instead of k = 9, n = 3 and m = 6.")
    assert "Bonferroni m = 4 comparisons; k = 8 instances ranked on n = 3 test sets." in md
    # the note heads the caption
    assert r"\caption{PARTIAL TABLE (allow\_partial=true): k = 8 instances" in (out / "table4.tex").read_text()
    table4 = pd.read_csv(out / "table4.csv")
    assert set(table4["m"]) == {4} and table4["partial"].all()


def paper_csv(tmp_path: Path, drop_columns: tuple[str, ...] = (), drop_row: str | None = None,
              blank: tuple[str, str] | None = None) -> Path:
    with PAPER_SCORES.open() as handle:
        rows = list(csv.DictReader(handle))
    columns = [c for c in rows[0] if c not in drop_columns]
    path = tmp_path / "scores.csv"
    with path.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, columns, extrasaction="ignore")
        writer.writeheader()
        for row in rows:
            if row["test_set"] == drop_row:
                continue
            if blank and row["test_set"] == blank[0]:
                row[blank[1]] = ""
            writer.writerow(row)
    return path


@pytest.mark.parametrize("damage,expected", [
    ({"drop_columns": ("todkat_bal",)}, "1 model instance(s) absent: todkat_bal"),
    ({"drop_columns": ("compm_org",)}, "1 control instance(s) absent: compm_org (the control of compm_nat, compm_bal)"),
    # the message names only the instances the absent control would be compared with that are there
    ({"drop_columns": ("compm_org", "compm_bal")},
     "1 control instance(s) absent: compm_org (the control of compm_nat);"),
    # no Org column at all: the control is still part of the design (else m = 0 and nothing is tested)
    ({"drop_columns": ("compm_org", "emoone_org", "todkat_org")},
     "3 control instance(s) absent: compm_org (the control of compm_nat, compm_bal), emoone_org"),
    ({"drop_row": "iemocap_bal"}, "1 test set(s) absent: iemocap_bal"),
    ({"blank": ("emorynlp_nat", "emoone_bal")}, "1 cell(s) without a score: (emoone, bal, emorynlp_nat)"),
])
def test_a_scores_csv_missing_part_of_its_design_is_refused(tmp_path, damage, expected):
    path = paper_csv(tmp_path, **damage)
    with pytest.raises(IncompleteResultsError, match=r"instead of k = 9, n = 9 and m = 6\)") as err:
        evaluate(compose_evaluate(tmp_path / "out", f"scores={path}"))
    assert expected in str(err.value)


def test_allow_partial_leaves_out_only_the_instance_with_an_empty_cell_and_names_it(tmp_path):
    path = paper_csv(tmp_path, blank=("emorynlp_nat", "emoone_bal"))
    result = evaluate(compose_evaluate(tmp_path / "out", f"scores={path}", "allow_partial=true"))
    assert result["partial"]["left_out_instances"] == ["emoone_bal"]
    assert (result["k"], result["n"]) == (8, 9) and "emoone_bal" not in result["instances"]   # 8 ranked on 9 sets
    md = (tmp_path / "out" / "table4.md").read_text()
    assert "Left out of the ranking as incomplete: emoone_bal." in md


def test_a_missing_seed_is_a_missing_job_not_a_smaller_mean(tmp_path):
    sweep = tmp_path / "multirun"
    write_paper_sweep(sweep, seeds=(1, 2))
    (sweep / "compm_meld_bal_seed2" / "results.json").unlink()  # no .hydra here: the grid finds it
    with pytest.raises(IncompleteResultsError) as err:
        evaluate(compose_evaluate(tmp_path / "out", f"sweep={sweep}"))
    assert "1 job(s) absent from the classifier x source x benchmark x seed grid: (compm, bal, meld, seed 2)" \
        in str(err.value)
    result = evaluate(compose_evaluate(tmp_path / "partial", f"sweep={sweep}", "allow_partial=true"))
    assert result["complete"] is False and result["comparisons"]["m"] == 6  # every cell still has a score
    assert "PARTIAL TABLE" in (tmp_path / "partial" / "table4.md").read_text()


def test_unfinished_wandb_runs_are_reported_not_skipped():
    def run(run_id: str, data: str, state: str, wf1: float | None) -> SimpleNamespace:
        source = data.partition("_")[2] or "org"
        return SimpleNamespace(id=run_id, name=run_id, state=state, job_type="finetune",
                               config={"classifier": {"name": "compm", "variant": "pm=pretrained"},
                                       "data": {"name": data, "benchmark": "meld", "source": source}, "seed": 1},
                               summary_metrics={} if wf1 is None else {f"test/meld_{s}/wf1": wf1 for s in
                                                                        ("org", source)})

    runs = [run("a", "meld", "finished", 0.6), run("b", "meld_bal", "crashed", None),
            run("c", "meld_nat", "running", None)]
    table, unfinished = rows_from_wandb_runs(runs, "me/erc")
    assert set(table["source"]) == {"org"}
    assert unfinished == ["W&B run me/erc: b (b), state crashed (compm[pm=pretrained], meld_bal, seed 1)",
                          "W&B run me/erc: c (c), state running (compm[pm=pretrained], meld_nat, seed 1)"]
    _, selected = rows_from_wandb_runs(runs, "me/erc", {"source": ["org", "bal"]})
    assert len(selected) == 1 and "meld_bal" in selected[0]


@pytest.mark.parametrize("override,key", [
    ("alpha=2", "alpha"), ("alpha=1", "alpha"), ("alpha=0", "alpha"), ("comparisons.mode=best", "comparisons.mode"),
    ("comparisons.control=gpt", "comparisons.control"),
    ("scores_unit=percentage", "scores_unit"), ("display.p_digits=0", "display.p_digits"),
    ("display.p_mode=floor", "display.p_mode"), ("allow_partial=maybe", "allow_partial"),
    ("+select.epoch=3", "select.epoch"),
])
def test_bad_config_values_name_the_key_before_reading_input(tmp_path, override, key):
    with pytest.raises(ConfigError, match=rf"^{key}[: ]"):
        evaluate(compose_evaluate(tmp_path, f"scores={tmp_path / 'absent.csv'}", override))


def run_evaluate(*args: str, env: dict[str, str] | None = None, shell: str | None = None
                 ) -> subprocess.CompletedProcess:
    command = shell if shell is not None else [sys.executable, "evaluate.py", *args]
    return subprocess.run(command, cwd=PROJECT_ROOT, capture_output=True, text=True, timeout=120, env=env,
                          shell=shell is not None)


def test_no_input_and_no_wandb_key_is_one_line_naming_the_three_inputs(tmp_path):
    env = {k: v for k, v in __import__("os").environ.items() if not k.startswith("WANDB_")}
    # HOME without a .netrc: no API key; a dead W&B address: any W&B call would fail with another message
    env.update(HOME=str(tmp_path), WANDB_BASE_URL="http://127.0.0.1:9")
    done = run_evaluate(f"hydra.run.dir={tmp_path / 'run'}", env=env)
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line.startswith("error: reading finished W&B runs (the input when neither sweep= nor scores= is given) "
                           "needs W&B online, but no W&B API key is configured")
    for way in ("sweep=<a train.py multirun folder>", "scores=<a scores CSV>", "wandb.project=<project>"):
        assert way in line


@pytest.mark.slow  # wandb waits ~20 s for its service before giving up on the refused server
def test_an_unreachable_wandb_server_is_a_user_error(tmp_path, monkeypatch):
    monkeypatch.delenv("WANDB_MODE")
    monkeypatch.setenv("WANDB_API_KEY", "x" * 40)
    monkeypatch.setenv("WANDB_BASE_URL", "http://127.0.0.1:9")  # nothing listens: refused at once
    with pytest.raises(DataError, match=r"^reading W&B runs of erc failed: .*127\.0\.0\.1:9.* or give sweep="):
        evaluate(compose_evaluate(tmp_path, "wandb.project=erc"))


@pytest.fixture
def ablation_sweep(tmp_path) -> Path:
    sweep = tmp_path / "ablation"
    for variant, base in (("pm=pretrained", 0.60), ("pm=scratch", 0.50)):
        for source, gain in (("org", 0.0), ("bal", 0.02)):
            path = write_result(sweep / variant, "compm", "meld", source, 1,
                                {f"meld_{s}": base + gain + 0.01 * i for i, s in enumerate(("org", "bal"))})
            result = json.loads(path.read_text())
            result["identity"]["variant"] = variant
            path.write_text(json.dumps(result))
    return sweep


def test_select_by_variant_as_typed_in_a_shell(ablation_sweep, tmp_path):
    # Hydra needs the value quoted because it holds '=': the shell line is  "+select.variant='pm=pretrained'"
    out = tmp_path / "run"
    done = run_evaluate(shell=f"{sys.executable} evaluate.py sweep={ablation_sweep} hydra.run.dir={out} "
                              "\"+select.variant='pm=pretrained'\"")
    assert done.returncode == 0, done.stderr
    saved = json.loads((out / "friedman.json").read_text())
    assert saved["instances"] == ["compm_org", "compm_bal"]
    assert saved["scores"]["meld_org"] == {"compm_org": 0.60, "compm_bal": 0.62}
    assert "Bonferroni m = 1 comparisons" in done.stdout

    done = run_evaluate(shell=f"{sys.executable} evaluate.py sweep={ablation_sweep} hydra.run.dir={out}2 "
                              "\"+select.variant='pm=pretraind'\"")
    assert done.returncode == 2
    [line] = done.stderr.strip().splitlines()
    assert line == ("error: select.variant='pm=pretraind' matches none of the 8 scores left; variant values there: "
                    "pm=pretrained, pm=scratch")


@pytest.mark.slow  # a real train.py multirun: one tiny CoMPM job trains (~20 s on 2 shared cores), one fails
def test_a_real_multirun_with_a_failed_job_is_refused(data_dir, tmp_path):
    shutil.rmtree(data_dir / "synthetic" / "meld_bal")  # job 1 pretrains on it: it fails before training
    sweep = tmp_path / "sweep"
    env = {**__import__("os").environ, "ERC_DATA_DIR": str(data_dir)}
    done = subprocess.run([sys.executable, "train.py", "-m", "classifier=compm", "data=meld,meld_bal",
                           "classifier.backbone=tiny", "schedule=debug", "logger=none", "data.limit_dialogues=4",
                           "trainer.enable_progress_bar=false", f"checkpoint_dir={tmp_path / 'ckpt'}",
                           f"hydra.sweep.dir={sweep}"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                          timeout=600, env=env)
    assert done.returncode != 0
    jobs = sorted(p.parent.parent for p in sweep.rglob(".hydra/config.yaml"))
    assert len(jobs) == 2 and (jobs[0] / "results.json").is_file() and not (jobs[1] / "results.json").exists()
    with pytest.raises(IncompleteResultsError, match=rf"{jobs[1]} \(compm\[pm=pretrained\], meld_bal, seed 1\)"):
        evaluate(compose_evaluate(tmp_path / "out", f"sweep={sweep}"))


def test_a_filtered_sets_jobs_are_refused_by_name_and_select_leaves_them_out(meld_multirun, tmp_path):
    """A job pretrained on meld_bal_probe (the quality filter's set) is not one of Table IV's instances: refused
    naming it and the fix, and with that fix the paper's instances are ranked exactly as without the job."""
    write_result(meld_multirun, "compm", "meld", "bal_probe", 1, {"meld_org": 0.6, "meld_nat": 0.5, "meld_bal": 0.4})
    with pytest.raises(DataError) as err:
        evaluate(compose_evaluate(tmp_path / "all", f"sweep={meld_multirun}"))
    assert "compm_meld_bal_probe_seed1/results.json: field 'identity.source' is 'bal_probe'" in str(err.value)
    assert "+select.source=[org,nat,bal]" in str(err.value)
    kept = evaluate(compose_evaluate(tmp_path / "kept", f"sweep={meld_multirun}", "+select.source=[org,nat,bal]"))
    assert kept["complete"] is True and kept["comparisons"]["m"] == 6
    assert "compm_bal_probe" not in kept["instances"]
