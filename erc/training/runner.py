"""``train(cfg)``: one experiment = pretrain on a generated set (optional) -> fine-tune on the benchmark -> test.

The paper's protocol (Kaplan et al., Section IV): a classifier is trained on a generated train split
(model selection on its dev split), tested there on the benchmark's and the generated test splits
(train-on-synthetic, test-on-real: ``pretrain/test/<benchmark>_<source>/*``), fine-tuned on the benchmark's
train split (selection on its dev split) and tested again (``test/<benchmark>_<source>/*``). ``data=meld``
skips the pretrain phase: the "Org" baseline.

Resuming: a job's checkpoints live in ``<checkpoint_dir>/<job key>/``, the key being a hash of the
resolved config without the keys listed in ``not_in_job_key`` (:func:`erc.identity.job_key`), so rerunning
the same command, or one that changes only such a key (the progress bar, W&B options), finds them: finished steps are skipped (their metrics come from ``progress.json``, the best weights
from ``<phase>/best.ckpt``), an interrupted phase continues from its ``last.ckpt`` (deleted once the
phase is done). ``resume=false`` starts over.

A resumed job is the same job: with the same seed it ends, on a CPU, at bit-identical metrics to an
uninterrupted run (random streams keyed by position, atomic checkpoints: :mod:`erc.training.resume`);
each resume is recorded in ``progress.json`` and ``results.json`` (``resumes``). A job folder is held by
one process at a time (:class:`erc.locks.FolderLock`): a second ``train.py`` on the same job is refused,
naming the holder. The job key hashes the content of the generated sets' split files, so rewriting them
unchanged (``make demo`` again) resumes.
"""

from __future__ import annotations

import json
import logging
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Any

import pytorch_lightning as pl
import torch
from hydra.errors import InstantiationException
from omegaconf import DictConfig, OmegaConf
from pytorch_lightning.callbacks import Callback, EarlyStopping, ModelCheckpoint
from pytorch_lightning.utilities import rank_zero_only

from erc.data import DataError, Dialogue, load_benchmark, parse_dataset, test_set_name
from erc.errors import ConfigError, UserError
from erc.identity import job_identity, job_key
from erc.io import write_json_atomic
from erc.locks import FolderLock
from erc.secrets import public_config
from erc.training.data import ERCDataModule
from erc.training.module import ERCClassifier
from erc.training.phases import FitContext, build_classifier
from erc.training.resume import (AtomicCheckpointIO, EpochSeeds, completed_epochs, seed_everything_at,
                                 set_aside, unreadable_reason)
from erc.training.schedule import PhaseSchedule, phase_schedule
from erc.training.tracking import git_revision, make_wandb_logger
from erc.training.validation import validate_train_config

log = logging.getLogger(__name__)

class BestDevMetrics(Callback):
    """Keeps every dev metric of the epoch with the best monitored score (saved in checkpoints, so it
    survives a resume): results.json reports dev figures of the selected model, not of the last epoch."""

    def __init__(self, monitor: str) -> None:
        self.monitor, self.best_score, self.best = monitor, float("-inf"), {}

    def on_validation_end(self, trainer: pl.Trainer, module: ERCClassifier) -> None:
        # on_validation_end runs after the module's on_validation_epoch_end (which fills last_eval) and
        # before ModelCheckpoint saves, so this state is in the checkpoint of the same epoch.
        if trainer.sanity_checking or not module.last_eval or module.last_eval["prefix"] != module.eval_prefix:
            return
        score = module.last_eval["metrics"].get(self.monitor.rsplit("/", 1)[-1])
        if score is not None and score > self.best_score:
            self.best_score = score
            self.best = {"epoch": trainer.current_epoch, **module.last_eval["metrics"]}

    def state_dict(self) -> dict[str, Any]:
        return {"best_score": self.best_score, "best": self.best}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.best_score, self.best = state["best_score"], state["best"]


