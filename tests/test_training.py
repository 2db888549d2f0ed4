"""The training runner: pretrain on a synthetic set -> fine-tune on real MELD -> test, through real Hydra
composition, real Lightning loops and a real offline W&B run; the pieces it is built from (metrics,
schedules, length bucketing). Killed jobs and resuming: tests/test_training_resume.py; config checks and
the joins between the pieces: tests/test_training_checks.py."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from omegaconf import OmegaConf
from sklearn.metrics import f1_score

from erc.data import DataError, MissingDataError, load_benchmark
from erc.models.base import linear_warmup_decay
from erc.paths import PROJECT_ROOT
from erc.training import train
from erc.training.data import BucketBatchSampler
from erc.training.metrics import classification_metrics
from erc.training.schedule import phase_schedule

from helpers.config import compose_config, compose_train

TINY = ["classifier=compm", "classifier.backbone=tiny", "schedule=debug", "data.limit_dialogues=4"]
# One torch thread in test jobs: on a machine shared with other work, OpenMP threads spin-wait and a
# tiny model trains tens of times slower (see bench/train_throughput.py).
ONE_THREAD = {"OMP_NUM_THREADS": "1"}


def test_pretrain_finetune_test_writes_results_and_offline_wandb_run(tmp_path, data_dir) -> None:
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal", "logger=wandb", "seed=3"])
    metrics = train(cfg)
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["identity"] == {"classifier": "compm", "variant": "pm=pretrained", "data": "meld_bal",
                                   "benchmark": "meld", "source": "bal", "seed": 3}
    for key in ("pretrain/dev/wf1", "pretrain/test/meld_org/wf1", "pretrain/test/meld_bal/wf1",
                "finetune/dev/wf1", "test/meld_org/wf1", "test/meld_bal/wf1", "test/meld_org/acc",
                "test/meld_org/mf1", "test/meld_org/f1/neutral"):
        assert 0.0 <= results["metrics"][key] <= 1.0, key
    assert results["metrics"] == pytest.approx(metrics)
    assert not any("meld_nat" in key for key in metrics)          # not generated here: skipped
    # The reported W-F1 is sklearn's weighted F1 of the predictions behind the confusion matrix.
    confusion = np.array(results["confusion"]["test/meld_org"])
    y_true = np.repeat(np.arange(7), confusion.sum(1))
    y_pred = np.concatenate([np.repeat(np.arange(7), row) for row in confusion])
    assert confusion.sum() == sum(len(d) for d in _meld_test_slice(data_dir))
    assert results["metrics"]["test/meld_org/wf1"] == pytest.approx(
        f1_score(y_true, y_pred, labels=range(7), average="weighted", zero_division=0))
    assert results["config"]["classifier"]["backbone"] == "tiny" and "${" not in json.dumps(results["config"])
    assert results["timings"]["total_s"] > 0 and results["git"]
    # every step's timing and every evaluation's confusion matrix (dev: the selected epoch's), none among the metrics
    assert set(results["timings"]) == {"pretrain_s", "pretrain_test_s", "finetune_s", "test_s", "total_s"}
    evaluations = {"pretrain/dev", "pretrain/test/meld_org", "pretrain/test/meld_bal", "finetune/dev", "test/meld_org",
                   "test/meld_bal"}
    assert set(results["confusion"]) == evaluations and not any(k.endswith("confusion") for k in metrics)
    assert all(np.array(results["confusion"][name]).shape == (7, 7) for name in evaluations)
    assert not list((tmp_path / "logs" / "train" / "checkpoints").glob("*/*/last.ckpt"))   # only kept to resume
    # one offline run, to `wandb sync` later, in the job's own folder (beside its checkpoints), not the invocation's
    runs = list((tmp_path / "logs" / "train" / "checkpoints").glob("*/wandb/offline-run-*"))
    assert len(runs) == 1 and not (tmp_path / "out" / "wandb").exists()
    (records,) = runs[0].glob("*.wandb")
    data = records.read_bytes()
    for text in (b"test/meld_org/wf1", b"pretrain/dev/wf1", b"finetune/train/loss", b"pretrain+finetune", b"meld_bal"):
        assert text in data, text
    assert "finishing run" in (runs[0] / "logs" / "debug.log").read_text()
    # Rerun, from another output folder as a plain `train.py` rerun is: every step is reused and the finished run's
    # offline folder is kept as the job's one run, not copied into a new folder per rerun.
    rerun = compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal", "logger=wandb", "seed=3",
                                               f"paths.output_dir={tmp_path / 'rerun'}"])
    assert train(rerun) == pytest.approx(metrics)
    assert json.loads((tmp_path / "rerun" / "results.json").read_text())["confusion"] == results["confusion"]
    assert list((tmp_path / "logs" / "train" / "checkpoints").glob("*/wandb/offline-run-*")) == runs
    assert (tmp_path / "rerun" / "results.json").is_file() and not (tmp_path / "rerun" / "wandb").exists()


def _meld_test_slice(data_dir: Path, n: int = 4):
    return load_benchmark("meld", "test", data_dir)[:n]


def test_same_seed_same_results(tmp_path, data_dir) -> None:
    first = train(compose_train(tmp_path / "a", data_dir, [*TINY, "data=meld", "logger=none", "seed=5"]))
    second = train(compose_train(tmp_path / "b", data_dir, [*TINY, "data=meld", "logger=none", "seed=5"]))
    assert first == second
    assert "pretrain/dev/wf1" not in first and "test/meld_org/wf1" in first   # Org: fine-tune only


def test_missing_synthetic_set_names_the_generate_command(tmp_path, data_dir) -> None:
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld_nat", "logger=none"])
    with pytest.raises(MissingDataError, match=r"python generate.py benchmark=meld prompt=natural"):
        train(cfg)


def test_empty_dev_split_is_a_clear_error_before_training(tmp_path, data_dir) -> None:
    (data_dir / "synthetic" / "meld_bal" / "dev.jsonl").write_text("")
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal", "logger=none"])
    with pytest.raises(DataError, match=r"meld_bal: the dev split has no dialogues"):
        train(cfg)
    assert not (tmp_path / "logs" / "train" / "checkpoints").exists() or not any(
        (tmp_path / "logs" / "train" / "checkpoints").rglob("*.ckpt"))


def test_metrics_are_sklearn_weighted_f1_over_the_fixed_label_set() -> None:
    labels = ["neutral", "joy", "surprise", "anger"]
    y_true = [0, 0, 1, 1, 2, 0]                                  # "anger" never occurs
    y_pred = [0, 1, 1, 1, 0, 3]
    m = classification_metrics(y_true, y_pred, labels)
    assert m["wf1"] == pytest.approx(f1_score(y_true, y_pred, labels=range(4), average="weighted", zero_division=0))
    assert m["mf1"] == pytest.approx(f1_score(y_true, y_pred, labels=range(4), average="macro", zero_division=0))
    assert m["acc"] == pytest.approx(3 / 6)
    assert m["f1/anger"] == 0.0 and m["f1/joy"] == pytest.approx(0.8)
    assert m["confusion"] == [[1, 1, 0, 1], [0, 2, 0, 0], [1, 0, 0, 0], [0, 0, 0, 0]]


def test_schedule_paper_gives_compm_its_reference_hyperparameters() -> None:
    cfg = compose_config("train", ["classifier=compm", "schedule=paper"])
    for phase in ("pretrain", "finetune"):
        s = phase_schedule(cfg.schedule, phase)
        assert (s.lr, s.batch_size, s.clip_norm, s.epochs, s.warmup_epochs, s.weight_decay, s.eps) == (
            1e-6, 1, 10, 10, 1, 0.01, 1e-8)
    # One epoch of linear warmup, then linear decay to 0 (100 steps per epoch, 10 epochs).
    s = phase_schedule(cfg.schedule, "finetune")
    optimizer = torch.optim.AdamW([torch.nn.Parameter(torch.zeros(1))], lr=s.lr)
    scheduler = linear_warmup_decay(optimizer, s.warmup_steps(1000), 1000)
    lrs = []
    for _ in range(1000):
        lrs.append(optimizer.param_groups[0]["lr"])
        optimizer.step()
        scheduler.step()
    assert lrs[0] == 0 and lrs[50] == pytest.approx(0.5e-6) and lrs[100] == pytest.approx(1e-6)
    assert lrs[550] == pytest.approx(0.5e-6) and optimizer.param_groups[0]["lr"] == pytest.approx(0)
    with pytest.raises(ValueError, match="unknown key"):
        phase_schedule(OmegaConf.create({"batchsize": 2}), "pretrain")


def test_phase_blocks_override_shared_schedule_keys() -> None:
    s = OmegaConf.create({"lr": 1e-5, "batch_size": 4, "pretrain": {"epochs": 2, "lr": 3e-5},
                          "finetune": {"epochs": 7}})
    assert (phase_schedule(s, "pretrain").lr, phase_schedule(s, "pretrain").epochs) == (3e-5, 2)
    assert (phase_schedule(s, "finetune").lr, phase_schedule(s, "finetune").epochs) == (1e-5, 7)


def test_bucket_batches_cover_every_sample_once_with_similar_lengths() -> None:
    rng = np.random.default_rng(0)
    lengths = rng.integers(5, 500, size=1003).tolist()
    sampler = BucketBatchSampler(lengths, batch_size=8, shuffle=True, seed=1, bucket_batches=10)
    epoch0 = list(sampler)
    assert len(epoch0) == len(sampler)
    assert sorted(i for b in epoch0 for i in b) == list(range(1003))
    spread = np.mean([max(lengths[i] for i in b) - min(lengths[i] for i in b) for b in epoch0])
    assert spread < 60                                           # vs ~380 for random batches of 8
    sampler.sampler.set_epoch(1)
    assert list(sampler) != epoch0
    sampler.sampler.set_epoch(0)
    assert list(sampler) == epoch0                               # a resumed epoch sees the same order
    one = BucketBatchSampler(lengths, batch_size=1, shuffle=True, seed=1)
    assert sorted(b[0] for b in one) == list(range(1003))
    shards = [list(BucketBatchSampler(lengths, 8, True, seed=1, rank=r, world_size=3)) for r in range(3)]
    assert len({len(s) for s in shards}) == 1 == len({len(BucketBatchSampler(lengths, 8, True, 1, rank=r,
                                                                            world_size=3)) for r in range(3)})
    evals = [list(BucketBatchSampler(lengths, 8, False, rank=r, world_size=3)) for r in range(3)]
    assert sorted(i for s in evals for b in s for i in b) == list(range(1003))   # disjoint, complete


@pytest.mark.slow
def test_multirun_sweep_runs_every_job_in_one_process_and_finishes_each_wandb_run(tmp_path, data_dir) -> None:
    args = [sys.executable, str(PROJECT_ROOT / "train.py"), "-m", *TINY, "data=meld,meld_bal", "seed=1,2",
            "data.limit_dialogues=3", f"paths.data_dir={data_dir}", f"hydra.sweep.dir={tmp_path / 'sweep'}",
            f"paths.log_dir={tmp_path / 'logs'}"]
    job = subprocess.run(args, cwd=tmp_path, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True,
                         timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    # (a path in an override becomes nested folders in the job's folder name: search recursively)
    results = [json.loads(p.read_text()) for p in sorted((tmp_path / "sweep").glob("**/results.json"))]
    assert sorted((r["identity"]["data"], r["identity"]["seed"]) for r in results) == [
        ("meld", 1), ("meld", 2), ("meld_bal", 1), ("meld_bal", 2)]
    runs = sorted((tmp_path / "logs" / "train" / "checkpoints").glob("*/wandb/offline-run-*"))   # in each job's
    assert len(runs) == 4 and all("finishing run" in (r / "logs" / "debug.log").read_text() for r in runs)
    group = f"train-{(tmp_path / 'sweep').name}".encode()
    assert all(group in next(r.glob("*.wandb")).read_bytes() for r in runs)   # one W&B group per sweep


@pytest.mark.slow
def test_ddp_on_two_cpu_processes_evaluates_every_test_utterance_once(tmp_path, data_dir) -> None:
    args = [sys.executable, str(PROJECT_ROOT / "train.py"), *TINY, "data=meld_bal", "data.limit_dialogues=6",
            "trainer=ddp", "trainer.accelerator=cpu", "trainer.devices=2", "trainer.precision=32-true",
            "logger=none", f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}"]
    job = subprocess.run(args, cwd=tmp_path, env={**os.environ, **ONE_THREAD}, capture_output=True, text=True,
                         timeout=600)
    assert job.returncode == 0, job.stderr[-3000:]
    (path,) = (tmp_path / "logs").glob("**/results.json")
    results = json.loads(path.read_text())
    assert np.array(results["confusion"]["test/meld_org"]).sum() == sum(len(d) for d in _meld_test_slice(data_dir, 6))
