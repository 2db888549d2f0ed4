"""Where separately tested training pieces are joined: config values checked before any work, per-phase
schedule overrides reaching the phase's optimizer and Trainer, the selected (not the last) weights and dev
metrics handed from phase to phase and into results.json, EmoOne's loss weights reaching its loss, job
identity by content, empty test splits, atomic checkpoints and backbone names resolved locally."""

from __future__ import annotations

import json
import logging
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import fields

import pytest
import torch
import torch.nn.functional as F
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import EarlyStopping

from erc.data import DataError, load_benchmark
from erc.errors import ConfigError, UserError
from erc.identity import job_key
from erc.io import unreadable_reason
from erc.models.backbone import check_backbone_name
from erc.paths import CONFIG_DIR, PROJECT_ROOT
from erc.training import train
from erc.training.data import BucketBatchSampler
from erc.training.metrics import classification_metrics
from erc.training.phases import PhaseContext, build_classifier
from erc.training.progress_store import ProgressStore
from erc.training.resume import AtomicCheckpointIO
from erc.training.runner import Experiment
from erc.training.schedule import _CHECKS, PhaseSchedule, phase_schedule

from helpers.config import compose_config, compose_train

TINY = ["classifier=compm", "classifier.backbone=tiny", "schedule=debug", "data.limit_dialogues=4", "logger=none",
        "trainer.enable_progress_bar=false"]


# ---- config values ------------------------------------------------------------------------------
@pytest.mark.parametrize("override, message", [
    ("data.limit_dialogues=-5", re.escape("data.limit_dialogues must be a positive integer or null (every dialogue), "
                                          "got -5")),
    ("data.limit_dialogues=0", re.escape("data.limit_dialogues must be a positive integer or null (every dialogue), "
                                         "got 0")),
    ("data.limit_dialogues=2.5", re.escape("data.limit_dialogues must be a positive integer")),
    ("data.num_workers=-1", re.escape("data.num_workers must be an integer >= 0, got -1")),
    ("seed=abc", re.escape("seed must be an integer, got 'abc'")),
    ("schedule.lr=abc", re.escape("schedule.lr must be a positive number, got 'abc'")),
    ("schedule.finetune.lr=-1e-5", re.escape("schedule.finetune.lr must be a positive number, got -1e-05")),
    ("schedule.pretrain.epochs=0", re.escape("schedule.pretrain.epochs must be a positive integer, got 0")),
    ("schedule.batch_size=1.5", re.escape("schedule.batch_size must be a positive integer, got 1.5")),
    ("schedule.select=f1", re.escape("schedule.select must be one of wf1, acc, mf1, got 'f1'")),
    ("schedule.warmup_ratio=2", re.escape("schedule.warmup_ratio must be a number in [0, 1], got 2")),
    ("schedule.betas=[0.9,1.5]", re.escape("schedule.betas must be two numbers in [0, 1)")),
    ("schedule.clip_norm=0", re.escape("schedule.clip_norm must be a positive number or null, got 0")),
    ("schedule.finetune.early_stopping_patience=0",
     re.escape("schedule.finetune.early_stopping_patience must be a positive integer or null, got 0")),
    ("classifier.backbone=tinyy", "classifier.backbone='tinyy': .*did you mean 'tiny'\\? valid: tiny, small"),
    ("classifier.fast_path=fast", re.escape("classifier.fast_path must be one of auto, on, off, got 'fast'")),
    ("trainer.precision=13", re.escape("trainer.precision must be one of 64-true, 32-true, 16-mixed, bf16-mixed")),
    ("trainer.accelerator=gpus", re.escape("trainer.accelerator must be one of cpu, gpu, cuda, mps, tpu, auto, got "
                                           "'gpus'")),
    ("trainer.devices=0", re.escape("trainer.devices must be a positive integer, -1 (all), auto or a list")),
    ("+trainer.strategy=dpp", re.escape("trainer.strategy must be auto or one of Lightning's strategies")),
    pytest.param("trainer=gpu", re.escape("trainer.accelerator=gpu (trainer=gpu or ddp), but torch sees no CUDA GPU"),
                 marks=pytest.mark.skipif(torch.cuda.is_available(), reason="a CUDA GPU is present")),
])
def test_bad_config_values_are_refused_before_any_work_naming_the_key(tmp_path, override, message) -> None:
    # An empty data folder: had the check come after reading data, this would be a MissingDataError.
    cfg = compose_train(tmp_path, tmp_path / "no-data", [*TINY, "data=meld_bal", override])
    with pytest.raises(ConfigError, match=message):
        train(cfg)
    assert not (tmp_path / "logs").exists()


