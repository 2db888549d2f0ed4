"""The experiment is benchmark x source, named once: every ``data=`` choice derives the same datasets the
hand-written files used to hold, contradicting overrides are refused naming the key, label sets cannot be
overridden silently, and the one list of keys that do not change a job (``not_in_job_key``) keeps both its
checkpoint folder (a changed progress bar resumes the job) and its sweep folder name."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from omegaconf import OmegaConf, open_dict

from erc.data import BENCHMARKS, parse_dataset
from erc.errors import ConfigError
from erc.identity import job_identity, job_key
from erc.paths import PROJECT_ROOT
from erc.training.validation import check_data_axes

from helpers.config import compose_config

TINY = ["classifier=compm", "classifier.backbone=tiny", "schedule=debug", "data.limit_dialogues=3", "logger=none"]


def compose_in(name: str, tmp_path: Path, overrides: list[str]):
    """``conf/<name>.yaml`` for a job reading and writing only under ``tmp_path``."""
    return compose_config(name, [f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}",
                                 f"paths.output_dir={tmp_path / 'out'}", *overrides])


def run_script(script: str, args: list[str], cwd: Path) -> subprocess.CompletedProcess:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "WANDB_MODE": "offline"}
    return subprocess.run([sys.executable, str(PROJECT_ROOT / script), *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


# ---- one place derives the datasets -------------------------------------------------------------------
@pytest.mark.parametrize("benchmark", BENCHMARKS)
@pytest.mark.parametrize("source", ["org", "nat", "bal"])
def test_every_data_choice_derives_its_datasets_from_its_two_axes(tmp_path, benchmark, source) -> None:
    choice = benchmark if source == "org" else f"{benchmark}_{source}"
    data = OmegaConf.to_container(compose_in("train", tmp_path, [f"data={choice}"]).data, resolve=True)
    # What the nine hand-copied files held before they were reduced to their axes.
    assert data == {"benchmark": benchmark, "source": source, "name": choice,
                    "pretrain": None if source == "org" else choice, "finetune": benchmark,
                    "test": [benchmark, f"{benchmark}_nat", f"{benchmark}_bal"],
                    "limit_dialogues": None, "num_workers": 0}
    assert parse_dataset(data["name"]) == (benchmark, source)


def test_the_job_identity_comes_from_the_axes_not_from_a_name(tmp_path) -> None:
    cfg = compose_in("train", tmp_path, ["data=emorynlp_nat", "classifier=todkat", "seed=4"])
    assert job_identity(cfg) == {"classifier": "todkat", "variant": cfg.classifier.get("variant"),
                                 "data": "emorynlp_nat", "benchmark": "emorynlp", "source": "nat", "seed": 4}


@pytest.mark.parametrize("override, message", [
    ("data.source=synthetic", "data.source='synthetic' is not a source; valid: org, nat, bal"),
    ("data.benchmark=friends", "data.benchmark='friends' is not a benchmark; valid: meld, emorynlp, iemocap"),
    ("data.pretrain=emorynlp_bal", "data.pretrain='emorynlp_bal' contradicts data.benchmark=meld and data.source=bal"),
    ("data.pretrain=null", "data.pretrain=None contradicts data.benchmark=meld and data.source=bal"),
    ("data.finetune=iemocap", "data.finetune='iemocap' contradicts data.benchmark=meld"),
    ("data.name=meld", "data.name='meld' contradicts data.benchmark=meld and data.source=bal"),
    ("data.test=[meld,iemocap_bal]", "data.test holds 'iemocap_bal', a dataset of iemocap"),
    ("data.test=[meld_bal]", "data.test=['meld_bal'] must include the benchmark's own test split 'meld'"),
])
def test_an_override_that_contradicts_the_axes_is_refused_naming_the_key(tmp_path, override, message) -> None:
    cfg = compose_in("train", tmp_path, ["data=meld_bal", override])
    with pytest.raises(ConfigError) as err:
        check_data_axes(cfg.data)
    assert message in str(err.value)


def test_train_py_refuses_a_data_choice_whose_benchmark_was_overridden(tmp_path) -> None:
    job = run_script("train.py", ["data=meld_bal", "data.benchmark=iemocap", *TINY,
                                  f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}"],
                     tmp_path)
    assert job.returncode == 2, job.stderr[-3000:]
    assert job.stderr.strip().splitlines()[-1] == (
        "error: data=meld_bal is benchmark meld with source bal, but the overrides make it data.benchmark=iemocap "
        "data.source=bal: choose data=iemocap_bal instead")
    assert not (tmp_path / "logs" / "train" / "checkpoints").exists()      # refused before any work


def test_generate_py_refuses_an_overridden_label_set(tmp_path) -> None:
    job = run_script("generate.py", ["benchmark=meld", "benchmark.labels=[joy,neutral]", "n_dialogues=2",
                                     f"paths.data_dir={tmp_path / 'data'}", f"paths.log_dir={tmp_path / 'logs'}"],
                     tmp_path)
    assert job.returncode == 2, job.stderr[-3000:]
    assert job.stderr.strip().splitlines()[-1].startswith(
        "error: benchmark.labels differs from conf/benchmark/meld.yaml: the label set, its order and its sentiment "
        "groups are fixed per benchmark")
    assert not (tmp_path / "data").exists()


# ---- one list of keys that do not change a job ------------------------------------------------------
COSMETIC = ["trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "data.num_workers=1",
            "logger=none", "logger.project=other", "resume=false", "trainer.enable_model_summary=true"]


def test_keys_that_do_not_change_a_job_leave_its_key_alone_and_others_change_it(tmp_path) -> None:
    tiny = [o for o in TINY if not o.startswith("logger=")]                  # logger=wandb, the default
    base = compose_in("train", tmp_path, ["data=meld_bal", *tiny])
    listed = set(OmegaConf.to_container(base.not_in_job_key))
    for override in COSMETIC:
        assert override.split("=")[0].split(".")[0] in listed or override.split("=")[0] in listed
        assert job_key(compose_in("train", tmp_path, ["data=meld_bal", *tiny, override])) == job_key(base), override
    for override in ["schedule.lr=3e-5", "seed=2", "data.limit_dialogues=4", "trainer.precision=bf16-mixed",
                     "classifier.pm=frozen"]:
        assert job_key(compose_in("train", tmp_path, ["data=meld_bal", *tiny, override])) != job_key(base), override


def test_a_rerun_that_changes_only_the_progress_bar_and_workers_resumes_instead_of_retraining(tmp_path, data_dir):
    from erc.training import train

    def run(out: str, *overrides: str) -> dict:
        cfg = compose_config("train", [
            f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}",
            f"paths.output_dir={tmp_path / out}", "data=meld_bal", *TINY, *overrides])
        train(cfg)
        return json.loads((tmp_path / out / "results.json").read_text())

    first = run("first", "trainer.enable_progress_bar=true")
    again = run("again", "trainer.enable_progress_bar=false", "trainer.log_every_n_steps=1", "data.num_workers=0")
    assert again["checkpoints"] == first["checkpoints"]
    assert [r["step"] for r in again["resumes"] if "reused" in r] == ["pretrain", "pretrain/test", "finetune", "test"]
    assert again["metrics"] == first["metrics"]


def test_sweep_folder_names_leave_out_the_same_keys(tmp_path) -> None:
    sweep = tmp_path / "sweep"
    job = run_script("train.py", ["-m", "data=meld", *TINY, "seed=7", "schedule.lr=abc", "data.num_workers=1",
                                  "trainer.enable_progress_bar=false", f"paths.data_dir={tmp_path / 'data'}",
                                  f"paths.log_dir={tmp_path / 'logs'}", f"hydra.sweep.dir={sweep}"], tmp_path)
    assert job.returncode == 2, job.stderr[-3000:]                   # the job runs, and refuses its schedule.lr
    (folder,) = [p.name for p in sweep.iterdir() if p.is_dir()]
    assert folder == ("0_classifier.backbone=tiny,classifier=compm,data.limit_dialogues=3,data=meld,"
                      "schedule.lr=abc,schedule=debug,seed=7")


def test_sweep_folder_names_leave_out_added_forced_and_deleted_keys_too() -> None:
    """+key=, ++key= and ~key name the key without their prefix, which Hydra matches the left-out keys against:
    the folder name Hydra composes for these overrides keeps only seed=3."""
    cfg = compose_config("train", ["~trainer.enable_model_summary", "++data.num_workers=1", "+logger.tags=[a]",
                                   "seed=3"], return_hydra_config=True)
    assert cfg.hydra.job.override_dirname == "seed=3"


def test_the_job_key_follows_the_content_of_a_filtered_pretrain_set(tmp_path) -> None:
    """A filtered set (meld_bal_probe) is read only as the pretrain set, not among the test sets: regenerating it in
    place with other dialogues must still change the key, or its stale checkpoints would be resumed."""
    folder = tmp_path / "data" / "synthetic" / "meld_bal_probe"
    folder.mkdir(parents=True)
    (folder / "train.jsonl").write_text('{"id": "a"}\n')
    cfg = compose_in("train", tmp_path, ["data=meld_bal_probe", *TINY])
    assert cfg.data.pretrain == "meld_bal_probe" and "meld_bal_probe" not in cfg.data.test
    key = job_key(cfg)
    (folder / "train.jsonl").write_text('{"id": "b"}\n')
    assert job_key(cfg) != key


def test_the_job_key_follows_the_data_folder_but_not_the_log_folders(tmp_path) -> None:
    """paths.* is left out of the key (a moved log folder resumes), except the data folder: another folder holds
    other benchmark files, so its job must not resume the old one's checkpoints."""
    cfg = compose_in("train", tmp_path, ["data=meld", *TINY])
    key = job_key(cfg)
    cfg.paths.log_dir, cfg.paths.output_dir = str(tmp_path / "elsewhere"), str(tmp_path / "elsewhere" / "out")
    assert job_key(cfg) == key
    cfg.paths.data_dir = str(tmp_path / "other_data")
    assert job_key(cfg) != key


