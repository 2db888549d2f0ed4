"""The runner's small parts called directly, with inputs where the plausible wrong choices differ: length-bucketed
batches and their DDP shards, the data module's two batch sizes, the data cache's splits and test sets, the scoring
callbacks' names and model selection, the progress bar's labels, the trainer factory's settings, W&B run folders and
the git revision recorded in results.json. The whole runner: tests/test_training.py."""

from __future__ import annotations

import logging
import shutil
import subprocess
from types import SimpleNamespace

import numpy as np
import pytest
from omegaconf import OmegaConf
from pytorch_lightning.callbacks import EarlyStopping, ModelCheckpoint
from pytorch_lightning.loggers import CSVLogger
from sklearn.metrics import f1_score

from erc.data import DataError
from erc.models.base import PhaseSchedule
from erc.training import progress_bar, reporting, tracking
from erc.training.data import BucketBatchSampler, ERCDataModule
from erc.training.datasets import DataCache
from erc.training.metrics import classification_metrics
from erc.training.reporting import Reporter
from erc.training.resume import EpochSeeds
from erc.training.scoring import BestDevMetrics, Evaluation, Scorer
from erc.training.trainers import TrainerFactory

# Distinct lengths (no ties), so "sorted by length" has one answer; 37 samples: no batch size or world size used
# below divides it.
LENGTHS = [int(v) for v in np.random.default_rng(5).permutation(np.arange(3, 40 * 7, 7))[:37]]


# ---- length-bucketed batches ----------------------------------------------------------------------------
@pytest.mark.parametrize("world", [1, 2, 3])
def test_evaluation_batches_go_in_length_order_and_each_rank_gets_every_worlds_nth_sample(world) -> None:
    by_length = sorted(range(len(LENGTHS)), key=LENGTHS.__getitem__)
    for rank in range(world):
        sampler = BucketBatchSampler(LENGTHS, batch_size=4, shuffle=False, rank=rank, world_size=world)
        batches = list(sampler)
        share = by_length[rank::world]
        assert batches == [share[i:i + 4] for i in range(0, len(share), 4)]
        assert len(sampler) == len(batches)


