"""EmoOne-RoBERTa: grayscale labels and loss on hand-checked examples (label orders from conf/benchmark),
the cached teacher, one label order for teacher and student, and training through the runner."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from erc.data import DataError, label_set
from erc.models.grayscale import emoone_loss, heuristic_gray, teacher_post

from helpers.config import compose_config


def vector(benchmark: str, weights: dict[str, float]) -> list[float]:
    """A gray vector written by label name, laid out in the benchmark's class order."""
    return [weights.get(name, 0.0) for name in label_set(benchmark)]


def meld(label: str) -> int:
    return label_set("meld").index(label)


@pytest.mark.parametrize(("benchmark", "label", "sentiment", "expected"), [
    # MELD anger said with negative sentiment: 1 and 0.5 x3, normalised by 2.5.
    ("meld", "anger", "negative", {"anger": 0.4, "sadness": 0.2, "disgust": 0.2, "fear": 0.2}),
    # A negative surprise sits with the negative group (the utterance's sentiment decides): 1 + 4 x 0.5 = 3.
    ("meld", "surprise", "negative", {"surprise": 1 / 3, "anger": 1 / 6, "sadness": 1 / 6, "disgust": 1 / 6,
                                      "fear": 1 / 6}),
    # A positive surprise: the gold keeps 1, joy gets 0.5.
    ("meld", "surprise", "positive", {"surprise": 2 / 3, "joy": 1 / 3}),
    ("meld", "surprise", "neutral", {"surprise": 2 / 3, "neutral": 1 / 3}),
    # Generated MELD data has no sentiment: surprise's own group (neutral) is used.
    ("meld", "surprise", None, {"surprise": 2 / 3, "neutral": 1 / 3}),
    ("meld", "joy", "positive", {"joy": 1.0}),
    ("emorynlp", "peaceful", None, {"peaceful": 0.5, "joyful": 0.25, "powerful": 0.25}),
    ("emorynlp", "neutral", None, {"neutral": 1.0}),
    ("iemocap", "frustrated", None, {"frustrated": 0.5, "sad": 0.25, "angry": 0.25}),
    ("iemocap", "excited", None, {"excited": 2 / 3, "happy": 1 / 3}),
])
def test_heuristic_gray_hand_checked(benchmark, label, sentiment, expected):
    got = heuristic_gray(benchmark, label_set(benchmark).index(label), sentiment)
    assert got == pytest.approx(vector(benchmark, expected))
    assert math.isclose(sum(got), 1.0)


def test_heuristic_gray_rejects_an_unknown_sentiment():
    with pytest.raises(DataError, match="'angry'"):
        heuristic_gray("meld", meld("anger"), "angry")


def test_teacher_post_lifts_gold_to_half_and_keeps_confident_rows():
    probs = torch.tensor([[0.2, 0.6, 0.2], [0.2, 0.6, 0.2], [0.5, 0.3, 0.2]])
    gold = torch.tensor([0, 1, 0])
    out = teacher_post(probs, gold)
    # Row 0: gold 0.2 < 0.5 -> 0.5, the rest 0.5 * (0.6, 0.2) / 0.8.
    assert out[0].tolist() == pytest.approx([0.5, 0.375, 0.125])
    assert out[1].tolist() == pytest.approx([0.2, 0.6, 0.2])  # teacher already gives gold 0.6
    assert out[2].tolist() == pytest.approx([0.5, 0.3, 0.2])  # exactly 0.5 is kept (reference: >= 0.5)
    assert out.sum(dim=1).tolist() == pytest.approx([1.0, 1.0, 1.0])


def test_emoone_loss_equals_the_formula():
    torch.manual_seed(0)
    logits = torch.randn(4, 7)
    gold = torch.tensor([3, 0, 6, 2])
    gray = torch.softmax(torch.randn(4, 7), dim=1)
    w1, w2 = 0.7, 1.3
    # Written out term by term: w1 * mean_b(-log p_b[gold_b]) + w2 * mean_b(-sum_c g_bc log p_bc).
    p = [[math.exp(x) / sum(math.exp(y) for y in row) for x in row] for row in logits.tolist()]
    ce = sum(-math.log(p[b][gold[b]]) for b in range(4)) / 4
    soft = sum(-sum(gray[b, c].item() * math.log(p[b][c]) for c in range(7)) for b in range(4)) / 4
    assert emoone_loss(logits, gold, gray, w1, w2).item() == pytest.approx(w1 * ce + w2 * soft, rel=1e-5)
    # With the gray label equal to the one-hot gold, the two terms coincide.
    one_hot = torch.nn.functional.one_hot(gold, 7).float()
    assert emoone_loss(logits, gold, one_hot, 1.0, 1.0).item() == pytest.approx(2 * ce, rel=1e-5)