@pytest.mark.parametrize("override, error", [
    ("data.limit_dialogues=-5", "error: data.limit_dialogues must be a positive integer or null (every dialogue), "
                                "got -5\n"),
    ("classifier.fast_path=fast", "error: classifier.fast_path must be one of auto, on, off, got 'fast'\n"),
])
def test_bad_config_value_on_the_command_line_is_one_error_line_and_exit_2(tmp_path, override, error) -> None:
    job = subprocess.run([sys.executable, str(PROJECT_ROOT / "train.py"), *TINY, override,
                          f"paths.log_dir={tmp_path / 'logs'}", f"paths.data_dir={tmp_path}"],
                         cwd=tmp_path, env={**os.environ, "OMP_NUM_THREADS": "1"}, capture_output=True, text=True,
                         timeout=120)
    assert job.returncode == 2
    assert error in job.stderr
    assert "Traceback" not in job.stderr


def test_fast_path_is_part_of_the_job_key(tmp_path) -> None:
    """``on`` and ``off`` draw other dropout masks (the same distribution), so they are other jobs; ``auto`` keeps
    the key a job had before the switch existed (a config without ``fast_path``), so such a job still resumes."""
    keys = {value: job_key(compose_train(tmp_path, tmp_path, [*TINY, f"classifier.fast_path={value}"]))
            for value in ("auto", "on", "off")}
    assert len(set(keys.values())) == 3
    assert job_key(compose_train(tmp_path, tmp_path, [*TINY, "~classifier.fast_path"])) == keys["auto"]


def test_every_schedule_field_is_checked_and_settable_per_phase() -> None:
    names = {f.name for f in fields(PhaseSchedule)}
    assert set(_CHECKS) == names
    assert set(OmegaConf.load(CONFIG_DIR / "schedule" / "_phase.yaml")) == names
    for schedule in ("debug", "default", "demo", "paper"):
        cfg = compose_config("train", [f"schedule={schedule}", "schedule.finetune.lr=5e-6",
                                       "schedule.pretrain.no_decay=[bias]"])
        assert cfg.schedule.finetune.lr == 5e-6 and list(cfg.schedule.pretrain.no_decay) == ["bias"], schedule


def test_per_phase_overrides_reach_each_phase_optimizer_and_trainer(tmp_path, data_dir) -> None:
    """The README's ``schedule.finetune.lr=5e-6``, and every other key, per phase."""
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal", "schedule.lr=1e-3", "schedule.finetune.lr=5e-6",
                                             "schedule.pretrain.eps=1e-7", "schedule.finetune.betas=[0.8,0.9]",
                                             "schedule.finetune.weight_decay=0.5", "schedule.pretrain.clip_norm=3",
                                             "schedule.finetune.accumulate=2", "schedule.finetune.epochs=2",
                                             "schedule.finetune.select=acc",
                                             "schedule.finetune.early_stopping_patience=3"])
    exp = Experiment(cfg)
    exp.load_data()
    exp.build()
    seen = {}
    for phase, dataset in (("pretrain", "meld_bal"), ("finetune", "meld")):
        exp.fit(phase, dataset)
        trainer = exp.classifier.trainer
        optimizer = trainer.optimizers[0]
        stopping = [(c.monitor, c.patience) for c in trainer.callbacks if isinstance(c, EarlyStopping)]
        seen[phase] = (optimizer.param_groups[0]["initial_lr"], optimizer.defaults["eps"], optimizer.defaults["betas"],
                       optimizer.param_groups[0]["weight_decay"], trainer.gradient_clip_val,
                       trainer.accumulate_grad_batches, trainer.max_epochs, trainer.checkpoint_callback.monitor,
                       stopping)
    assert seen["pretrain"] == (1e-3, 1e-7, (0.9, 0.999), 0.01, 3, 1, 1, "pretrain/dev/wf1", [])
    assert seen["finetune"] == (5e-6, 1e-8, (0.8, 0.9), 0.5, 10, 2, 2, "finetune/dev/acc", [("finetune/dev/acc", 3)])