def test_fast_path_auto_keeps_the_key_of_jobs_from_before_the_switch_and_on_off_change_it(tmp_path) -> None:
    """auto is how every job ran before classifier.fast_path existed: its key is a config without the switch's, so
    those jobs resume; on and off draw other dropout masks, so each has a key of its own."""
    cfg = compose_in("train", tmp_path, ["data=meld", *TINY])
    keys = {}
    for value in ("auto", "on", "off"):
        cfg.classifier.fast_path = value
        keys[value] = job_key(cfg)
    with open_dict(cfg):
        del cfg.classifier["fast_path"]
    assert job_key(cfg) == keys["auto"]
    assert len(set(keys.values())) == 3


@pytest.mark.parametrize("key,expected", [
    ("logger", True), ("logger.mode", True), ("trainer.enable_progress_bar", True), ("loggers", False),
    ("trainer.enable_progress_bars", False), ("data.num_workers_x", False), ("data", False)])
def test_a_left_out_key_covers_itself_and_the_keys_below_it_not_keys_its_name_begins(key, expected) -> None:
    """``not_in_job_key`` leaves out ``logger`` and everything under ``logger.``; a key whose name merely starts
    with a left-out one (``loggers``) changes the job's numbers and stays in its key."""
    from erc.identity import left_out

    assert left_out(key, ["logger", "trainer.enable_progress_bar", "data.num_workers"]) is expected