# ---- the teacher (S / SA) ------------------------------------------------------------------------

def dialogues(benchmark: str, lines: list[tuple[str, str, str]], copies: int = 1):
    """Dialogues of ``(speaker, text, label)`` lines, repeated ``copies`` times with distinct ids."""
    from erc.data import Dialogue, Utterance

    return [Dialogue(f"d{i}", [Utterance(s, t, lab) for s, t, lab in lines], benchmark, "train", "bal")
            for i in range(copies)]


def test_cached_teacher_equals_a_fresh_teacher_forward():
    from erc.models.emoone import EmoOne

    torch.manual_seed(0)
    student = EmoOne("meld", backbone="tiny", gray="teacher")
    teacher = student.make_teacher()
    assert teacher.gray == "none" and teacher.labels == student.labels
    lines = [("Ross", "We were on a break!", "anger"), ("Rachel", "Oh my God.", "surprise"),
             ("Ross", "Hi.", "neutral"), ("Joey", "How you doin'? I got pizza for everyone!", "joy")]
    samples = student.encode(dialogues("meld", lines, copies=3))
    teacher.train()  # the pre-pass must switch to eval itself (dropout off)
    batches = [[0, 5, 7, 2, 11], [1, 3], [4, 6, 8, 9, 10]]  # padded batches of mixed lengths
    probs = teacher.probabilities(samples, batches)
    student.attach_teacher(samples, probs)
    teacher.eval()
    with torch.no_grad():
        for sample, cached in zip(samples, probs, strict=True):
            fresh = torch.softmax(teacher(teacher.collate([sample])), dim=-1)[0]
            torch.testing.assert_close(cached, fresh, atol=1e-5, rtol=1e-5)
            assert sample.gray == pytest.approx(fresh.tolist(), abs=1e-5)
    # The cached rows are the student's batch targets.
    torch.testing.assert_close(student.collate(samples[:3])["gray"], probs[:3])


def test_teacher_class_i_is_student_class_i():
    """EmoryNLP, where the reference's teacher (sorted labels) and student (dict order) disagree: a teacher
    trained on 'peaceful' and 'powerful' lines must put its mass on the student's 'peaceful' and
    'powerful' classes (the reference would land it on 'neutral'/'peaceful' = its ids 2 and 3)."""
    from erc.models.emoone import EmoOne

    torch.manual_seed(0)
    labels = label_set("emorynlp")
    lines = [("Monica", "so calm and quiet here, nice and peaceful", "peaceful"),
             ("Joey", "I am the big strong man, I win!", "powerful")]
    teacher = EmoOne("emorynlp", backbone="tiny", gray="teacher").make_teacher()
    samples = teacher.encode(dialogues("emorynlp", lines, copies=4))
    optimizer = torch.optim.AdamW(teacher.parameters(), lr=3e-3)
    batch = teacher.collate(samples)
    for _ in range(30):
        loss = teacher.loss(batch, teacher(batch))
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
    for method in ("teacher", "teacher_post"):
        student = EmoOne("emorynlp", backbone="tiny", gray=method)
        samples = student.encode(dialogues("emorynlp", lines, copies=4))
        student.attach_teacher(samples, teacher.probabilities(samples, [list(range(8))]))
        for sample in samples:
            gold = sample.dialogue.labels[sample.target]
            assert labels[gold] in ("peaceful", "powerful")
            assert max(range(len(labels)), key=lambda c: sample.gray[c]) == gold, method
            assert sample.gray[gold] > 0.5


# ---- through the runner --------------------------------------------------------------------------

def test_teacher_post_trains_through_the_runner_and_caches_exact_teacher_outputs(tmp_path, data_dir):
    """gray=teacher_post on pretrain (meld_bal) -> fine-tune (MELD): each phase trains its own teacher, and
    the cached distributions equal a fresh forward of that phase's saved best teacher on the phase's data."""

    from erc.data import load_benchmark
    from erc.models.emoone import EmoOne
    from erc.training import train

    cfg = compose_config("train", [
        "classifier=emoone", "classifier.gray=teacher_post", "classifier.backbone=tiny", "data=meld_bal",
        "schedule=debug", "logger=none", "data.limit_dialogues=2", "trainer.enable_progress_bar=false",
        f"paths.data_dir={data_dir}", f"paths.log_dir={tmp_path / 'logs'}", f"paths.output_dir={tmp_path / 'out'}"])
    metrics = train(cfg)
    for key in ("pretrain/dev/wf1", "pretrain/test/meld_org/wf1", "finetune/dev/wf1", "test/meld_org/wf1",
                "test/meld_bal/wf1"):
        assert 0.0 <= metrics[key] <= 1.0, key
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    assert results["identity"]["classifier"] == "emoone" and results["identity"]["variant"] == "gray=teacher_post"

    for phase, dataset in (("pretrain", "meld_bal"), ("finetune", "meld")):
        [folder] = list((tmp_path / "logs").glob(f"train/checkpoints/emoone-*/{phase}/teacher"))
        cached = torch.load(folder / "probs.pt", weights_only=True)
        teacher = EmoOne("meld", backbone="tiny", gray="none")
        teacher.load_state_dict(torch.load(folder / "best.ckpt", weights_only=False)["state_dict"])
        teacher.eval()
        samples = teacher.encode(load_benchmark(dataset, "train", data_dir)[:2])
        assert cached["keys"] == [f"{s.dialogue.id}#{s.target}" for s in samples]
        with torch.no_grad():
            fresh = torch.cat([torch.softmax(teacher(teacher.collate([s])), dim=-1) for s in samples])
        torch.testing.assert_close(cached["probs"], fresh, atol=1e-5, rtol=1e-5)