# ---- runner <-> checkpoints --------------------------------------------------------------------------
# Pretraining whose dev score peaks before the last epoch (epoch 2 of 0..3): the selected weights differ
# from the last ones, so handing on the wrong ones shows.
PEAKS_EARLY = ["classifier=compm", "classifier.backbone=tiny", "data=meld_bal", "data.limit_dialogues=8",
               "schedule=demo", "schedule.lr=1e-2", "schedule.pretrain.epochs=4", "schedule.finetune.epochs=1",
               "logger=none", "trainer.enable_progress_bar=false", "seed=4"]


def test_selected_weights_and_their_dev_metrics_are_handed_on_not_the_last_epochs(tmp_path, data_dir) -> None:
    cfg = compose_train(tmp_path, data_dir, PEAKS_EARLY)
    exp = Experiment(cfg)
    exp.load_data()
    exp.build()
    exp.fit("pretrain", "meld_bal")
    best = torch.load(exp.progress["pretrain"]["best"], map_location="cpu", weights_only=False)
    assert best["epoch"] < exp.progress["pretrain"]["epochs"] - 1 == 3   # the premise: an earlier epoch won
    # What fine-tuning and the pretrain tests start from: the selected weights.
    state = exp.classifier.state_dict()
    assert all(torch.equal(state[k], v) for k, v in best["state_dict"].items())
    # The dev figures reported are those of the selected epoch: recomputed from its weights.
    exp.classifier.eval()
    datamodule = exp.datamodule(exp.classifier, "meld_bal", exp.classifier.schedule)
    y_true, y_pred = [], []
    with torch.no_grad():
        for batch in datamodule.val_dataloader():
            y_true += batch["labels"].tolist()
            y_pred += exp.classifier(batch).argmax(-1).tolist()
    expected = classification_metrics(y_true, y_pred, exp.classifier.labels)
    assert exp.metrics["pretrain/dev/epoch"] == best["epoch"]
    for key in ("wf1", "acc", "mf1"):
        assert exp.metrics[f"pretrain/dev/{key}"] == pytest.approx(expected[key], abs=1e-12), key
    assert exp.confusion["pretrain/dev"] == expected["confusion"]
    # A rerun that reuses the finished pretraining loads the same selected weights.
    rerun = Experiment(cfg)
    rerun.load_progress()
    rerun.build()
    assert rerun.reuse("pretrain")
    rerun.ensure_weights()
    assert all(torch.equal(rerun.classifier.state_dict()[k], v) for k, v in best["state_dict"].items())


def test_an_auxiliary_fit_hands_back_its_selected_weights_and_resumes_under_its_own_step(tmp_path, data_dir) -> None:
    """``fit_auxiliary`` (EmoOne's teacher) returns the weights of its best dev epoch, not its last, and a rerun
    continues its last.ckpt recorded as ``<phase>/<tag>``. (Seed 0: the teacher's stream peaks at epoch 0.)"""
    cfg = compose_train(tmp_path, data_dir, [*PEAKS_EARLY, "seed=0"])
    exp = Experiment(cfg)
    exp.load_data()
    exp.build()
    schedule = phase_schedule(cfg.schedule, "pretrain")

    def context() -> PhaseContext:
        return PhaseContext("pretrain", exp.work_dir / "pretrain", True, schedule,
                            exp.datamodule(exp.classifier, "meld_bal", schedule), torch.device("cpu"), exp.trainers,
                            exp.progress)

    model = context().fit_auxiliary(exp.classifier, "teacher")
    best = torch.load(exp.work_dir / "pretrain" / "teacher" / "best.ckpt", map_location="cpu", weights_only=False)
    assert best["epoch"] < schedule.epochs - 1                            # the premise: an earlier epoch won
    assert all(torch.equal(model.state_dict()[k], v) for k, v in best["state_dict"].items())
    context().fit_auxiliary(exp.classifier, "teacher")
    assert [r["step"] for r in exp.progress.resumes] == ["pretrain/teacher"]