class Experiment:
    """The state of one job: its data, classifier, logger, checkpoints folder and collected metrics."""

    def __init__(self, cfg: DictConfig) -> None:
        self.cfg = cfg
        self.identity = job_identity(cfg)
        self.benchmark = self.identity["benchmark"]
        self.data_dir = Path(cfg.paths.data_dir)
        self.output_dir = Path(cfg.paths.output_dir)
        self.key = job_key(cfg)
        self.work_dir = Path(cfg.checkpoint_dir) / self.key
        self.progress_path = self.work_dir / "progress.json"
        self.progress: dict[str, Any] = {"resumes": []}
        self.metrics: dict[str, float] = {}
        self.confusion: dict[str, list[list[int]]] = {}
        self.skipped_test_sets: dict[str, str] = {}
        self.timings: dict[str, float] = {}
        self._dialogues: dict[tuple[str, str], list[Dialogue]] = {}
        self._samples: dict[tuple[str, str], list[Any]] = {}
        self._test_sets: list[str] | None = None
        self.classifier: ERCClassifier | None = None
        self.logger: Any = None
        self._pending_weights: str | None = None

    def load_progress(self) -> None:
        """Read what earlier runs of this job finished (``progress.json``), unless ``resume=false``; done once
        the job folder is held, since a run that held it before may just have finished."""
        if self.cfg.resume and self.progress_path.is_file():
            self.progress = {"resumes": [], **json.loads(self.progress_path.read_text())}

    # ---- data ---------------------------------------------------------------------------------
    def load_data(self) -> None:
        """Every split this job reads, so missing or empty data fails before any model is built."""
        if self.cfg.data.pretrain:
            for split in ("train", "dev"):
                self.dialogues(self.cfg.data.pretrain, split)
        for split in ("train", "dev"):
            self.dialogues(self.cfg.data.finetune, split)
        self.test_sets()

    def dialogues(self, name: str, split: str) -> list[Dialogue]:
        """One split of a dataset, cut to ``data.limit_dialogues`` when that is set."""
        if (name, split) not in self._dialogues:
            dialogues = load_benchmark(name, split, self.data_dir)
            limit = self.cfg.data.get("limit_dialogues")
            self._dialogues[(name, split)] = dialogues[:limit] if limit else dialogues
        return self._dialogues[(name, split)]

    def test_sets(self) -> list[str]:
        """The benchmark's test split and every generated test split of it that exists and has dialogues.

        The benchmark's and the pretrain set's test splits are required: missing or empty, they are an
        error before any training. Other generated sets that are not generated yet, or whose test split is
        empty, are skipped with a warning and listed in results.json (``skipped_test_sets``), so no test
        set disappears from the results unsaid."""
        if self._test_sets is not None:
            return self._test_sets
        names = []
        for name in self.cfg.data.test:
            _, source = parse_dataset(name)
            required = source == "org" or name == self.cfg.data.pretrain
            if not required and not (self.data_dir / "synthetic" / name / "test.jsonl").is_file():
                self._skip_test_set(name, f"not generated yet ({self.data_dir / 'synthetic' / name})", logging.INFO)
                continue
            if self.dialogues(name, "test"):
                names.append(name)
            elif required:
                fix = "check the benchmark's files" if source == "org" else \
                    "a generated set needs a non-zero split.test, e.g. `python generate.py ... split.test=0.2`"
                raise DataError(f"{name}: the test split has no dialogues (data.limit_dialogues="
                                f"{self.cfg.data.get('limit_dialogues')}); {fix}")
            else:
                self._skip_test_set(name, "its test split has no dialogues", logging.WARNING)
        self._test_sets = names
        return names

    def _skip_test_set(self, name: str, reason: str, level: int) -> None:
        log.log(level, "test set %s skipped: %s", name, reason)
        self.skipped_test_sets[name] = reason

    def build(self) -> None:
        """The classifier, its initial weights drawn from the stream ``(seed, "init")``."""
        seed_everything_at(int(self.cfg.seed), "init")
        self.classifier = build_classifier(self.cfg.classifier, self.benchmark)

    def samples(self, name: str, split: str) -> list[Any]:
        if (name, split) not in self._samples:
            self._samples[(name, split)] = self.classifier.encode(self.dialogues(name, split))
        return self._samples[(name, split)]

    def datamodule(self, classifier: ERCClassifier, dataset: str, schedule: PhaseSchedule) -> ERCDataModule:
        """Train and dev data of a phase; an empty split is an error before any training (a phase cannot select
        a model without dev data), not a crash after it."""
        train, dev = self.dialogues(dataset, "train"), self.dialogues(dataset, "dev")
        for split, dialogues in (("train", train), ("dev", dev)):
            if not dialogues:
                raise DataError(f"{dataset}: the {split} split has no dialogues (data.limit_dialogues="
                                f"{self.cfg.data.get('limit_dialogues')}); a small generated set needs more dialogues "
                                f"or wider split ratios, e.g. `python generate.py ... split.dev=0.2 split.test=0.2`")
        return ERCDataModule(classifier, train, dev,
                             batch_size=schedule.batch_size, eval_batch_size=schedule.eval_batch_size,
                             seed=int(self.cfg.seed), bucket_batches=schedule.bucket_batches,
                             num_workers=int(self.cfg.data.get("num_workers", 0)))

    # ---- trainers -----------------------------------------------------------------------------
    def trainer(self, folder: Path, schedule: PhaseSchedule | None, callbacks: list[Callback], logger: Any
                ) -> pl.Trainer:
        """A Trainer from ``conf/trainer`` plus the phase's epochs, clipping and accumulation."""
        kwargs = OmegaConf.to_container(self.cfg.trainer, resolve=True)
        kwargs.update(default_root_dir=str(folder), callbacks=callbacks, logger=logger if logger else False,
                      num_sanity_val_steps=0, use_distributed_sampler=False, plugins=[AtomicCheckpointIO()])
        if schedule is not None:
            kwargs.update(max_epochs=schedule.epochs, gradient_clip_val=schedule.clip_norm,
                          accumulate_grad_batches=schedule.accumulate)
        return pl.Trainer(**kwargs)

    def selection_callbacks(self, monitor: str, folder: Path, schedule: PhaseSchedule, stream: str
                            ) -> list[Callback]:
        """Best weights by the dev score (``best.ckpt``, weights only: all a later step needs), the full
        state after every epoch (``last.ckpt``, to resume), the dev metrics at the best epoch, the random
        streams reseeded per epoch from ``(seed, stream, epoch)``, early stopping."""
        callbacks: list[Callback] = [
            ModelCheckpoint(dirpath=str(folder), filename="best", monitor=monitor, mode="max", save_top_k=1,
                            save_weights_only=True, auto_insert_metric_name=False, enable_version_counter=False),
            ModelCheckpoint(dirpath=str(folder), filename="last", monitor=None, save_top_k=1,
                            enable_version_counter=False),
            BestDevMetrics(monitor), EpochSeeds(int(self.cfg.seed), stream)]
        if schedule.early_stopping_patience:
            callbacks.append(EarlyStopping(monitor=monitor, mode="max", patience=schedule.early_stopping_patience))
        return callbacks

    def fit_context(self, phase: str, schedule: PhaseSchedule, datamodule: ERCDataModule, dataset: str
                    ) -> FitContext:
        def make_trainer(tag: str, sched: PhaseSchedule) -> pl.Trainer:
            # The classifier resumes from folder/last.ckpt when it is there: check it first (see resume_point).
            folder = self.work_dir / phase / tag
            self.resume_point(f"{phase}/{tag}", folder / "last.ckpt")
            callbacks = self.selection_callbacks(f"{tag}/dev/{sched.select}", folder, sched, f"{phase}/{tag}")
            return self.trainer(folder, sched, callbacks, logger=None)

        def make_datamodule(classifier: ERCClassifier, sched: PhaseSchedule) -> ERCDataModule:
            return self.datamodule(classifier, dataset, sched)

        return FitContext(phase=phase, schedule=schedule, datamodule=datamodule, work_dir=self.work_dir / phase,
                          seed=int(self.cfg.seed), make_trainer=make_trainer, make_datamodule=make_datamodule,
                          extras={"dataset": dataset, "resume": bool(self.cfg.resume)})

    # ---- phases -------------------------------------------------------------------------------
    def save_progress(self) -> None:
        if rank_zero_only.rank == 0:
            write_json_atomic(self.progress_path, self.progress)

    def record_resume(self, step: str, **details: Any) -> None:
        """Note that this run continued ``step`` from an earlier one (saved at once: a run killed again
        keeps the record)."""
        self.progress["resumes"].append({"step": step, **details, "at": time.strftime("%Y-%m-%dT%H:%M:%S%z")})
        self.save_progress()

    def resume_point(self, step: str, last: Path) -> str | None:
        """``last`` when this run should continue ``step`` from it (``resume=true`` and a readable file), else
        None; an unreadable one is set aside and the step restarts. Either is recorded in ``resumes``."""
        if not self.cfg.resume or not last.is_file():
            return None
        reason = unreadable_reason(last)
        if reason:
            if rank_zero_only.rank == 0:         # one process moves files; every rank restarts the step
                aside = set_aside(last, reason)
                self.record_resume(step, restarted=f"{last} was unreadable ({reason}); moved to {aside}")
            return None
        epochs = completed_epochs(last)
        log.info("%s: resuming from %s (%d epoch(s) done)", step, last, epochs)
        self.record_resume(step, checkpoint=str(last), epochs_done=epochs)
        return str(last)

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

    def reuse(self, step: str) -> bool:
        """Take a step's metrics from a previous run of this job when it finished that step."""
        done = self.progress.get(step)
        if not done:
            return False
        log.info("%s: done by a previous run of this job (%s); reusing it", step, self.work_dir)
        self.record_resume(step, reused="finished step: metrics from progress.json" +
                           (f", weights from {done['best']}" if done.get("best") else ""))
        self.metrics.update(done["metrics"])
        self.confusion.update(done["confusion"])
        if done.get("best"):
            self._pending_weights = done["best"]
        return True

    def fit(self, phase: str, dataset: str) -> None:
        """Train one phase with selection on dev, continuing from ``last.ckpt`` if a run was interrupted."""
        if self.reuse(phase):
            return
        self.ensure_weights()                      # fine-tuning starts from the best pretrained weights
        started = time.time()
        seed_everything_at(int(self.cfg.seed), phase, "start")   # before_fit's draws (a teacher's weights)
        schedule = phase_schedule(self.cfg.schedule, phase)
        folder = self.work_dir / phase
        monitor = f"{phase}/dev/{schedule.select}"
        self.classifier.phase, self.classifier.eval_prefix, self.classifier.schedule = phase, f"{phase}/dev", schedule
        datamodule = self.datamodule(self.classifier, dataset, schedule)
        self.classifier.before_fit(self.fit_context(phase, schedule, datamodule, dataset))
        callbacks = self.selection_callbacks(monitor, folder, schedule, phase)
        trainer = self.trainer(folder, schedule, callbacks, self.logger)
        last = folder / "last.ckpt"
        resume_from = self.resume_point(phase, last)
        trainer.fit(self.classifier, datamodule=datamodule, ckpt_path=resume_from)
        best_path, best = callbacks[0].best_model_path, callbacks[2]
        if not best_path:
            raise RuntimeError(f"{phase}: no checkpoint was selected on {monitor} (did validation run?)")
        self._pending_weights = best_path
        self.ensure_weights()
        metrics = {f"{phase}/dev/{k}": v for k, v in best.best.items() if k != "confusion"}
        self.metrics.update(metrics)
        self.confusion[f"{phase}/dev"] = best.best.get("confusion", [])
        self.progress[phase] = {"best": best_path, "metrics": metrics,
                                "confusion": {f"{phase}/dev": self.confusion[f"{phase}/dev"]},
                                "resumed_from": resume_from, "epochs": trainer.current_epoch}
        self.save_progress()
        if rank_zero_only.rank == 0:
            last.unlink(missing_ok=True)           # only needed to resume this phase
        self.timings[f"{phase}_s"] = round(time.time() - started, 3)

    def test(self, prefix: str) -> None:
        """Evaluate the current weights on every test set, as ``<prefix>/<benchmark>_<source>/<metric>``."""
        if self.reuse(prefix):
            return
        self.ensure_weights()
        started = time.time()
        trainer = self.trainer(self.output_dir, None, [], self.logger)
        eval_batch_size = phase_schedule(self.cfg.schedule, "finetune").eval_batch_size
        metrics, confusion = {}, {}
        for name in self.test_sets():
            self.classifier.eval_prefix = f"{prefix}/{test_set_name(*parse_dataset(name))}"
            datamodule = ERCDataModule(self.classifier, [], [], 1, eval_batch_size, int(self.cfg.seed))
            trainer.test(self.classifier, dataloaders=datamodule.loader(self.samples(name, "test"), shuffle=False),
                         verbose=False)
            result = self.classifier.last_eval
            metrics.update({f"{result['prefix']}/{k}": v for k, v in result["metrics"].items() if k != "confusion"})
            confusion[result["prefix"]] = result["metrics"]["confusion"]
            self._log_confusion(result)
        self.metrics.update(metrics)
        self.confusion.update(confusion)
        self.progress[prefix] = {"metrics": metrics, "confusion": confusion}
        self.save_progress()
        self.timings[f"{prefix.replace('/', '_')}_s"] = round(time.time() - started, 3)

    @rank_zero_only
    def _log_confusion(self, result: dict[str, Any]) -> None:
        if self.logger is None:
            return
        import wandb

        self.logger.experiment.log({f"{result['prefix']}/confusion": wandb.plot.confusion_matrix(
            y_true=result["y_true"], preds=result["y_pred"], class_names=self.classifier.labels,
            title=f"{result['prefix']} confusion")})