def test_schedule_paper_gives_emoone_the_reference_hyperparameters():
    """The reference's gray/train_*.py (copied from CoMPM): AdamW lr 1e-6, one target per step, clip 10,
    10 epochs, one epoch of warmup; the default gray method is the heuristic (C)."""

    from erc.training.schedule import phase_schedule

    cfg = compose_config("train", ["classifier=emoone", "schedule=paper"])
    assert cfg.classifier.gray == "heuristic" and (cfg.classifier.w1, cfg.classifier.w2) == (1.0, 1.0)
    for phase in ("pretrain", "finetune"):
        s = phase_schedule(cfg.schedule, phase)
        assert (s.lr, s.eps, s.weight_decay, s.no_decay, s.batch_size, s.clip_norm, s.epochs, s.warmup_epochs) == (
            1e-6, 1e-8, 0.01, [], 1, 10, 10, 1)


def test_rerun_reuses_the_cached_teacher_without_training_another(tmp_path, data_dir, caplog):
    """The teacher pre-pass of a phase that was interrupted after it: the rerun reads probs.pt (the same
    gray labels) and trains no teacher; resume=false trains a new one."""
    import dataclasses

    from erc.models.base import FitContext
    from erc.models.emoone import EmoOne
    from erc.training.phases import PhaseContext
    from erc.training.runner import Experiment
    from erc.training.schedule import phase_schedule

    cfg = compose_config("train", [
        "classifier=emoone", "classifier.gray=teacher", "classifier.backbone=tiny", "data=meld", "schedule=debug",
        "logger=none", "data.limit_dialogues=2", "trainer.enable_progress_bar=false", f"paths.data_dir={data_dir}",
        f"paths.log_dir={tmp_path / 'logs'}", f"paths.output_dir={tmp_path / 'out'}"])
    experiment = Experiment(cfg)
    schedule = phase_schedule(cfg.schedule, "finetune")

    class NoTeacherTraining(PhaseContext):
        def fit_auxiliary(self, model, tag):
            raise AssertionError("a teacher was trained although its distributions were cached")

    def pre_pass(resume: bool, forbid_training: bool) -> list[list[float]]:
        student = EmoOne("meld", backbone="tiny", gray="teacher")
        datamodule = experiment.datamodule(student, "meld", schedule)
        ctx = PhaseContext("finetune", experiment.work_dir / "finetune", resume, schedule, datamodule,
                           torch.device("cpu"), experiment.trainers, experiment.progress)
        assert isinstance(ctx, FitContext)
        if forbid_training:
            ctx = NoTeacherTraining(**{f.name: getattr(ctx, f.name) for f in dataclasses.fields(ctx)})
        student.before_fit(ctx)
        return [s.gray for s in datamodule.train_samples]

    first = pre_pass(resume=True, forbid_training=False)
    cache = tmp_path / "logs" / "train" / "checkpoints"
    [probs] = list(cache.glob("*/finetune/teacher/probs.pt"))
    assert torch.load(probs, weights_only=True)["probs"].shape == (len(first), 7)
    assert pre_pass(resume=True, forbid_training=True) == first
    with pytest.raises(AssertionError, match="a teacher was trained"):
        pre_pass(resume=False, forbid_training=True)
    assert all(row is not None and sum(row) == pytest.approx(1.0) for row in first)
    # a damaged cache (cut short) is named, set aside and computed again, not a raw error at every requeue
    probs.write_bytes(probs.read_bytes()[:200])
    with caplog.at_level(logging.WARNING, logger="erc.models.emoone"):
        assert pre_pass(resume=True, forbid_training=False) == first
    assert f"{probs}: cannot read the cached teacher distributions" in caplog.text
    assert probs.with_name("probs.pt.corrupt").stat().st_size == 200
    assert torch.load(probs, weights_only=True)["probs"].shape == (len(first), 7)