def test_unreadable_selected_weights_of_a_finished_phase_are_set_aside_and_retrained_first(tmp_path, data_dir,
                                                                                           caplog) -> None:
    """Checked before any data is read, not found when a later step loads them."""
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal"])
    first = train(cfg)
    (best,) = (tmp_path / "logs").glob("**/pretrain/best.ckpt")
    best.write_bytes(best.read_bytes()[:100])
    (progress,) = (tmp_path / "logs").glob("**/progress.json")
    data = json.loads(progress.read_text())   # only pretraining (and its test) finished
    progress.write_text(json.dumps({k: v for k, v in data.items() if not k.startswith(("finetune", "test"))}))
    with caplog.at_level(logging.WARNING):
        assert train(cfg) == first
    assert f"{best}: the selected weights of the finished step pretrain cannot be read" in caplog.text
    assert best.with_name("best.ckpt.corrupt").stat().st_size == 100 and unreadable_reason(best) is None
    restarted = [r for r in json.loads(progress.read_text())["resumes"] if r.get("restarted")]
    assert [r["step"] for r in restarted] == ["pretrain"]


# (finished steps, with the state of a fit's selected weights) -> the fits done again
FINISHED_WEIGHTS = {"meld_bal": [
    ({"pretrain": "unreadable"}, ["pretrain"]),
    ({"pretrain": "unreadable", "pretrain/test": None}, ["pretrain"]),
    ({"pretrain": "unreadable", "finetune": "readable"}, ["pretrain"]),          # pretrain/test still to run
    ({"pretrain": "unreadable", "pretrain/test": None, "finetune": "readable"}, []),
    ({"pretrain": "readable", "pretrain/test": None, "finetune": "unreadable"}, ["finetune"]),
    ({"pretrain": "unreadable", "pretrain/test": None, "finetune": "unreadable", "test": None}, []),
], "meld": [
    ({"finetune": "missing"}, ["finetune"]),
    ({"finetune": "unreadable", "test": None}, []),
]}


@pytest.mark.parametrize("data", FINISHED_WEIGHTS)
def test_only_the_finished_weights_a_step_still_to_run_starts_from_are_checked(tmp_path, data, caplog) -> None:
    """A finished fit's selected weights are checked when a later step still to run starts from them (no finished fit
    between): an unreadable file is set aside, a missing one noted, and that fit is done again. Weights no step needs
    any more (a finished job, or a pretrain phase whose fine-tuning is done) are left alone: nothing is retrained."""
    cfg = compose_train(tmp_path, tmp_path / "data", [*TINY, f"data={data}"])
    for row, (finished, redone) in enumerate(FINISHED_WEIGHTS[data]):
        cfg.checkpoint_dir = str(tmp_path / f"checkpoints{row}")       # not in the job key: a folder per case
        experiment = Experiment(cfg)
        experiment.work_dir.mkdir(parents=True)
        progress = {}
        for step, weights in finished.items():
            progress[step] = {"metrics": {}, "confusion": {}}
            if weights:
                best = experiment.work_dir / step / "best.ckpt"
                best.parent.mkdir()
                if weights == "readable":
                    torch.save({"state_dict": {}}, best)
                elif weights == "unreadable":
                    best.write_bytes(b"not a checkpoint")
                progress[step]["best"] = str(best)
        (experiment.work_dir / "progress.json").write_text(json.dumps(progress))
        experiment.load_progress()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="erc.training.runner"):
            experiment.check_finished_weights()
        assert [r["step"] for r in experiment.progress.resumes if r.get("restarted")] == redone, finished
        assert [step for step in finished if experiment.progress.done(step) is None] == redone, finished
        for step in redone:
            best = experiment.work_dir / step / "best.ckpt"
            reason = "no such file" if finished[step] == "missing" else "not a zip"
            assert re.search(rf"{re.escape(str(best))}: the selected weights of the finished step {step} cannot be "
                             rf"read \(.*{reason}", caplog.text, re.IGNORECASE), caplog.text
            assert best.with_name("best.ckpt.corrupt").is_file() is (finished[step] == "unreadable")
        for step, weights in finished.items():
            if step not in redone and weights:
                assert (experiment.work_dir / step / "best.ckpt").exists() is (weights != "missing"), finished