@pytest.mark.parametrize("batch_size, bucket_batches, world", [(4, 2, 1), (4, 2, 4), (3, 1, 2), (5, 50, 3)])
def test_training_shards_take_equal_steps_and_together_cover_every_sample(batch_size, bucket_batches, world) -> None:
    """Every rank takes as many batches as ``len`` says (all alike: a gradient all-reduce per step), and the shards
    together hold every sample, the short ones wrapping around to the first batches."""
    shards = [BucketBatchSampler(LENGTHS, batch_size, True, seed=3, bucket_batches=bucket_batches, rank=r,
                                 world_size=world) for r in range(world)]
    drawn = [list(s) for s in shards]
    single = list(BucketBatchSampler(LENGTHS, batch_size, True, seed=3, bucket_batches=bucket_batches))
    per_rank = -(-len(single) // world)
    assert [len(d) for d in drawn] == [len(s) for s in shards] == [per_rank] * world
    interleaved = [drawn[i % world][i // world] for i in range(per_rank * world)]
    assert interleaved == (single * 2)[:per_rank * world]
    assert sorted(i for b in single for i in b) == list(range(len(LENGTHS)))


def test_training_batches_are_cut_from_length_sorted_pools_and_served_in_random_order() -> None:
    """One pool holds ``bucket_batches`` batches: its samples are cut in length order; the batches of an epoch are then
    shuffled (not served shortest first), and each epoch draws new pools (new batch compositions)."""
    sampler = BucketBatchSampler(LENGTHS, batch_size=2, shuffle=True, seed=1, bucket_batches=3)
    epoch0 = list(sampler)
    pools = [sorted(b for b in epoch0 if set(b) <= set(p)) for p in _pools(sampler)]
    for pool, batches in zip(_pools(sampler), pools, strict=True):
        in_order = sorted(pool, key=LENGTHS.__getitem__)
        assert sorted(batches) == sorted(in_order[i:i + 2] for i in range(0, len(in_order), 2))
    one_pool = BucketBatchSampler(LENGTHS, batch_size=2, shuffle=True, seed=1, bucket_batches=50)
    means = [np.mean([LENGTHS[i] for i in b]) for b in one_pool]
    assert len(means) == 19 and means != sorted(means) and means != sorted(means, reverse=True)
    sampler.sampler.set_epoch(1)
    assert {frozenset(b) for b in sampler} != {frozenset(b) for b in epoch0}


def _pools(sampler: BucketBatchSampler) -> list[list[int]]:
    order = list(sampler.sampler)
    size = sampler.batch_size * sampler.bucket_batches
    return [order[i:i + size] for i in range(0, len(order), size)]


class Classifier:
    """The classifier side of the data module: its samples are the dialogues' own lengths."""

    def encode(self, dialogues: list[int]) -> list[int]:
        return list(dialogues)

    def sample_length(self, sample: int) -> int:
        return sample

    def collate(self, samples: list[int]) -> list[int]:
        return samples


def test_the_data_module_batches_train_data_by_batch_size_and_dev_data_by_eval_batch_size() -> None:
    train, dev = list(range(1, 8)), list(range(100, 111))
    module = ERCDataModule(Classifier(), train, dev, batch_size=2, eval_batch_size=5, seed=7, bucket_batches=1)
    for dm in (module, module.for_classifier(Classifier())):
        train_batches, dev_batches = list(dm.train_dataloader()), list(dm.val_dataloader())
        assert sorted(len(b) for b in train_batches) == [1, 2, 2, 2]
        assert sorted(i for b in train_batches for i in b) == train
        assert dev_batches == [dev[0:5], dev[5:10], dev[10:]]
        assert (dm.seed, dm.bucket_batches, dm.num_workers) == (7, 1, 0)


# ---- the data cache ---------------------------------------------------------------------------------------
def _data_cfg(**keys):
    return OmegaConf.create({"pretrain": None, "finetune": "meld_bal", "test": ["meld_bal"], "limit_dialogues": None,
                             **keys})


def test_the_data_cache_reads_each_split_once_cut_to_the_dialogue_limit(data_dir) -> None:
    synthetic = data_dir / "synthetic"
    cache = DataCache(_data_cfg(limit_dialogues=3), data_dir, synthetic)
    train, dev = cache.fit_splits("meld_bal")
    assert [d.id for d in train] == ["meld_bal_train_000", "meld_bal_train_001", "meld_bal_train_002"]
    assert all(d.id.startswith("meld_bal_dev_") for d in dev) and len(dev) == 3
    assert cache.dialogues("meld_bal", "train") is train
    encoded = []
    classifier = SimpleNamespace(encode=lambda ds: encoded.append(ds) or [d.id for d in ds])
    assert cache.samples(classifier, "meld_bal", "dev") == [d.id for d in dev]
    assert cache.samples(classifier, "meld_bal", "train") == [d.id for d in train]
    assert cache.samples(classifier, "meld_bal", "dev") == [d.id for d in dev] and len(encoded) == 2
    whole = DataCache(_data_cfg(), data_dir, synthetic).dialogues("meld_bal", "train")
    assert len(whole) == len((synthetic / "meld_bal" / "train.jsonl").read_text().splitlines())


@pytest.mark.parametrize("split", ["train", "dev"])
def test_an_empty_train_or_dev_split_is_an_error_naming_it(data_dir, split) -> None:
    (data_dir / "synthetic" / "meld_bal" / f"{split}.jsonl").write_text("")
    cache = DataCache(_data_cfg(), data_dir, data_dir / "synthetic")
    with pytest.raises(DataError, match=f"meld_bal: the {split} split has no dialogues"):
        cache.fit_splits("meld_bal")


@pytest.mark.parametrize("split", ["train", "dev"])
def test_loading_reads_both_fit_splits_of_the_pretrain_set(data_dir, split) -> None:
    """``load`` is the check before any model is built: a missing split of the pretrain set fails there."""
    synthetic = data_dir / "synthetic"
    shutil.copytree(synthetic / "meld_bal", synthetic / "meld_nat")
    (synthetic / "meld_bal" / f"{split}.jsonl").unlink()
    cache = DataCache(_data_cfg(pretrain="meld_bal", finetune="meld_nat", test=["meld_nat"]), data_dir, synthetic)
    with pytest.raises(DataError, match=f"meld_bal.*{split}"):
        cache.load()


def test_only_the_benchmark_and_pretrain_test_sets_are_required_the_others_are_skipped_with_a_reason(
        data_dir, caplog) -> None:
    synthetic = data_dir / "synthetic"
    for name in ("meld_nat", "meld_bal_k5"):
        shutil.copytree(synthetic / "meld_bal", synthetic / name)
    (synthetic / "meld_bal_k5" / "test.jsonl").write_text("")
    cfg = _data_cfg(pretrain="meld_nat", test=["meld_bal", "meld_nat", "meld_bal_k5", "meld_bal_k3"])
    cache = DataCache(cfg, data_dir, synthetic)
    with caplog.at_level(logging.INFO, logger="erc.training.datasets"):
        assert cache.test_sets() == ["meld_bal", "meld_nat"]
    assert cache.skipped_test_sets == {"meld_bal_k5": "its test split has no dialogues",
                                       "meld_bal_k3": f"not generated yet ({synthetic / 'meld_bal_k3'})"}
    assert {r.levelno for r in caplog.records if "meld_bal_k5" in r.message} == {logging.WARNING}
    assert {r.levelno for r in caplog.records if "meld_bal_k3" in r.message} == {logging.INFO}
    assert cache.test_sets() is cache.test_sets()
    (synthetic / "meld_nat" / "test.jsonl").write_text("")       # the pretrain set's test split is required
    with pytest.raises(DataError, match="meld_nat: the test split has no dialogues"):
        DataCache(_data_cfg(pretrain="meld_nat", test=["meld_nat"]), data_dir, synthetic).test_sets()
    no_benchmark = data_dir.parent / "no_benchmark"                     # so is the benchmark's own
    with pytest.raises(DataError, match="meld"):
        DataCache(_data_cfg(test=["meld"]), no_benchmark, synthetic).test_sets()


# ---- metrics and scoring ----------------------------------------------------------------------------------
def test_no_predictions_is_an_error_not_a_score() -> None:
    with pytest.raises(ValueError, match="no predictions"):
        classification_metrics([], [], ["neutral", "joy"])


def test_an_evaluation_names_every_scalar_under_its_prefix_and_leaves_the_confusion_out() -> None:
    metrics = classification_metrics([0, 1, 1], [0, 0, 1], ["neutral", "joy"])
    scalars = Evaluation("test/meld_org", metrics, [0, 1, 1], [0, 0, 1]).scalars()
    assert scalars == {f"test/meld_org/{k}": v for k, v in metrics.items() if k != "confusion"}
    assert {"test/meld_org/wf1", "test/meld_org/f1/joy"} <= set(scalars) and "test/meld_org/confusion" not in scalars


class Module:
    """What a scorer reads from a classifier: the gathered ids, the label names, and ``log_dict``."""

    def __init__(self, y_true: list[int], y_pred: list[int]) -> None:
        self.labels = ["neutral", "joy", "anger"]
        self.predictions = SimpleNamespace(y_true=y_true, y_pred=y_pred)
        self.logged: dict[str, float] = {}
        self.taken = 0

    def take_predictions(self):
        self.taken += 1
        return self.predictions

    def log_dict(self, values, batch_size, sync_dist) -> None:
        self.logged.update(values)
        self.batch_size = batch_size


def test_a_scorer_scores_gold_against_predicted_ids_and_skips_the_sanity_check() -> None:
    y_true, y_pred = [0, 0, 1, 2, 2, 2], [0, 1, 1, 2, 0, 0]
    scorer, module = Scorer("finetune/dev"), Module(y_true, y_pred)
    scorer.on_validation_epoch_end(SimpleNamespace(sanity_checking=True, world_size=1), module)
    assert scorer.latest is None and module.logged == {} and module.taken == 1
    scorer.on_validation_epoch_end(SimpleNamespace(sanity_checking=False, world_size=1), module)
    expected = f1_score(y_true, y_pred, labels=[0, 1, 2], average="weighted")
    assert scorer.latest.metrics["wf1"] == pytest.approx(expected)
    assert scorer.latest.metrics["confusion"] == [[1, 1, 0], [0, 1, 0], [2, 0, 1]]          # rows: gold
    assert (scorer.latest.y_true, scorer.latest.y_pred) == (y_true, y_pred)
    assert module.logged["finetune/dev/wf1"] == pytest.approx(expected) and module.batch_size == 6


def test_model_selection_keeps_the_dev_metrics_of_the_first_best_epoch_and_they_survive_a_resume() -> None:
    """Like ModelCheckpoint (mode max, strictly greater), a later epoch with an equal score does not replace the
    selected one; the monitored score is the metric named last in ``<phase>/dev/<metric>``."""
    scorer = Scorer("finetune/dev")
    best = BestDevMetrics(scorer, "finetune/dev/mf1")
    for epoch, (wf1, mf1) in enumerate([(0.9, 0.5), (0.1, 0.75), (0.95, 0.75), (0.2, 0.25)]):
        scorer.latest = Evaluation("finetune/dev", {"wf1": wf1, "mf1": mf1}, [], [])
        best.on_validation_end(SimpleNamespace(sanity_checking=False, current_epoch=epoch), None)
    assert best.best == {"epoch": 1, "wf1": 0.1, "mf1": 0.75} and best.best_score == 0.75
    scorer.latest = Evaluation("finetune/dev", {"wf1": 1.0, "mf1": 1.0}, [], [])
    best.on_validation_end(SimpleNamespace(sanity_checking=True, current_epoch=9), None)
    assert best.best["epoch"] == 1
    resumed = BestDevMetrics(Scorer("finetune/dev"), "finetune/dev/mf1")
    resumed.load_state_dict(best.state_dict())
    assert (resumed.best_score, resumed.best) == (0.75, {"epoch": 1, "wf1": 0.1, "mf1": 0.75})


# ---- progress bar labels ----------------------------------------------------------------------------------
@pytest.mark.parametrize("monitor, label", [("pretrain/dev/wf1", "pretrain"), ("teacher/dev/acc", "teacher"),
                                            (None, "train")])
def test_a_fit_bar_is_named_after_the_phase_it_selects_for(monitor, label) -> None:
    assert progress_bar.phase_label(SimpleNamespace(checkpoint_callback=SimpleNamespace(monitor=monitor))) == label


def test_a_test_bar_is_named_by_the_module_then_the_scoring_callback_then_test() -> None:
    scoring = SimpleNamespace(prefix="test/meld_bal")
    trainer = SimpleNamespace(callbacks=[SimpleNamespace(prefix=None), SimpleNamespace(), scoring])
    assert progress_bar.test_set_label(trainer, SimpleNamespace(eval_prefix="test/meld_org")) == "test/meld_org"
    assert progress_bar.test_set_label(trainer, SimpleNamespace(eval_prefix=None)) == "test/meld_bal"
    unnamed = SimpleNamespace(callbacks=[SimpleNamespace(prefix=3)])
    assert progress_bar.test_set_label(unnamed, SimpleNamespace()) == "test"


def test_the_training_postfix_is_the_one_based_epoch_the_step_loss_and_the_selection_score() -> None:
    trainer = SimpleNamespace(
        current_epoch=0, max_epochs=4, checkpoint_callback=SimpleNamespace(monitor="finetune/dev/mf1"),
        progress_bar_metrics={"finetune/train/loss_epoch": 9.0, "finetune/train/loss_step": 0.12345},
        callback_metrics={"finetune/dev/wf1": 0.9, "finetune/dev/mf1": 0.5})
    assert progress_bar.train_postfix(trainer) == {"epoch": "1/4", "loss": "0.123", "dev_mf1": "0.500"}
    trainer.callback_metrics, trainer.progress_bar_metrics = {}, {}
    assert progress_bar.train_postfix(trainer) == {"epoch": "1/4"}


# ---- the trainer factory ----------------------------------------------------------------------------------
TRAINER = OmegaConf.create({"accelerator": "cpu", "devices": 1, "enable_progress_bar": False,
                            "enable_model_summary": False, "log_every_n_steps": 7})


def test_a_phase_trainer_takes_the_schedules_epochs_clipping_and_accumulation(tmp_path) -> None:
    schedule = PhaseSchedule(epochs=3, clip_norm=2.5, accumulate=4)
    trainer = TrainerFactory(TRAINER, seed=5).trainer(tmp_path, schedule, [], logger=None)
    assert (trainer.max_epochs, trainer.gradient_clip_val, trainer.accumulate_grad_batches) == (3, 2.5, 4)
    assert (trainer.num_sanity_val_steps, trainer.log_every_n_steps, trainer.logger) == (0, 7, None)
    assert trainer.default_root_dir == str(tmp_path)
    csv = CSVLogger(str(tmp_path))
    tester = TrainerFactory(TRAINER, seed=5).trainer(tmp_path, None, [], logger=csv)
    assert tester.gradient_clip_val is None and tester.accumulate_grad_batches == 1 and tester.logger is csv


@pytest.mark.parametrize("patience", [None, 2])
def test_a_selected_fit_keeps_the_best_and_the_last_weights_and_stops_early_only_when_asked(tmp_path, patience):
    schedule = PhaseSchedule(epochs=2, select="mf1", early_stopping_patience=patience)
    fit = TrainerFactory(TRAINER, seed=5).selected_fit("teacher", tmp_path / "t", schedule, stream="finetune/teacher",
                                                        logger=None)
    checkpoints = [cb for cb in fit.trainer.callbacks if isinstance(cb, ModelCheckpoint)]
    assert [(c.filename, c.monitor, c.save_weights_only, c.dirpath) for c in checkpoints] == [
        ("best", "teacher/dev/mf1", True, str(tmp_path / "t")), ("last", None, False, str(tmp_path / "t"))]
    assert fit.checkpoint is checkpoints[0] and fit.checkpoint.mode == "max"
    assert fit.best.monitor == "teacher/dev/mf1" and fit.best.scorer.prefix == "teacher/dev"
    seeds = [cb for cb in fit.trainer.callbacks if isinstance(cb, EpochSeeds)]
    assert [(s.seed, s.stream) for s in seeds] == [(5, "finetune/teacher")]
    stops = [(cb.monitor, cb.patience, cb.mode) for cb in fit.trainer.callbacks if isinstance(cb, EarlyStopping)]
    assert stops == ([("teacher/dev/mf1", 2, "max")] if patience else [])


# ---- W&B runs and the git revision ------------------------------------------------------------------------
def test_the_offline_runs_of_a_job_are_its_own_folders_in_start_order(tmp_path) -> None:
    folders = ["offline-run-20261207_101010-abc", "offline-run-20261207_090000-abc-2",
               "offline-run-20261207_235959-abc", "offline-run-20261206_120000-abc-11",
               "offline-run-20261207_100000-abc",
               "offline-run-20261207_080000-abc-20261207-080000",        # a fresh start's run: another id
               "offline-run-20261207_070000-abcd", "offline-run-20261207_060000-xabc", "offline-run-2026_0600-abc",
               "run-20261207_050000-abc"]
    for name in folders:
        (tmp_path / "wandb" / name).mkdir(parents=True)
    assert [p.name for p in tracking.offline_runs(tmp_path, "abc")] == [
        "offline-run-20261206_120000-abc-11", "offline-run-20261207_090000-abc-2", "offline-run-20261207_100000-abc",
        "offline-run-20261207_101010-abc", "offline-run-20261207_235959-abc"]
    assert tracking.offline_runs(tmp_path / "none", "abc") == []


def test_a_finished_job_with_its_offline_run_starts_no_new_run_any_other_job_does(tmp_path, monkeypatch) -> None:
    started = []
    monkeypatch.setattr(reporting, "make_wandb_logger", lambda *a, **k: started.append(k["run_id"]) or "logger")
    (tmp_path / "wandb" / "offline-run-20261207_101010-key").mkdir(parents=True)
    cfg = OmegaConf.create({"resume": True, "logger": {"name": "wandb", "mode": "offline", "group": "g"},
                            "data": {"pretrain": None}})
    assert Reporter.start(cfg, {}, {}, tmp_path, "key", finished=True).lightning_logger is None
    assert Reporter.start(cfg, {}, {}, tmp_path, "key", finished=False).lightning_logger == "logger"
    cfg.resume = False
    assert Reporter.start(cfg, {}, {}, tmp_path, "key", finished=True).lightning_logger == "logger"
    assert started[0] == "key" and started[1].startswith("key-") and started[1] != "key"
    cfg.resume, cfg.logger.mode = True, "online"
    assert Reporter.start(cfg, {}, {}, tmp_path, "key", finished=True).lightning_logger == "logger"
    cfg.logger.name = "none"
    assert Reporter.start(cfg, {}, {}, tmp_path, "key").lightning_logger is None


def test_the_run_summary_holds_the_final_test_metrics_only() -> None:
    run = SimpleNamespace(summary={})
    Reporter(SimpleNamespace(experiment=run)).summary(
        {"test/meld_org/wf1": 0.5, "pretrain/test/meld_org/wf1": 0.4, "finetune/dev/wf1": 0.6})
    assert run.summary == {"test/meld_org/wf1": 0.5}


def test_the_git_revision_is_the_commit_dirty_only_when_a_tracked_file_changed(tmp_path, monkeypatch) -> None:
    def git(*args: str) -> str:
        return subprocess.run(["git", "-c", "user.name=t", "-c", "user.email=t@t", *args], cwd=tmp_path, check=True,
                              capture_output=True, text=True).stdout.strip()

    monkeypatch.setattr(tracking, "PROJECT_ROOT", tmp_path)
    assert tracking.git_revision() is None                            # not a checkout
    git("init", "-q")
    (tmp_path / "a.txt").write_text("a")
    git("add", "a.txt")
    git("commit", "-q", "-m", "a")
    head = git("rev-parse", "HEAD")
    (tmp_path / "untracked.txt").write_text("b")
    assert tracking.git_revision() == head
    (tmp_path / "a.txt").write_text("changed")
    assert tracking.git_revision() == f"{head}-dirty"
