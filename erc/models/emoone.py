"""EmoOne-RoBERTa (J. Lee, Interspeech 2022): CoMPM's context model alone, trained with grayscale labels.

The model is CoM (the reference's ``gray/model.py``): RoBERTa over ``"<s1> utt <s2> utt ... target"``,
the last 511 tokens after ``<s>``, the last layer's ``<s>`` vector, a linear head. Samples and their CoM
inputs are CoMPM's (one per target utterance, each utterance tokenized once; :mod:`erc.models.compm`),
so the two classifiers see identical inputs. The loss is ``w1 * CE(gold) + w2 * soft-CE(gray)``; the
gray label methods are in :mod:`erc.models.grayscale` (``heuristic``, ``teacher``, ``teacher_post``,
and ``none``: plain cross-entropy, which is CoM itself and the teacher of the other two).

Teacher methods (S, SA): before each phase is fitted, a CE-only CoM, fresh from the backbone's weights
(not from the student's previous phase), is trained on that phase's training data with the phase's
schedule and selected on its dev split (the reference's ``self_teacher/``), then frozen and put in eval
mode; its softmax over every training sample is computed once and cached
(``<checkpoints>/<phase>/teacher/probs.pt``, reused when the job is rerun). This is exact: the teacher is frozen and sees fixed inputs. The reference
instead runs the teacher at every step and back-propagates into it (E4).

Differences from the released code, on purpose: one label order everywhere (the reference's EmoryNLP
teacher and student disagree on it, bug E1, so teacher probabilities land on the wrong classes); the
soft-CE uses ``log_softmax``; batches of several targets are allowed (``schedule.batch_size=1`` gives the
reference's one-sample steps).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from erc.data import Dialogue
from erc.io import write_atomic
from erc.models.backbone import build_encoder, build_tokenizer
from erc.models.compm import CoMPM, CoMPMSample
from erc.models.grayscale import GRAY_METHODS, TEACHER_METHODS, emoone_loss, heuristic_gray, teacher_post
from erc.training.data import BucketBatchSampler
from erc.training.module import ERCClassifier

log = logging.getLogger(__name__)


@dataclass
class EmoOneSample(CoMPMSample):
    """A CoMPM sample plus its gray label (None until the teacher pre-pass fills it for S/SA)."""

    gray: list[float] | None = None


class EmoOne(ERCClassifier):
    """EmoOne-RoBERTa as a LightningModule (see the module docstring)."""

    # CoM's inputs are CoMPM's: borrow its tokenize-once sample building and prefix assembly, which
    # use only ``tokenizer``, ``labels``, ``benchmark``, ``max_length``, ``_cls`` and ``_pad``.
    _ids = CoMPM._ids
    _pad_batch = CoMPM._pad_batch
    context_ids = CoMPM.context_ids

    def __init__(self, benchmark: str, backbone: str = "roberta-large", gray: str = "heuristic",
                 w1: float = 1.0, w2: float = 1.0, max_length: int = 512,
                 backbone_config: dict[str, Any] | None = None) -> None:
        super().__init__(benchmark)
        if gray not in (*GRAY_METHODS, "none"):
            raise ValueError(f"classifier.gray={gray!r}; valid: {', '.join((*GRAY_METHODS, 'none'))}")
        self.save_hyperparameters()
        self.gray, self.w1, self.w2 = gray, w1, w2
        self.max_length = max_length
        self.tokenizer = build_tokenizer(backbone)
        self.context_model = build_encoder(backbone, overrides=backbone_config)
        self.head = nn.Linear(self.context_model.config.hidden_size, self.num_labels)
        self._cls = self.tokenizer.cls_token_id
        self._pad = self.tokenizer.pad_token_id

    # ---- samples ------------------------------------------------------------------------------
    def encode(self, dialogues: list[Dialogue]) -> list[EmoOneSample]:
        """CoMPM's samples (dialogue by dialogue, turn by turn), with the heuristic gray label attached."""
        base = CoMPM.encode(self, dialogues)
        utterances = [u for d in dialogues for u in d.utterances]
        samples = []
        for sample, utterance in zip(base, utterances, strict=True):
            gray = None
            if self.gray == "heuristic":
                gray = heuristic_gray(self.benchmark, sample.dialogue.labels[sample.target], utterance.sentiment)
            samples.append(EmoOneSample(sample.dialogue, sample.target, sample.length, gray))
        return samples

    def sample_length(self, sample: EmoOneSample) -> int:
        return sample.length

    def collate(self, samples: list[EmoOneSample]) -> dict[str, Any]:
        input_ids, attention_mask = self._pad_batch([self.context_ids(s) for s in samples])
        batch: dict[str, Any] = {
            "input_ids": input_ids, "attention_mask": attention_mask,
            "labels": torch.tensor([s.dialogue.labels[s.target] for s in samples], dtype=torch.long),
        }
        if all(s.gray is not None for s in samples):
            batch["gray"] = torch.tensor([s.gray for s in samples], dtype=torch.float32)
        return batch

    # ---- model and loss -------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        context = self.context_model(input_ids=batch["input_ids"],
                                     attention_mask=batch["attention_mask"]).last_hidden_state[:, 0]
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
                      backbone_config=h.backbone_config)

    @torch.no_grad()
    def teacher_probabilities(self, teacher: EmoOne, samples: list[EmoOneSample], batches) -> torch.Tensor:
        """The teacher's softmax for every sample, ``(len(samples), C)``, in eval mode.

        ``batches`` yields lists of sample indices (an evaluation batch sampler: sorted by length)."""
        was_training = teacher.training
        teacher.eval()
        probs = torch.empty(len(samples), self.num_labels)
        for indices in batches:
            batch = teacher.collate([samples[i] for i in indices])
            batch = {k: v.to(teacher.device) if torch.is_tensor(v) else v for k, v in batch.items()}
            probs[indices] = torch.softmax(teacher(batch).float(), dim=-1).cpu()
        teacher.train(was_training)
        return probs

    def attach_teacher(self, samples: list[EmoOneSample], probs: torch.Tensor) -> None:
        """Set each sample's gray label from the teacher's distribution (SA-adjusted for ``teacher_post``)."""
        gray = probs
        if self.gray == "teacher_post":
            gold = torch.tensor([s.dialogue.labels[s.target] for s in samples], dtype=torch.long)
            gray = teacher_post(probs, gold)
        for sample, row in zip(samples, gray.tolist(), strict=True):
            sample.gray = row

    def before_fit(self, ctx: Any) -> None:
        """S / SA: train the CE-only teacher on this phase's data (resuming an interrupted teacher run),
        then compute and cache its distributions over this phase's training samples."""
        if self.gray not in TEACHER_METHODS:
            return
        ctx.datamodule.setup()
        samples: list[EmoOneSample] = ctx.datamodule.train_samples
        keys = [f"{s.dialogue.id}#{s.target}" for s in samples]
        folder = Path(ctx.work_dir) / "teacher"
        cache_file = folder / "probs.pt"
        resume = bool(ctx.extras.get("resume", True))
        if resume and cache_file.is_file():
            cached = torch.load(cache_file, weights_only=True)
            if cached["keys"] == keys:
                log.info("EmoOne %s: teacher distributions read from %s", ctx.phase, cache_file)
                self.attach_teacher(samples, cached["probs"])
                return
            log.warning("%s: cached teacher distributions are for other samples; retraining the teacher", cache_file)
        teacher = self.make_teacher()
        # The runner's make_trainer selects on "<tag>/dev/<select>" and checkpoints into <work_dir>/<tag>.
        teacher.phase, teacher.eval_prefix, teacher.schedule = "teacher", "teacher/dev", ctx.schedule
        trainer = ctx.make_trainer("teacher", ctx.schedule)
        last = folder / "last.ckpt"
        trainer.fit(teacher, datamodule=ctx.make_datamodule(teacher, ctx.schedule),
                    ckpt_path=str(last) if resume and last.is_file() else None)
        best = trainer.checkpoint_callback.best_model_path if trainer.checkpoint_callback else ""
        if best:
            teacher.load_state_dict(torch.load(best, map_location="cpu", weights_only=False)["state_dict"])
        teacher.to(trainer.strategy.root_device)  # Lightning moved it back to the CPU after fitting
        # Every sample on every rank (not the rank's shard): each DDP rank needs all of its gray labels.
        batches = BucketBatchSampler([s.length for s in samples], ctx.schedule.eval_batch_size, shuffle=False)
        probs = self.teacher_probabilities(teacher, samples, batches)
        teacher.cpu()
        write_atomic(cache_file, lambda handle: torch.save({"keys": keys, "probs": probs}, handle), binary=True)
        log.info("EmoOne %s: teacher distributions of %d samples cached in %s", ctx.phase, len(samples), cache_file)
        self.attach_teacher(samples, probs)