def test_a_phase_resumed_with_unreadable_best_weights_restarts_before_training(tmp_path) -> None:
    """Resuming from last.ckpt would train the rest of the phase and then fail to load its best weights so far."""
    store = ProgressStore(tmp_path / "progress.json")
    last, best = tmp_path / "last.ckpt", tmp_path / "best.ckpt"
    torch.save({"epoch": 1}, last)
    torch.save({"state_dict": {}}, best)
    assert store.resume_point("finetune", last, resume=True) == str(last)
    best.write_bytes(best.read_bytes()[:50])
    assert store.resume_point("finetune", last, resume=True) is None
    assert not last.exists() and not best.exists()
    assert (tmp_path / "last.ckpt.corrupt").is_file() and (tmp_path / "best.ckpt.corrupt").stat().st_size == 50
    assert "best.ckpt is unreadable" in store.resumes[-1]["restarted"]


# ---- reusing finished steps ---------------------------------------------------------------------------
def test_a_finished_step_hands_on_its_metrics_confusions_and_selected_weights_once_loaded(tmp_path) -> None:
    """A rerun takes a finished step's metrics and confusion matrices from progress.json, records the reuse, and
    loads the step's selected weights (not the fresh ones) when a later step needs them; a finished test step has no
    weights to hand on. Missing or unreadable selected weights are a user error naming the file and the fix."""
    cfg = compose_train(tmp_path, tmp_path / "data", [*TINY, "data=meld_bal"])
    exp = Experiment(cfg)
    exp.build()
    selected = {k: v + 1 if v.is_floating_point() else v for k, v in exp.classifier.state_dict().items()}
    best = exp.work_dir / "pretrain" / "best.ckpt"
    best.parent.mkdir(parents=True)
    torch.save({"state_dict": selected}, best)
    exp.progress.finish("pretrain", {"best": str(best), "metrics": {"pretrain/dev/wf1": 0.25},
                                     "confusion": {"pretrain/dev": [[1, 0], [0, 1]]}})
    exp.progress.finish("pretrain/test", {"metrics": {"pretrain/test/meld_org/wf1": 0.5},
                                          "confusion": {"pretrain/test/meld_org": [[2]]}})
    assert not exp.reuse("finetune")
    assert exp.reuse("pretrain") and exp.reuse("pretrain/test")
    assert exp.metrics == {"pretrain/dev/wf1": 0.25, "pretrain/test/meld_org/wf1": 0.5}
    assert exp.confusion == {"pretrain/dev": [[1, 0], [0, 1]], "pretrain/test/meld_org": [[2]]}
    assert [(r["step"], r["reused"]) for r in exp.progress.resumes] == [
        ("pretrain", f"finished step: metrics from progress.json, weights from {best}"),
        ("pretrain/test", "finished step: metrics from progress.json")]
    assert not torch.equal(exp.classifier.state_dict()["head.weight"], selected["head.weight"])
    exp.ensure_weights()
    assert all(torch.equal(exp.classifier.state_dict()[k], v) for k, v in selected.items())
    for damage in (best.unlink, lambda: best.write_bytes(b"not a checkpoint")):
        damage()
        exp._pending_weights = str(best)
        with pytest.raises(UserError, match=rf"{re.escape(str(best))}: the selected weights .* resume=false"):
            exp.ensure_weights()


# ---- config <-> loss ----------------------------------------------------------------------------------
def test_emoone_loss_weights_from_the_config_reach_its_loss(benchmark_data) -> None:
    def loss_and_ce(*overrides: str) -> tuple[torch.Tensor, torch.Tensor]:
        cfg = compose_config("train", ["classifier=emoone", "classifier.backbone=tiny", *overrides])
        torch.manual_seed(0)
        module = build_classifier(cfg.classifier, "meld")
        batch = module.collate(module.encode(load_benchmark("meld", "train", benchmark_data)[:3]))
        logits = module(batch)
        return module.loss(batch, logits), F.cross_entropy(logits, batch["labels"])

    loss, ce = loss_and_ce("classifier.w2=0")
    assert torch.allclose(loss, ce, rtol=0, atol=1e-7)                  # w2=0: plain cross-entropy
    loss, ce = loss_and_ce("classifier.w1=2", "classifier.w2=0")
    assert torch.allclose(loss, 2 * ce, rtol=0, atol=1e-6)
    loss, ce = loss_and_ce()                                            # the gray term is there by default
    assert (loss - ce).item() > 0.1