def _sweep_group(cfg: DictConfig) -> str | None:
    """W&B group: ``logger.group`` if set, else the multirun folder's name (one group per sweep)."""
    if cfg.logger.get("group"):
        return str(cfg.logger.group)
    try:
        from hydra.core.hydra_config import HydraConfig
        from hydra.types import RunMode

        hydra_cfg = HydraConfig.get()
        if hydra_cfg.mode == RunMode.MULTIRUN:
            return f"{cfg.task_name}-{Path(hydra_cfg.sweep.dir).name}"
    except ValueError:  # HydraConfig not set: train() called directly, not through train.py
        pass
    return None


def train(cfg: DictConfig) -> dict[str, float]:
    """Run one experiment (see the module docstring); returns every metric, also written to results.json."""
    started = time.time()
    validate_train_config(cfg)
    pl.seed_everything(int(cfg.seed), workers=True)
    exp = Experiment(cfg)
    # One process per job folder (rank 0 holds it for a DDP job), from before any data is read until
    # results.json is written.
    with FolderLock(exp.work_dir, what="train.py") if rank_zero_only.rank == 0 else nullcontext():
        exp.load_progress()
        exp.load_data()
        return run_experiment(exp, started)


def run_experiment(exp: Experiment, started: float) -> dict[str, float]:
    """Build the classifier and run every step of ``exp`` (the job folder is held), then write results.json."""
    cfg = exp.cfg
    try:
        exp.build()
    except InstantiationException as err:
        if not isinstance(err.__cause__, OSError):
            raise
        # from_pretrained: no such model on the hub, no network, a model folder without weights
        raise ConfigError(f"classifier.backbone={cfg.classifier.get('backbone')!r} could not be loaded: "
                          f"{err.__cause__}") from err
    config = public_config(cfg)
    if cfg.logger.get("name", "none") == "wandb":
        # A resumed job continues its W&B run; a fresh start (resume=false) gets a run of its own.
        run_id = exp.key if cfg.resume else f"{exp.key}-{time.strftime('%Y%m%d-%H%M%S')}"
        exp.logger = make_wandb_logger(cfg.logger, exp.identity, config, exp.output_dir, run_id=run_id,
                                       group=_sweep_group(cfg),
                                       job_type="pretrain+finetune" if cfg.data.pretrain else "finetune")
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
                   "resumes": exp.progress["resumes"], "skipped_test_sets": exp.skipped_test_sets}
        if rank_zero_only.rank == 0:
            write_json_atomic(exp.output_dir / "results.json", results)
            log.info("results: %s", exp.output_dir / "results.json")
        if exp.logger is not None and rank_zero_only.rank == 0:
            exp.logger.experiment.summary.update({k: v for k, v in exp.metrics.items() if k.startswith("test/")})
    finally:
        if exp.logger is not None and rank_zero_only.rank == 0:
            exp.logger.experiment.finish()
    return exp.metrics


__all__ = ["train"]