def test_left_out_overrides_are_found_without_resolving_any_override(monkeypatch) -> None:
    """An override's value may be an interpolation that must not be evaluated to name a folder (a secret file, an
    unset variable): the keys are read from the overrides as typed, and only the left-out ones are returned."""
    from erc.identity import left_out_overrides

    monkeypatch.delenv("ERC_TEST_UNSET", raising=False)
    root = OmegaConf.create({"hydra": {"overrides": {"task": [
        "trainer.enable_progress_bar=false", "llm.key=${oc.env:ERC_TEST_UNSET}", "seed=3"]}}})
    assert left_out_overrides(["trainer", "llm.key"], _root_=root) == ["trainer.enable_progress_bar", "llm.key"]


def test_left_out_overrides_are_named_by_key_or_group_as_hydra_matches_them() -> None:
    """Hydra matches ``exclude_keys`` against an override's key or group: ``+key``, ``++key`` and ``~key`` without
    their prefix, ``group@package=option`` by its group, ``hydra/launcher`` as a group (``hydra`` covers it)."""
    from erc.identity import left_out_overrides

    root = OmegaConf.create({"hydra": {"overrides": {"task": [
        "+trainer.gradient_clip_val=1.0", "~logger", "++data.num_workers=2", "logger@logger=none",
        "hydra/launcher=basic", "seed=3", "+schedule.lr=1e-3"]}}})
    assert left_out_overrides(["trainer", "logger", "data.num_workers", "hydra"], _root_=root) == [
        "trainer.gradient_clip_val", "logger", "data.num_workers", "logger", "hydra/launcher"]