# ---- job identity ----------------------------------------------------------------------------------
def test_job_key_follows_the_generated_splits_content_not_their_file_times(tmp_path, data_dir) -> None:
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal"])
    key = job_key(cfg)
    folder = data_dir / "synthetic" / "meld_bal"
    for split in ("train", "dev", "test"):                             # rewritten, same content (make demo again)
        path = folder / f"{split}.jsonl"
        text = path.read_text()
        path.unlink()
        path.write_text(text)
        os.utime(path, ns=(1, 1))
    (folder / "runs.jsonl").write_text('{"run": 2}\n')                 # generation's own logs do not count
    assert job_key(cfg) == key
    lines = (folder / "dev.jsonl").read_text().splitlines(keepends=True)
    (folder / "dev.jsonl").write_text("".join(lines[:-1]))             # other dialogues: another job
    assert job_key(cfg) != key


def test_job_key_follows_a_filtered_pretraining_sets_content(tmp_path, data_dir) -> None:
    """A filtered set (meld_bal_probe) is read for pretraining but is none of the test sets: its split files count
    in the key as much as a test set's."""
    folder = data_dir / "synthetic" / "meld_bal_probe"
    shutil.copytree(data_dir / "synthetic" / "meld_bal", folder)
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal_probe"])
    assert "meld_bal_probe" not in cfg.data.test
    key = job_key(cfg)
    lines = (folder / "train.jsonl").read_text().splitlines(keepends=True)
    (folder / "train.jsonl").write_text("".join(lines[:-1]))            # the filter kept one dialogue fewer
    assert job_key(cfg) != key


# ---- test splits -----------------------------------------------------------------------------------
def test_empty_generated_test_split_is_listed_as_skipped_in_results(tmp_path, data_dir) -> None:
    (data_dir / "synthetic" / "meld_bal" / "test.jsonl").write_text("")
    metrics = train(compose_train(tmp_path, data_dir, [*TINY, "data=meld"]))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["skipped_test_sets"] == {
        "meld_bal": "its test split has no dialogues",
        "meld_nat": f"not generated yet ({data_dir / 'synthetic' / 'meld_nat'})"}
    assert "test/meld_org/wf1" in metrics and not any("meld_bal" in key for key in metrics)


def test_empty_test_split_of_the_pretrain_set_is_an_error_before_training(tmp_path, data_dir) -> None:
    (data_dir / "synthetic" / "meld_bal" / "test.jsonl").write_text("")
    with pytest.raises(DataError, match="meld_bal: the test split has no dialogues"):
        train(compose_train(tmp_path, data_dir, [*TINY, "data=meld_bal"]))
    assert not list((tmp_path / "logs").glob("**/*.ckpt"))


