"""A killed and rerun training job is the same job: real ``train.py`` subprocesses killed with SIGKILL and rerun
end at bit-identical metrics and weights to an uninterrupted run with the same seed; an unreadable ``last.ckpt``
is set aside and its phase restarts (to the same result); a job that a real ``train.py`` is running is refused to
a second process, naming the holder. Only the processes killed and the lock's holder need to be ``train.py``: the
uninterrupted run and the fast test's rerun are the same job run in this process (no startup to pay).

The job (CoMPM, tiny backbone, pretrain on the small generated ``meld_bal`` fixture, fine-tune on a MELD
slice) is chosen so that the selected pretrain epoch comes after the kill point: what the resumed process
trains decides the results, so a resume that drew other random numbers would change them."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch

from erc.errors import LockError
from erc.identity import job_key
from erc.locks import FolderLock
from erc.paths import PROJECT_ROOT
from erc.training import train
from erc.training.progress_store import ProgressStore
from erc.training.resume import EpochSeeds, completed_epochs, seed_everything_at
from erc.training.runner import Experiment

from helpers.config import compose_config

JOB = ["classifier=compm", "classifier.backbone=tiny", "data=meld_bal", "data.limit_dialogues=8", "schedule=demo",
       "schedule.lr=1e-2", "schedule.pretrain.epochs=4", "schedule.finetune.epochs=1", "logger=none",
       "trainer.enable_progress_bar=false", "seed=4"]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1", "WANDB_MODE": "offline"}


@pytest.fixture(scope="module")
def job_data(tmp_path_factory: pytest.TempPathFactory, benchmark_data: Path, fixtures_dir: Path) -> Path:
    """Real MELD (linked) and the generated meld_bal fixture, shared by this module's jobs."""
    root = tmp_path_factory.mktemp("resume") / "data"
    (root / "synthetic").mkdir(parents=True)
    (root / "meld").symlink_to(benchmark_data / "meld")
    shutil.copytree(fixtures_dir / "synthetic" / "meld_bal", root / "synthetic" / "meld_bal")
    return root


def job_args(data_dir: Path, log_dir: Path, *overrides: str) -> list[str]:
    return [sys.executable, str(PROJECT_ROOT / "train.py"), *JOB, f"paths.data_dir={data_dir}",
            f"paths.synthetic_dir={data_dir / 'synthetic'}", f"paths.log_dir={log_dir}", *overrides]


def work_dir(log_dir: Path) -> Path:
    (folder,) = (log_dir / "train" / "checkpoints").iterdir()
    return folder