def test_the_job_key_follows_every_split_file_of_the_generated_set_it_reads(tmp_path) -> None:
    """A job reads its generated set's train and dev splits to pretrain and its test split to report W-F1 on it:
    any of the three regenerated in place with other dialogues is another job, never a resume of the old one."""
    folder = tmp_path / "data" / "synthetic" / "meld_bal"
    folder.mkdir(parents=True)
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl"):
        (folder / name).write_text(f'{{"id": "{name}"}}\n')
    cfg = compose_in("train", tmp_path, ["data=meld_bal", *TINY])
    keys = [job_key(cfg)]
    for name in ("train.jsonl", "dev.jsonl", "test.jsonl"):
        (folder / name).write_text('{"id": "other"}\n')
        keys.append(job_key(cfg))
    assert len(set(keys)) == 4, keys


def test_an_org_job_key_follows_the_generated_test_sets_it_reports_on_and_no_other_set(tmp_path) -> None:
    """An Org job pretrains on nothing but reports W-F1 on meld_nat and meld_bal's test splits: either regenerated
    in place is another job (its test numbers change). A generated set it never reads (emorynlp_bal, the filtered
    meld_bal_probe) leaves its key alone, so regenerating one set does not retrain unrelated jobs."""
    synthetic = tmp_path / "data" / "synthetic"
    for name in ("meld_nat", "meld_bal", "meld_bal_probe", "emorynlp_bal"):
        (synthetic / name).mkdir(parents=True)
        (synthetic / name / "test.jsonl").write_text('{"id": "a"}\n')
    cfg = compose_in("train", tmp_path, ["data=meld", *TINY])
    assert cfg.data.pretrain is None
    key = job_key(cfg)
    for name in ("meld_bal_probe", "emorynlp_bal"):
        (synthetic / name / "test.jsonl").write_text('{"id": "unread"}\n')
        assert job_key(cfg) == key, name
    keys = {key}
    for name in ("meld_nat", "meld_bal"):
        (synthetic / name / "test.jsonl").write_text(f'{{"id": "{name}"}}\n')
        keys.add(job_key(cfg))
    assert len(keys) == 3, keys


def test_the_job_key_follows_a_generated_test_set_named_by_an_interpolation(tmp_path) -> None:
    """``data.test`` may name a set through an interpolation (``'${data.benchmark}_bal'``): the key hashes the files
    of the set it names, so that set regenerated in place is another job."""
    folder = tmp_path / "data" / "synthetic" / "meld_bal"
    folder.mkdir(parents=True)
    (folder / "test.jsonl").write_text('{"id": "a"}\n')
    cfg = compose_in("train", tmp_path, ["data=meld", *TINY, "data.test=[meld,'${data.benchmark}_bal']"])
    assert list(cfg.data.test) == ["meld", "meld_bal"] and cfg.data.pretrain is None
    key = job_key(cfg)
    (folder / "test.jsonl").write_text('{"id": "b"}\n')
    assert job_key(cfg) != key


def test_the_job_key_names_classifier_data_and_seed_before_a_twelve_digit_hash(tmp_path) -> None:
    """The checkpoint folder's name is read by people (``ls checkpoints/``) and by tools matching its shape:
    ``<classifier>-<data>-s<seed>-<12 hex digits>``."""
    cfg = compose_in("train", tmp_path, ["data=emorynlp_nat", "classifier=todkat", "seed=4"])
    classifier, data, seed, digest = job_key(cfg).split("-")
    assert (classifier, data, seed) == ("todkat", "emorynlp_nat", "s4")
    assert len(digest) == 12 and int(digest, 16) >= 0


def test_the_order_of_the_overrides_does_not_change_the_job_key(tmp_path) -> None:
    """The same experiment typed with its added keys in another order (``+a=1 +b=2`` or ``+b=2 +a=1``) is the same
    job: it resumes instead of training again."""
    added = ["+trainer.gradient_clip_val=1.0", "+trainer.accumulate_grad_batches=2"]
    keys = {job_key(compose_in("train", tmp_path, ["data=meld", *TINY, *order])) for order in (added, added[::-1])}
    assert len(keys) == 1, keys


def test_the_job_key_follows_the_files_of_a_backbone_folder(tmp_path) -> None:
    """``classifier.backbone=<model folder>`` names the folder, not its weights: the same path holding another model
    (config or weights replaced) is another job, never a resume of checkpoints trained from the old one."""
    folder = tmp_path / "model"
    folder.mkdir()
    (folder / "config.json").write_text('{"hidden_size": 32}')
    cfg = compose_in("train", tmp_path, ["data=meld", *TINY, f"classifier.backbone={folder}"])
    key = job_key(cfg)
    assert job_key(cfg) == key
    (folder / "config.json").write_text('{"hidden_size": 64, "layers": 2}')
    assert job_key(cfg) != key