# ---- checkpoints and backbones ---------------------------------------------------------------------
def test_checkpoint_writes_are_atomic(tmp_path) -> None:
    path = tmp_path / "last.ckpt"
    io = AtomicCheckpointIO()
    io.save_checkpoint({"epoch": 1, "w": torch.ones(3)}, path)
    before = path.read_bytes()

    class Unpicklable:
        def __reduce__(self):
            raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError, match="killed mid-write"):
        io.save_checkpoint({"epoch": 2, "w": torch.zeros(3), "x": Unpicklable()}, path)
    assert path.read_bytes() == before and sorted(p.name for p in tmp_path.iterdir()) == ["last.ckpt"]
    assert unreadable_reason(path) is None
    path.write_bytes(before[: len(before) // 2])
    assert "not a complete checkpoint" in unreadable_reason(path)


SAVE_UNDER_A_FILE_SIZE_LIMIT = """
import resource, signal, sys
import torch
from erc.errors import UserError
from erc.io import write_atomic  # what AtomicCheckpointIO.save_checkpoint writes through (Lightning not imported)
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # the OS then refuses the write (EFBIG), as a full disk does (ENOSPC)
resource.setrlimit(resource.RLIMIT_FSIZE, (1 << 20, resource.RLIM_INFINITY))
try:
    write_atomic(sys.argv[1], lambda handle: torch.save({"w": torch.zeros(1_000_000)}, handle), binary=True)
except UserError as err:
    print(err)
"""


def test_a_checkpoint_the_os_refuses_to_write_is_an_error_naming_it(tmp_path) -> None:
    """torch.save turns the OS error into a RuntimeError ("enforce fail at inline_container.cc") naming no file."""
    path = tmp_path / "last.ckpt"
    path.write_bytes(b"previous")
    job = subprocess.run([sys.executable, "-c", SAVE_UNDER_A_FILE_SIZE_LIMIT, str(path)], cwd=PROJECT_ROOT,
                         capture_output=True, text=True, timeout=120)
    assert job.stdout.strip() == (f"{path}: could not write (File too large); the previous version, if any, is "
                                  f"unchanged. Free disk space or fix the folder's permissions and rerun."), job.stderr
    assert path.read_bytes() == b"previous" and [p.name for p in tmp_path.iterdir()] == ["last.ckpt"]


def test_backbone_names_resolve_locally_before_any_hub_call(tmp_path, monkeypatch, reachable_hub) -> None:
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path / "empty-cache"))
    for name in ("tiny", "small", "roberta-large", "xlm-roberta-large"):   # hub names pass through unchecked
        check_backbone_name(name, "classifier.backbone")
    with socket.socket() as closed:  # the hub unreachable: one quick probe, not a minute of the hub client's retries
        closed.bind(("127.0.0.1", 0))
        monkeypatch.setattr("huggingface_hub.constants.ENDPOINT", f"http://127.0.0.1:{closed.getsockname()[1]}")
    started = time.monotonic()
    with pytest.raises(ConfigError, match=r"classifier.backbone='roberta-large': not in the Hugging Face cache and "
                                          r"the hub \(http://127.0.0.1:\d+\) cannot be reached .*backbones that run "
                                          r"offline: tiny, small \(random weights\) and minilm \(installed\)"):
        check_backbone_name("roberta-large", "classifier.backbone")
    assert time.monotonic() - started < 2
    for typo, near in (("tinyy", "tiny"), ("smal", "small"), ("roberta-larg", "roberta-large")):
        with pytest.raises(ConfigError, match=rf"classifier.backbone='{typo}': .*did you mean '{near}'"):
            check_backbone_name(typo, "classifier.backbone")
    with pytest.raises(ConfigError, match=re.escape("the folder has no config.json")):
        check_backbone_name(str(tmp_path), "classifier.backbone")
    (tmp_path / "config.json").write_text("{}")
    check_backbone_name(str(tmp_path), "classifier.backbone")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="not in the Hugging Face cache and HF_HUB_OFFLINE is set; backbones that"):
        check_backbone_name("roberta-large", "classifier.backbone")


def test_batch_order_is_drawn_at_the_first_batch_not_when_the_iterator_is_made() -> None:
    """Lightning makes a resumed run's first iterator before it calls set_epoch."""
    sampler = BucketBatchSampler(list(range(40)), batch_size=4, shuffle=True, seed=3, bucket_batches=2)
    sampler.sampler.set_epoch(2)
    epoch2 = list(sampler)
    sampler.sampler.set_epoch(0)
    early = iter(sampler)
    sampler.sampler.set_epoch(2)
    assert list(early) == epoch2 != list(BucketBatchSampler(list(range(40)), 4, True, seed=3, bucket_batches=2))


def test_backbone_folder_that_cannot_be_loaded_is_a_config_error_naming_the_key(tmp_path, data_dir) -> None:
    model = tmp_path / "model"
    model.mkdir()
    (model / "config.json").write_text('{"model_type": "roberta"}')        # no weights
    cfg = compose_train(tmp_path, data_dir, [*TINY, "data=meld", f"classifier.backbone={model}"])
    with pytest.raises(ConfigError, match=rf"classifier.backbone='{model}' could not be loaded: .*model.safetensors"):
        train(cfg)
