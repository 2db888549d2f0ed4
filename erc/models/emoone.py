"""EmoOne-RoBERTa (J. Lee, Interspeech 2022): CoMPM's context model alone, trained with grayscale labels.

The model is CoM (the reference's ``gray/model.py``): RoBERTa over ``"<s1> utt <s2> utt ... target"``,
the last 511 tokens after ``<s>``, the last layer's ``<s>`` vector, a linear head. Samples and their CoM
inputs are CoMPM's, from the base class both extend (:class:`erc.models.context.ContextModelClassifier`: one
sample per target utterance, each utterance tokenized once), so the two classifiers see identical inputs.
The loss is ``w1 * CE(gold) + w2 * soft-CE(gray)``; the gray label methods are in :mod:`erc.models.grayscale`
(``heuristic``, ``teacher``, ``teacher_post``, and ``none``: plain cross-entropy, which is CoM itself and the
teacher of the other two).

Teacher methods (S, SA): before each phase is fitted, a CE-only CoM, fresh from the backbone's weights
(not from the student's previous phase), is trained on that phase's training data with the phase's
schedule and selected on its dev split (the reference's ``self_teacher/``), then frozen and put in eval
mode; its softmax over every training sample is computed once and cached
(``<checkpoints>/<phase>/teacher/probs.pt``, reused when the job is rerun). This is exact: the teacher is
frozen and sees fixed inputs. The reference instead runs the teacher at every step and back-propagates into it
(E4). The runner trains, checkpoints, resumes and runs the teacher (:class:`erc.models.base.FitContext`), so
it gets the phase's hardware, seeds and resume guarantees.

Differences from the released code, on purpose: one label order everywhere (the reference's EmoryNLP
teacher and student disagree on it, bug E1, so teacher probabilities land on the wrong classes); the
soft-CE uses ``log_softmax``; batches of several targets are allowed (``schedule.batch_size=1`` gives the
reference's one-sample steps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

import torch
from pytorch_lightning.utilities import rank_zero_only
from torch import nn

from erc.data import Utterance
from erc.io import move_aside, unreadable_reason, write_atomic
from erc.models.backbone import cls_vectors
from erc.models.base import FitContext
from erc.models.context import ContextModelClassifier, ContextSample, TokenizedDialogue
from erc.models.grayscale import GRAY_METHODS, TEACHER_METHODS, emoone_loss, heuristic_gray, teacher_post

log = logging.getLogger(__name__)


@dataclass
class EmoOneSample(ContextSample):
    """A CoM sample plus its gray label (None until the teacher pre-pass fills it for S/SA)."""

    gray: list[float] | None = None


class EmoOne(ContextModelClassifier):
    """EmoOne-RoBERTa as a LightningModule (see the module docstring)."""

    def __init__(self, benchmark: str, backbone: str = "roberta-large", gray: str = "heuristic",
                 w1: float = 1.0, w2: float = 1.0, max_length: int = 512,
                 backbone_config: dict[str, Any] | None = None, fast_path: str = "auto") -> None:
        if gray not in (*GRAY_METHODS, "none"):
            raise ValueError(f"classifier.gray={gray!r}; valid: {', '.join((*GRAY_METHODS, 'none'))}")
        super().__init__(benchmark, backbone, max_length, backbone_config, fast_path)
        self.save_hyperparameters()
        self.gray, self.w1, self.w2 = gray, w1, w2
        self.head = nn.Linear(self.context_model.config.hidden_size, self.num_labels)

    # ---- samples ------------------------------------------------------------------------------
    def make_sample(self, dialogue: TokenizedDialogue, target: int, length: int, utterance: Utterance
                    ) -> EmoOneSample:
        """The CoM sample with the heuristic gray label attached (MELD's utterance sentiment picks its group)."""
        gray = None
        if self.gray == "heuristic":
            gray = heuristic_gray(self.benchmark, dialogue.labels[target], utterance.sentiment)
        return EmoOneSample(dialogue, target, length, gray)

    def collate(self, samples: list[EmoOneSample]) -> dict[str, Any]:
        batch = self.context_batch(samples)
        if all(s.gray is not None for s in samples):
            batch["gray"] = torch.tensor([s.gray for s in samples], dtype=torch.float32)
        return batch

    # ---- model and loss -------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        context = cls_vectors(self.context_model, batch["input_ids"], batch["attention_mask"], self.fast_path)
        return self.head(context)

    def loss(self, batch: dict[str, Any], logits: torch.Tensor) -> torch.Tensor:
        """``w1 * CE(gold) + w2 * soft-CE(gray)`` (plain CE for ``gray=none``)."""
        if self.gray == "none":
            return self.w1 * nn.functional.cross_entropy(logits.float(), batch["labels"])
        if "gray" not in batch:
            raise RuntimeError(f"classifier.gray={self.gray}: training samples have no gray label; the teacher "
                               f"pre-pass (before_fit) has not run")
        return emoone_loss(logits.float(), batch["labels"], batch["gray"].to(logits.device), self.w1, self.w2)

    # ---- the teacher (S / SA) --------------------------------------------------------------------
    def make_teacher(self) -> EmoOne:
        """A fresh CE-only CoM with this model's backbone and inputs (the same class, so the same label order)."""
        h = self.hparams
        return EmoOne(self.benchmark, backbone=h.backbone, gray="none", max_length=h.max_length,
                      backbone_config=h.backbone_config, fast_path=h.fast_path)

    def attach_teacher(self, samples: list[EmoOneSample], probs: torch.Tensor) -> None:
        """Set each sample's gray label from the teacher's distribution (SA-adjusted for ``teacher_post``)."""
        gray = probs
        if self.gray == "teacher_post":
            gold = torch.tensor([s.dialogue.labels[s.target] for s in samples], dtype=torch.long)
            gray = teacher_post(probs, gold)
        for sample, row in zip(samples, gray.tolist(), strict=True):
            sample.gray = row

    def before_fit(self, ctx: FitContext) -> None:
        """S / SA: have the runner train the CE-only teacher on this phase's data (resuming an interrupted teacher
        run) and compute its distributions over this phase's training samples; cache and attach them."""
        if self.gray not in TEACHER_METHODS:
            return
        samples: list[EmoOneSample] = ctx.train_samples()
        keys = [f"{s.dialogue.id}#{s.target}" for s in samples]
        cache_file = ctx.work_dir / "teacher" / "probs.pt"
        cached_before = ctx.resume and cache_file.is_file()
        if cached_before and (reason := unreadable_reason(cache_file)):
            # a damaged cache would fail every rerun alike: set aside (by one process), computed again
            cached_before = False
            if rank_zero_only.rank == 0:
                log.warning("%s: cannot read the cached teacher distributions: %s; moved to %s, computing them "
                            "again", cache_file, reason, move_aside(cache_file))
        if cached_before:
            cached = torch.load(cache_file, weights_only=True)
            if cached["keys"] == keys:
                log.info("EmoOne %s: teacher distributions read from %s", ctx.phase, cache_file)
                self.attach_teacher(samples, cached["probs"])
                return
            log.warning("%s: cached teacher distributions are for other samples; retraining the teacher", cache_file)
        teacher = ctx.fit_auxiliary(self.make_teacher(), "teacher")
        probs = ctx.predict(teacher, samples)
        write_atomic(cache_file, lambda handle: torch.save({"keys": keys, "probs": probs}, handle), binary=True)
        log.info("EmoOne %s: teacher distributions of %d samples cached in %s", ctx.phase, len(samples), cache_file)
        self.attach_teacher(samples, probs)
