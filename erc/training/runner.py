"""``train(cfg)``: one experiment = pretrain on a generated set (optional) -> fine-tune on the benchmark -> test.

The paper's protocol (Kaplan et al., Section IV): a classifier is trained on a generated train split
(model selection on its dev split), tested there on the benchmark's and the generated test splits
(train-on-synthetic, test-on-real: ``pretrain/test/<benchmark>_<source>/*``), fine-tuned on the benchmark's
train split (selection on its dev split) and tested again (``test/<benchmark>_<source>/*``). ``data=meld``
skips the pretrain phase: the "Org" baseline.

Resuming: a job's checkpoints live in ``<checkpoint_dir>/<job key>/``, the key being a hash of the
resolved config without the keys listed in ``not_in_job_key`` (:func:`erc.identity.job_key`), so rerunning
the same command, or one that changes only such a key (the progress bar, W&B options), finds them: finished
steps are skipped (their metrics come from ``progress.json``, the best weights from ``<phase>/best.ckpt``), an
interrupted phase continues from its ``last.ckpt`` (deleted once the phase is done). ``resume=false`` starts over.

A resumed job is the same job: with the same seed it ends, on a CPU, at bit-identical metrics to an
uninterrupted run (random streams keyed by position, atomic checkpoints: :mod:`erc.training.resume`);
each resume is recorded in ``progress.json`` and ``results.json`` (``resumes``). A job folder is held by
one process at a time (:class:`erc.locks.FolderLock`): a second ``train.py`` on the same job is refused,
naming the holder. The job key hashes the content of the generated sets' split files, so rewriting them
unchanged (``make demo`` again) resumes.

This module keeps ``train(cfg)`` and the sequence of steps (:class:`Experiment`); the work is done by parts named
after what they do: the data cache (:mod:`erc.training.datasets`), the trainer factory (:mod:`erc.training.trainers`),
scoring (:mod:`erc.training.scoring`), the progress store (:mod:`erc.training.progress_store`), W&B reporting
(:mod:`erc.training.reporting`), and where the runner meets a classifier (:mod:`erc.training.phases`: building it,
and the :class:`erc.models.base.FitContext` of each phase).
"""

from __future__ import annotations

import logging
import time
from contextlib import nullcontext
from pathlib import Path

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig
from pytorch_lightning.utilities import rank_zero_only

from erc.data import parse_dataset, test_set_name
from erc.errors import UserError
from erc.identity import job_identity, job_key
from erc.io import move_aside, unreadable_reason, write_json_atomic
from erc.locks import FolderLock
from erc.models.base import ERCClassifier, PhaseSchedule
from erc.secrets import public_config
from erc.training.data import ERCDataModule, loader
from erc.training.datasets import DataCache
from erc.training.phases import PhaseContext, build_classifier
from erc.training.progress_store import ProgressStore
from erc.training.reporting import Reporter
from erc.training.resume import seed_everything_at
from erc.training.schedule import phase_schedule
from erc.training.scoring import Scorer
from erc.training.tracking import git_revision
from erc.training.trainers import TrainerFactory
from erc.training.validation import check_accelerator_present, validate_train_config

log = logging.getLogger(__name__)


