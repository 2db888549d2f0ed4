"""CoMPM (Lee & Lee, NAACL 2022): a context model plus the speaker's pre-trained memory, batched and cached.

The model, as in the paper and the reference code (rungjoo/CoMPM):

- **CoM**, the context model: RoBERTa over ``"<s1> utt <s2> utt ... <sK> target"`` up to and including the
  target, the last layer's ``<s>`` vector (inputs: :mod:`erc.models.context`, shared with EmoOne).
- **PM**, the pre-trained memory: a second RoBERTa over each *earlier* utterance of the target's speaker
  (``<s>`` + its last 511 tokens, no marker); their ``<s>`` vectors go, in order, through a 2-layer GRU
  (dropout 0.3, zero initial state) whose last output is the track vector (zeros when the speaker has
  not spoken before).
- ``logits = Linear(context + track)``, cross-entropy. ``pm``: ``pretrained`` (CoMPM), ``scratch``
  (CoMPM(s): random PM weights, trained) or ``frozen`` (CoMPM(f): PM not trained).
- ``pm_backbone`` (None: the same as ``backbone``): another encoder for the PM, the reference's ``CoMPM_diff``
  (e.g. a BERT PM beside a RoBERTa CoM). The PM then tokenizes with its own tokenizer and frames its inputs with
  its own special tokens and position limit; the GRU runs at the PM's hidden size, and when that differs from the
  CoM's, a linear layer (``pm_projection``, the reference's ``SC``) maps the track vector to the CoM's size
  (applied to the zero track too, as ``SC`` is). ``backbone_config`` overrides apply to the PM only when it
  shares the CoM's backbone.

Where this differs from the reference's computation, and why it gives the same model:

- Each utterance is tokenized once per dataset and prefixes are assembled from id lists
  (:mod:`erc.models.context` says why that equals tokenizing each prefix string).
- The PM encodes each needed utterance once per batch and the GRU runs once per (dialogue, speaker) over
  that speaker's utterances; the k-th utterance reads step k-1. The GRU is causal, so this equals the
  reference's re-run per target (up to dropout masks in training).
- Both encoders compute their last layer at the ``<s>`` position only (:func:`erc.models.backbone.cls_vectors`:
  the same vectors, less work), and many targets share a batch, with attention masks. **Reference bug not
  copied (C1):** the reference pads the PM inputs and passes no attention mask, so its PM vectors (and
  predictions) depend on how long the speaker's other utterances are; we mask padding.
  ``schedule.batch_size=1`` still gives the reference's one-sample steps.
- CoMPM(f): the PM gets no gradients at all; the reference computes them and counts them in its gradient
  clipping norm, which clips the trained parameters harder (C3). Its dropout stays on, as in the reference.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from erc.data import DataError
from erc.models.backbone import build_encoder, build_tokenizer, cls_vectors, position_limit, special_ids
from erc.models.context import ContextModelClassifier, ContextSample

PM_VARIANTS: tuple[str, ...] = ("pretrained", "scratch", "frozen")


class CoMPM(ContextModelClassifier):
    """CoMPM as a LightningModule (see the module docstring)."""

    def __init__(self, benchmark: str, backbone: str = "roberta-large", pm: str = "pretrained",
                 max_length: int = 512, gru_dropout: float = 0.3, backbone_config: dict[str, Any] | None = None,
                 pm_backbone: str | None = None, fast_path: str = "auto") -> None:
        if pm not in PM_VARIANTS:
            raise DataError(f"classifier.pm={pm!r}; valid: {', '.join(PM_VARIANTS)}")
        # Before the base class tokenizes anything: alone_ids needs the PM tokenizer.
        self.pm_tokenizer = build_tokenizer(pm_backbone, "classifier.pm_backbone") if pm_backbone else None
        super().__init__(benchmark, backbone, max_length, backbone_config, fast_path)
        self.save_hyperparameters()
        if pm_backbone is None:
            self.pm = build_encoder(backbone, pretrained=pm != "scratch", overrides=backbone_config)
            self._pm_cls, self._pm_pad, self.pm_max_length = self._cls, self._pad, self.max_length
        else:
            self.pm = build_encoder(pm_backbone, pretrained=pm != "scratch", key="classifier.pm_backbone")
            self._pm_cls, _, self._pm_pad = special_ids(self.pm_tokenizer, "classifier.pm_backbone")
            self.pm_max_length = min(max_length, position_limit(self.pm))
        self.pm_frozen = pm == "frozen"
        if self.pm_frozen:
            self.pm.requires_grad_(False)
        hidden, pm_hidden = self.context_model.config.hidden_size, self.pm.config.hidden_size
        self.gru = nn.GRU(pm_hidden, pm_hidden, num_layers=2, dropout=gru_dropout, batch_first=True)
        self.pm_projection = nn.Linear(pm_hidden, hidden) if pm_hidden != hidden else None
        self.head = nn.Linear(hidden, self.num_labels)

    def alone_ids(self, texts: list[str]) -> list[list[int]]:
        """The PM inputs' bodies, with the PM's tokenizer (the CoM's when they share the backbone)."""
        if self.pm_tokenizer is None or not texts:
            return super().alone_ids(texts)
        return self.pm_tokenizer(texts, add_special_tokens=False)["input_ids"]

    def collate(self, samples: list[ContextSample]) -> dict[str, Any]:
        """CoM inputs for every target, plus each needed earlier utterance once and one GRU track per
        (dialogue, speaker) that targets read their step from."""
        tracks: dict[tuple[int, int], list[int]] = {}      # (dialogue, speaker) -> utterance indices in order
        reads: list[tuple[tuple[int, int], int] | None] = []
        for s in samples:
            d, t = s.dialogue, s.target
            earlier = [j for j in range(t) if d.speakers[j] == d.speakers[t]]
            if not earlier:
                reads.append(None)
                continue
            key = (id(d), d.speakers[t])
            if len(earlier) > len(tracks.get(key, [])):
                tracks[key] = earlier
            reads.append((key, len(earlier) - 1))
        by_id = {id(s.dialogue): s.dialogue for s in samples}
        rows: dict[tuple[int, int], int] = {}
        pm_inputs: list[list[int]] = []
        track_rows: list[list[int]] = []
        track_of = {}
        for key, utterances in tracks.items():
            track_of[key] = len(track_rows)
            d = by_id[key[0]]
            row_ids = []
            for j in utterances:
                if (key[0], j) not in rows:
                    rows[(key[0], j)] = len(pm_inputs)
                    pm_inputs.append([self._pm_cls, *d.alone[j][-(self.pm_max_length - 1):]])
                row_ids.append(rows[(key[0], j)])
            track_rows.append(row_ids)
        batch: dict[str, Any] = {
            **self.context_batch(samples),
            "sample_track": torch.tensor([track_of[r[0]] if r else -1 for r in reads], dtype=torch.long),
            "sample_step": torch.tensor([r[1] if r else 0 for r in reads], dtype=torch.long),
            "track_lengths": [len(r) for r in track_rows],
        }
        if pm_inputs:
            batch["pm_ids"], batch["pm_mask"] = self._pad_batch(pm_inputs, self._pm_pad)
            width = max(len(r) for r in track_rows)
            batch["track_rows"] = torch.tensor([r + [0] * (width - len(r)) for r in track_rows], dtype=torch.long)
        return batch

    # ---- model ----------------------------------------------------------------------------------
    def track_vectors(self, batch: dict[str, Any], like: torch.Tensor) -> torch.Tensor:
        """The speaker-memory track vector of every target (zeros for a speaker's first utterance), projected to
        the CoM's size when the PM's differs."""
        track = self._pm_tracks(batch, like.new_zeros(like.shape[0], self.pm.config.hidden_size))
        return track if self.pm_projection is None else self.pm_projection(track)

    def _pm_tracks(self, batch: dict[str, Any], like: torch.Tensor) -> torch.Tensor:
        """The GRU's track vectors at the PM's hidden size (``like``: zeros of that shape)."""
        if "pm_ids" not in batch:
            return like
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.pm_frozen):
            pm_cls = cls_vectors(self.pm, batch["pm_ids"], batch["pm_mask"], self.fast_path)
        sequences = pm_cls[batch["track_rows"]]                                   # (tracks, steps, hidden)
        packed = pack_padded_sequence(sequences, torch.tensor(batch["track_lengths"]), batch_first=True,
                                      enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True)  # zero initial state
        has_track = (batch["sample_track"] >= 0).unsqueeze(-1)
        picked = outputs[batch["sample_track"].clamp(min=0), batch["sample_step"]]
        return torch.where(has_track, picked.to(like.dtype), torch.zeros_like(like))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        context = cls_vectors(self.context_model, batch["input_ids"], batch["attention_mask"], self.fast_path)
        return self.head(context + self.track_vectors(batch, context))