def run_to_end(args: list[str], cwd: Path) -> tuple[dict, str]:
    """Run a job to its end; its newest results.json and its console output (log lines included)."""
    job = subprocess.run(args, cwd=cwd, env=ENV, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                         timeout=300)
    assert job.returncode == 0, job.stdout[-3000:]
    newest = max((cwd / "logs" / "train" / "runs").glob("*/results.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(newest.read_text()), job.stdout


def run_until_killed(args: list[str], cwd: Path, ready: Callable[[], bool]) -> None:
    """Start a job and SIGKILL it as soon as ``ready()`` holds (it must not end first)."""
    job = subprocess.Popen(args, cwd=cwd, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not ready() and job.poll() is None and time.time() < deadline:
        time.sleep(0.02)
    job.send_signal(signal.SIGKILL)
    job.wait()
    assert job.returncode == -signal.SIGKILL, "the job ended before it could be killed"


def epochs_in(checkpoint: Path, at_least: int) -> Callable[[], bool]:
    """Whether ``checkpoint`` holds at least ``at_least`` finished epochs (it is replaced atomically)."""
    return lambda: checkpoint.is_file() and completed_epochs(checkpoint) >= at_least


def step_done(log_dir: Path, step: str) -> Callable[[], bool]:
    def done() -> bool:
        paths = list((log_dir / "train" / "checkpoints").glob("*/progress.json"))
        return bool(paths) and step in json.loads(paths[0].read_text())
    return done


def best_weights(log_dir: Path, phase: str) -> dict[str, torch.Tensor]:
    return torch.load(work_dir(log_dir) / phase / "best.ckpt", map_location="cpu", weights_only=False)["state_dict"]


def assert_same_job(results: dict, log_dir: Path, reference: dict, reference_dir: Path) -> None:
    """Every metric equal (==, not approx), every confusion matrix equal, the selected weights equal."""
    assert results["metrics"].keys() == reference["metrics"].keys()
    for key, value in reference["metrics"].items():
        assert results["metrics"][key] == value, key
    assert results["confusion"] == reference["confusion"]
    for phase in ("pretrain", "finetune"):
        mine, theirs = best_weights(log_dir, phase), best_weights(reference_dir, phase)
        assert all(torch.equal(mine[k], theirs[k]) for k in theirs), phase


def compose_job(data_dir: Path, log_dir: Path, *overrides: str):
    """The job's config as train.py composes it from :func:`job_args` (the same job key, the same work folder),
    its results.json written to ``<log_dir>/out``."""
    return compose_config("train", [*JOB, f"paths.data_dir={data_dir}", f"paths.synthetic_dir={data_dir / 'synthetic'}",
                                    f"paths.log_dir={log_dir}", f"paths.output_dir={log_dir / 'out'}", *overrides])


def train_in_process(cfg) -> dict:
    """Run ``cfg``'s job in this process with one torch thread, as the subprocesses run (OMP_NUM_THREADS=1); its
    results.json. (No train.py startup to pay: a subprocess is used only where a process is killed or holds a lock.)"""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        train(cfg)
    finally:
        torch.set_num_threads(threads)
    return json.loads((Path(cfg.paths.output_dir) / "results.json").read_text())


@pytest.fixture(scope="module")
def reference(job_data: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[dict, Path]:
    """The uninterrupted job, run in this process (the resumed train.py processes below must end exactly there):
    its results and its log folder."""
    logs = tmp_path_factory.mktemp("reference") / "logs"
    results = train_in_process(compose_job(job_data, logs))
    assert results["resumes"] == []
    return results, logs


def test_job_killed_mid_pretraining_resumes_to_the_uninterrupted_result(tmp_path, job_data, reference) -> None:
    """With W&B on (offline), which must change nothing of the result; the resumed process continues the job's run."""
    args = job_args(job_data, tmp_path / "logs", "logger=wandb")
    def last() -> Path:
        return next((tmp_path / "logs" / "train" / "checkpoints").glob("*/pretrain/last.ckpt"), Path("/-"))

    run_until_killed(args, tmp_path, lambda: epochs_in(last(), 1)())
    done = completed_epochs(last())
    assert 1 <= done < 4
    # The pretrain epoch selected by the uninterrupted run was trained after the kill point: the resumed
    # process's random draws decide it (else this test could not see a resume that draws differently).
    assert reference[0]["metrics"]["pretrain/dev/epoch"] >= done

    results = train_in_process(compose_job(job_data, tmp_path / "logs", "logger=wandb"))     # the same job, rerun
    assert_same_job(results, tmp_path / "logs", *reference)
    (resume,) = results["resumes"]
    assert resume["step"] == "pretrain" and resume["epochs_done"] == done and resume["at"]
    assert resume["checkpoint"] == str(work_dir(tmp_path / "logs") / "pretrain" / "last.ckpt")
    # The job's one W&B run (its id the job key), in the job's folder: the killed process's part and the
    # resumed one's, the folders `wandb sync` uploads in start order as one run.
    key = work_dir(tmp_path / "logs").name
    parts = sorted((work_dir(tmp_path / "logs") / "wandb").glob("offline-run-*"))
    assert len(parts) == 2 and all(part.name.endswith(f"-{key}") for part in parts)
    assert not list((tmp_path / "logs").glob("train/runs/*/wandb"))


def test_truncated_last_checkpoint_is_set_aside_and_its_phase_restarts(tmp_path, job_data, reference, caplog) -> None:
    cfg = compose_job(job_data, tmp_path / "logs")
    last = Path(cfg.checkpoint_dir) / job_key(cfg) / "pretrain" / "last.ckpt"
    last.parent.mkdir(parents=True)
    torch.save({"epoch": 1, "state_dict": {}}, last)
    torn = last.read_bytes()[:200]                     # a copy cut short, a disk that filled
    last.write_bytes(torn)

    train(cfg)
    assert f"{last}: cannot resume from it: not a complete checkpoint" in caplog.text
    assert (last.parent / "last.ckpt.corrupt").read_bytes() == torn
    results = json.loads((tmp_path / "logs" / "out" / "results.json").read_text())
    (restart,) = results["resumes"]                    # restarted from scratch, not resumed
    assert restart["step"] == "pretrain" and "unreadable" in restart["restarted"] and "checkpoint" not in restart
    assert_same_job(results, tmp_path / "logs", *reference)


def test_resume_false_neither_continues_a_last_checkpoint_nor_reuses_finished_steps(tmp_path, job_data) -> None:
    """resume=true continues a phase from a readable last.ckpt and skips the steps progress.json says are done;
    resume=false does neither (and records no resume), leaving the files to be overwritten by the new run."""
    last = tmp_path / "pretrain" / "last.ckpt"
    last.parent.mkdir()
    torch.save({"epoch": 2, "state_dict": {}}, last)
    store = ProgressStore(tmp_path / "progress.json")
    assert store.resume_point("pretrain", last, resume=False) is None
    assert store.resumes == [] and not store.path.exists() and last.is_file()
    assert store.resume_point("pretrain", last, resume=True) == str(last)
    (resumed,) = store.resumes
    assert resumed["epochs_done"] == 3 and resumed["checkpoint"] == str(last)

    cfg = compose_job(job_data, tmp_path / "logs")
    for resume in (True, False):
        cfg.resume = resume                                   # not in the job key: the same job folder
        experiment = Experiment(cfg)
        experiment.work_dir.mkdir(parents=True, exist_ok=True)
        done = {"pretrain": {"metrics": {"pretrain/dev/weighted_f1": 0.5}, "confusion": {}}}
        (experiment.work_dir / "progress.json").write_text(json.dumps(done))
        experiment.load_progress()
        assert experiment.reuse("pretrain") is resume, resume


def test_every_epoch_reseeds_every_generator_from_its_own_epoch() -> None:
    """What epoch e draws (dropout masks) is a function of (seed, stream, e) alone: the same after any other draws,
    different from every other epoch's and from another stream's (a resumed run continues each stream exactly)."""
    def draws(callback: EpochSeeds, epoch: int) -> tuple:
        callback.on_train_epoch_start(SimpleNamespace(current_epoch=epoch), None)
        return torch.rand(3).tolist(), np.random.rand(), random.random()

    pretrain = EpochSeeds(seed=4, stream="pretrain")
    epochs = [draws(pretrain, e) for e in range(3)]
    assert len({repr(d) for d in epochs}) == 3
    torch.rand(5), np.random.rand(5), random.random()        # whatever ran before epoch 1 of a resumed run
    assert draws(pretrain, 1) == epochs[1]
    seed_everything_at(4, "pretrain", 1)
    assert (torch.rand(3).tolist(), np.random.rand(), random.random()) == epochs[1]
    assert draws(EpochSeeds(seed=4, stream="finetune"), 1) != epochs[1]
    assert draws(EpochSeeds(seed=5, stream="pretrain"), 1) != epochs[1]


def test_the_progress_store_keeps_finished_steps_and_every_resume_across_runs(tmp_path) -> None:
    """A finished step is on disk as soon as it is recorded (a run killed next skips it), and each run adds to the
    resumes of the runs before it instead of replacing them."""
    path = tmp_path / "progress.json"
    first = ProgressStore(path)
    first.finish("pretrain", {"metrics": {"pretrain/dev/weighted_f1": 0.5}})
    second = ProgressStore(path)
    second.load()
    assert second.done("pretrain") == {"metrics": {"pretrain/dev/weighted_f1": 0.5}} and second.done("test") is None
    second.record_resume("finetune", checkpoint="last.ckpt", epochs_done=1)
    third = ProgressStore(path)
    third.load()
    third.record_resume("test", reused="finished step")
    final = ProgressStore(path)
    final.load()
    assert [r["step"] for r in final.resumes] == ["finetune", "test"] and final.done("pretrain")


def test_a_forgotten_step_is_not_done_in_this_run_nor_the_next(tmp_path) -> None:
    """forget() (a finished step whose selected weights are unreadable) makes the step one to do again, on disk too,
    and says why in the resumes; the other steps stay finished."""
    path = tmp_path / "progress.json"
    store = ProgressStore(path)
    store.finish("pretrain", {"metrics": {"a": 1.0}, "best": "pretrain/best.ckpt"})
    store.finish("finetune", {"metrics": {"b": 2.0}})
    store.forget("pretrain", "pretrain/best.ckpt was unreadable")
    assert store.done("pretrain") is None and store.done("finetune")
    again = ProgressStore(path)
    again.load()
    assert again.done("pretrain") is None and again.done("finetune") == {"metrics": {"b": 2.0}}
    assert [(r["step"], r["restarted"]) for r in again.resumes] == [("pretrain", "pretrain/best.ckpt was unreadable")]


def test_only_an_unreadable_checkpoint_is_set_aside(tmp_path) -> None:
    """An unreadable last.ckpt restarts its step and goes to last.ckpt.corrupt; a readable best.ckpt beside it stays
    where it is (a .corrupt copy would say good weights were damaged). An unreadable best.ckpt goes aside with a
    readable last.ckpt (resuming would lose the best weights so far)."""
    folder = tmp_path / "pretrain"
    folder.mkdir()
    last, best = folder / "last.ckpt", folder / "best.ckpt"
    last.write_bytes(b"not a checkpoint")
    torch.save({"epoch": 0, "state_dict": {"w": torch.zeros(3)}}, best)
    good = best.read_bytes()
    store = ProgressStore(tmp_path / "progress.json")
    assert store.resume_point("pretrain", last, resume=True) is None
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt", "last.ckpt.corrupt"] and best.read_bytes() == good
    torch.save({"epoch": 1, "state_dict": {}}, last)
    best.write_bytes(b"not a checkpoint either")
    assert store.resume_point("pretrain", last, resume=True) is None
    assert sorted(p.name for p in folder.iterdir()) == ["best.ckpt.corrupt", "last.ckpt.corrupt"]


def test_a_checkpoint_with_a_damaged_entry_is_set_aside_and_its_phase_restarts(tmp_path, caplog) -> None:
    """A whole-looking archive whose tensor bytes changed (a CRC mismatch) is as unreadable as a truncated one."""
    last = tmp_path / "last.ckpt"
    torch.save({"epoch": 1, "state_dict": {"w": torch.zeros(1000)}}, last)
    data = bytearray(last.read_bytes())
    data[data.index(bytes(4000)) + 100] ^= 0xFF
    last.write_bytes(bytes(data))
    store = ProgressStore(tmp_path / "progress.json")
    assert store.resume_point("pretrain", last, resume=True) is None
    (restart,) = store.resumes
    assert "is damaged (CRC mismatch)" in restart["restarted"] and not last.exists()
    assert (tmp_path / "last.ckpt.corrupt").read_bytes() == bytes(data)


def test_second_train_on_a_running_job_is_refused_naming_the_holder(tmp_path, job_data) -> None:
    """The holder is a real train.py; the second is this test process, on the same job."""
    args = job_args(job_data, tmp_path / "logs", "schedule.pretrain.epochs=200")
    first = subprocess.Popen(args, cwd=tmp_path, env=ENV, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        def held() -> bool:
            return any(f'"pid": {first.pid},' in p.read_text()
                       for p in (tmp_path / "logs" / "train" / "checkpoints").glob("*/.lock"))

        deadline = time.time() + 120
        while not held() and first.poll() is None and time.time() < deadline:
            time.sleep(0.05)
        with pytest.raises(LockError) as refused:
            train(compose_job(job_data, tmp_path / "logs", "schedule.pretrain.epochs=200"))
        assert first.poll() is None, "the first job ended before the second was refused"
    finally:
        first.send_signal(signal.SIGKILL)
        first.wait()
    assert f"{work_dir(tmp_path / 'logs')} is in use by another train.py" in str(refused.value)
    assert f"pid {first.pid} on host {socket.gethostname()}" in str(refused.value)
    assert not (tmp_path / "logs" / "out").exists()   # refused before any work
    with FolderLock(work_dir(tmp_path / "logs"), what="test"):    # the lock died with its holder
        pass


@pytest.mark.slow
def test_job_killed_at_several_points_resumes_to_the_uninterrupted_result(tmp_path, job_data, reference) -> None:
    """Killed after pretrain epoch 1, again after epoch 2, then during fine-tuning (the pretrained
    weights then come from best.ckpt in a fresh process), and rerun to the end."""
    args = job_args(job_data, tmp_path / "logs")
    def last() -> Path:
        return next((tmp_path / "logs" / "train" / "checkpoints").glob("*/pretrain/last.ckpt"), Path("/-"))

    run_until_killed(args, tmp_path, lambda: epochs_in(last(), 1)())
    run_until_killed(args, tmp_path, epochs_in(last(), completed_epochs(last()) + 1))
    run_until_killed(args, tmp_path, step_done(tmp_path / "logs", "pretrain/test"))
    assert not list(work_dir(tmp_path / "logs").glob("finetune/*.ckpt"))   # killed in fine-tune epoch 0

    results, _ = run_to_end(args, tmp_path)
    assert_same_job(results, tmp_path / "logs", *reference)
    assert [r["step"] for r in results["resumes"]] == ["pretrain", "pretrain", "pretrain", "pretrain/test"]


@pytest.mark.slow
def test_emoone_killed_while_fine_tuning_its_teacher_resumes_to_the_uninterrupted_result(tmp_path, job_data) -> None:
    """EmoOne with a self-teacher (S): killed once pretraining is done (the rerun builds the fine-tune
    teacher in a new process), then after that teacher's first epoch (the rerun resumes it from its
    last.ckpt and trains the student in a new process)."""
    emoone = ["classifier=emoone", "classifier.gray=teacher", "schedule.pretrain.epochs=2",
              "schedule.finetune.epochs=2"]
    reference_dir = tmp_path / "reference"
    reference_dir.mkdir()
    reference, _ = run_to_end(job_args(job_data, reference_dir / "logs", *emoone), reference_dir)
    args = job_args(job_data, tmp_path / "logs", *emoone)
    def teacher() -> Path:
        return next((tmp_path / "logs" / "train" / "checkpoints").glob("*/finetune/teacher/last.ckpt"), Path("/-"))

    run_until_killed(args, tmp_path, step_done(tmp_path / "logs", "pretrain/test"))
    assert not teacher().exists()
    run_until_killed(args, tmp_path, lambda: epochs_in(teacher(), 1)())
    assert not (work_dir(tmp_path / "logs") / "finetune" / "teacher" / "probs.pt").exists()

    results, _ = run_to_end(args, tmp_path)
    assert_same_job(results, tmp_path / "logs", reference, reference_dir / "logs")
    assert [r["step"] for r in results["resumes"]] == ["pretrain", "pretrain/test"] * 2 + ["finetune/teacher"]