class Experiment:
    """One job: its identity, classifier and collected metrics, and the parts that do the work: the data cache
    (:class:`~erc.training.datasets.DataCache`), the trainer factory (:class:`~erc.training.trainers.TrainerFactory`),
    the progress store (:class:`~erc.training.progress_store.ProgressStore`) and W&B reporting
    (:class:`~erc.training.reporting.Reporter`). Its methods are the steps of the protocol."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.identity = job_identity(cfg)
        self.benchmark = self.identity["benchmark"]
        self.output_dir = Path(cfg.paths.output_dir)
        self.key = job_key(cfg)
        self.work_dir = Path(cfg.checkpoint_dir) / self.key
        self.seed = int(cfg.seed)
        self.data = DataCache(cfg.data, Path(cfg.paths.data_dir), Path(cfg.paths.synthetic_dir))
        self.trainers = TrainerFactory(cfg.trainer, self.seed)
        self.progress = ProgressStore(self.work_dir / "progress.json")
        self.reporter = Reporter()
        self.metrics: dict[str, float] = {}
        self.confusion: dict[str, list[list[int]]] = {}
        self.timings: dict[str, float] = {}
        self.classifier: ERCClassifier | None = None
        self._pending_weights: str | None = None

    def load_progress(self) -> None:
        """What earlier runs of this job finished (``progress.json``), unless ``resume=false``."""
        if self.cfg.resume:
            self.progress.load()

    def load_data(self) -> None:
        self.data.load()

    def build(self) -> None:
        """The classifier, its initial weights drawn from the stream ``(seed, "init")``."""
        seed_everything_at(self.seed, "init")
        self.classifier = build_classifier(self.cfg.classifier, self.benchmark)

    def datamodule(self, classifier: ERCClassifier, dataset: str, schedule: PhaseSchedule) -> ERCDataModule:
        """Train and dev data of a phase, with this job's seed and DataLoader workers."""
        train, dev = self.data.fit_splits(dataset)
        return ERCDataModule(classifier, train, dev,
                             batch_size=schedule.batch_size, eval_batch_size=schedule.eval_batch_size,
                             seed=self.seed, bucket_batches=schedule.bucket_batches,
                             num_workers=int(self.cfg.data.get("num_workers", 0)))

    # ---- reusing what earlier runs finished ----------------------------------------------------
    def ensure_weights(self) -> None:
        """Load the best weights of the last finished phase when a rerun skipped it (loaded lazily, only
        when a step still needs them)."""
        if self._pending_weights:
            path = Path(self._pending_weights)
            if not path.is_file() or unreadable_reason(path):
                raise UserError(f"{path}: the selected weights of a finished phase are missing or unreadable "
                                f"({unreadable_reason(path) or 'no such file'}); rerun with resume=false to train this "
                                f"job again, or delete {self.work_dir}")
            state = torch.load(path, map_location="cpu", weights_only=False)["state_dict"]
            self.classifier.load_state_dict(state)
            self._pending_weights = None

    def check_finished_weights(self) -> None:
        """Before any data is read or anything trained: the selected weights of each finished phase that a step still
        to run starts from must be readable. An unreadable (or missing) file is set aside and its phase done again by
        this run (deterministic: the same weights), instead of failing when a later step loads it."""
        steps = [step for step in ("pretrain", "pretrain/test", "finetune", "test")
                 if self.cfg.data.pretrain or not step.startswith("pretrain")]
        for index, step in enumerate(steps):
            done = self.progress.done(step)
            if not done or not done.get("best") or not self._needed_after(steps[index + 1:]):
                continue
            path = Path(done["best"])
            reason = unreadable_reason(path) if path.is_file() else "no such file"
            if reason is None:
                continue
            if path.is_file() and rank_zero_only.rank == 0:
                path = move_aside(path)
            log.warning("%s: the selected weights of the finished step %s cannot be read (%s)%s; this run trains %s "
                        "again (the result is the same: training is deterministic)", done["best"], step, reason,
                        f", moved to {path}" if path.suffix == ".corrupt" else "", step)
            self.progress.forget(step, f"{done['best']} was unreadable ({reason})")

    def _needed_after(self, later: list[str]) -> bool:
        """Whether a step of ``later`` still to run starts from the weights before them (no finished fit between)."""
        for step in later:
            done = self.progress.done(step)
            if not done:
                return True
            if done.get("best"):
                return False
        return False

    def reuse(self, step: str) -> bool:
        """Take a step's metrics from a previous run of this job when it finished that step."""
        done = self.progress.done(step)
        if not done:
            return False
        log.info("%s: done by a previous run of this job (%s); reusing it", step, self.work_dir)
        self.progress.record_resume(step, reused="finished step: metrics from progress.json" +
                                    (f", weights from {done['best']}" if done.get("best") else ""))
        self.metrics.update(done["metrics"])
        self.confusion.update(done["confusion"])
        if done.get("best"):
            self._pending_weights = done["best"]
        return True

    # ---- the steps -----------------------------------------------------------------------------
    def fit(self, phase: str, dataset: str) -> None:
        """Train one phase with selection on dev, continuing from ``last.ckpt`` if a run was interrupted."""
        if self.reuse(phase):
            return
        self.ensure_weights()                      # fine-tuning starts from the best pretrained weights
        started = time.time()
        schedule = phase_schedule(self.cfg.schedule, phase)
        folder = self.work_dir / phase
        self.classifier.configure_phase(phase, schedule)
        datamodule = self.datamodule(self.classifier, dataset, schedule)
        fit = self.trainers.selected_fit(phase, folder, schedule, stream=phase, logger=self.reporter.lightning_logger)
        seed_everything_at(self.seed, phase, "start")   # before_fit's draws (a teacher's weights)
        self.classifier.before_fit(PhaseContext(phase, folder, bool(self.cfg.resume), schedule, datamodule,
                                                fit.trainer.strategy.root_device, self.trainers, self.progress))
        last = folder / "last.ckpt"
        resume_from = self.progress.resume_point(phase, last, bool(self.cfg.resume))
        fit.trainer.fit(self.classifier, datamodule=datamodule, ckpt_path=resume_from)
        best_path, best = fit.checkpoint.best_model_path, fit.best.best
        if not best_path:
            raise RuntimeError(f"{phase}: no checkpoint was selected on {phase}/dev/{schedule.select} "
                               f"(did validation run?)")
        self._pending_weights = best_path
        self.ensure_weights()
        metrics = {f"{phase}/dev/{k}": v for k, v in best.items() if k != "confusion"}
        self.metrics.update(metrics)
        self.confusion[f"{phase}/dev"] = best.get("confusion", [])
        self.progress.finish(phase, {"best": best_path, "metrics": metrics,
                                     "confusion": {f"{phase}/dev": self.confusion[f"{phase}/dev"]},
                                     "resumed_from": resume_from, "epochs": fit.trainer.current_epoch})
        if rank_zero_only.rank == 0:
            last.unlink(missing_ok=True)           # only needed to resume this phase
        self.timings[f"{phase}_s"] = round(time.time() - started, 3)

    def test(self, prefix: str) -> None:
        """Evaluate the current weights on every test set, as ``<prefix>/<benchmark>_<source>/<metric>``."""
        if self.reuse(prefix):
            return
        self.ensure_weights()
        started = time.time()
        scorer = Scorer(prefix)
        trainer = self.trainers.trainer(self.output_dir, None, [scorer], self.reporter.lightning_logger)
        eval_batch_size = phase_schedule(self.cfg.schedule, "finetune").eval_batch_size
        metrics, confusion = {}, {}
        for name in self.data.test_sets():
            scorer.prefix = f"{prefix}/{test_set_name(*parse_dataset(name))}"
            samples = self.data.samples(self.classifier, name, "test")
            trainer.test(self.classifier, dataloaders=loader(self.classifier, samples, eval_batch_size, shuffle=False,
                                                             seed=self.seed), verbose=False)
            result = scorer.latest
            metrics.update(result.scalars())
            confusion[result.prefix] = result.metrics["confusion"]
            self.reporter.confusion(result.prefix, result.y_true, result.y_pred, self.classifier.labels)
        self.metrics.update(metrics)
        self.confusion.update(confusion)
        self.progress.finish(prefix, {"metrics": metrics, "confusion": confusion})
        self.timings[f"{prefix.replace('/', '_')}_s"] = round(time.time() - started, 3)


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one experiment (see the module docstring); returns every metric, also written to results.json."""
    started = time.time()
    validate_train_config(cfg)
    check_accelerator_present(cfg.trainer)
    pl.seed_everything(int(cfg.seed), workers=True)
    exp = Experiment(cfg)
    # One process per job folder (rank 0 holds it for a DDP job), from before any data is read until
    # results.json is written.
    with FolderLock(exp.work_dir, what="train.py") if rank_zero_only.rank == 0 else nullcontext():
        exp.load_progress()
        exp.check_finished_weights()
        exp.load_data()
        return run_experiment(exp, started)


def run_experiment(exp: Experiment, started: float) -> dict[str, float]:
    """Build the classifier and run every step of ``exp`` (the job folder is held), then write results.json."""
    cfg = exp.cfg
    try:
        exp.build()
    except InstantiationException as err:
        # erc.models.backbone names the option (backbone, pm_backbone) whose model cannot be loaded
        if not isinstance(err.__cause__, UserError):
            raise
        raise err.__cause__ from None
    config = public_config(cfg)
    steps = [*(("pretrain", "pretrain/test") if cfg.data.pretrain else ()), "finetune", "test"]
    exp.reporter = Reporter.start(cfg, exp.identity, config, exp.work_dir, exp.key,
                                  finished=all(exp.progress.done(step) for step in steps))
    try:
        if cfg.data.pretrain:
            exp.fit("pretrain", cfg.data.pretrain)
            exp.test("pretrain/test")
        exp.fit("finetune", cfg.data.finetune)
        exp.test("test")
        exp.timings["total_s"] = round(time.time() - started, 3)
        results = {"identity": exp.identity, "metrics": exp.metrics, "confusion": exp.confusion,
                   "labels": exp.classifier.labels, "config": config, "git": git_revision(),
                   "checkpoints": str(exp.work_dir), "timings": exp.timings,
                   "resumes": exp.progress.resumes, "skipped_test_sets": exp.data.skipped_test_sets}
        if rank_zero_only.rank == 0:
            write_json_atomic(exp.output_dir / "results.json", results)
            log.info("results: %s", exp.output_dir / "results.json")
        exp.reporter.summary(exp.metrics)
    finally:
        exp.reporter.finish()
    return exp.metrics


__all__ = ["train"]
