"""CoMPM (Lee & Lee, NAACL 2022): a context model plus the speaker's pre-trained memory, batched and cached.

The model, as in the paper and the reference code (rungjoo/CoMPM):

- **CoM**, the context model: RoBERTa over the string ``"<s1> utt <s2> utt ... <sK> target"`` (stripped)
  of the dialogue up to and including the target; ``<sK>`` numbers speakers by first appearance in the
  dialogue and is tokenized as plain text. The last 511 tokens are kept (the oldest context is dropped),
  ``<s>`` is prepended (no ``</s>``) and the last layer's ``<s>`` vector is the context representation.
- **PM**, the pre-trained memory: a second RoBERTa over each *earlier* utterance of the target's speaker
  (``<s>`` + its last 511 tokens, no marker); their ``<s>`` vectors go, in order, through a 2-layer GRU
  (dropout 0.3, zero initial state) whose last output is the track vector (zeros when the speaker has
  not spoken before).
- ``logits = Linear(context + track)``, cross-entropy. ``pm``: ``pretrained`` (CoMPM), ``scratch``
  (CoMPM(s): random PM weights, trained) or ``frozen`` (CoMPM(f): PM not trained).

Where this differs from the reference's computation, and why it gives the same model:

- Each utterance is tokenized once per dataset; a target's CoM input is the concatenation of its pieces'
  id lists (``"<sK>"``/``" <sK>"`` markers and ``" " + text`` utterances). Byte-level BPE never merges
  across the pre-tokenizer's word boundaries, and every piece boundary falls on one, so this equals
  tokenizing the whole string (tested on real MELD text).
- The PM encodes each needed utterance once per batch and the GRU runs once per (dialogue, speaker) over
  that speaker's utterances; the k-th utterance reads step k-1. The GRU is causal, so this equals the
  reference's re-run per target (up to dropout masks in training).
- Both encoders compute their last layer at the ``<s>`` position only (:func:`erc.models.backbone.cls_vectors`:
  the same vectors, less work), and many targets share a batch, with attention masks. **Reference bug not copied:** the reference pads the PM
  inputs and passes no attention mask, so its PM vectors (and predictions) depend on how long the
  speaker's other utterances are; we mask padding. ``schedule.batch_size=1`` still gives the reference's
  one-sample steps.
- CoMPM(f): the PM gets no gradients at all; the reference computes them and counts them in its gradient
  clipping norm (which clips the trained parameters harder). Its dropout stays on, as in the reference.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence, pad_packed_sequence

from erc.data import DataError, Dialogue
from erc.models.backbone import build_encoder, build_tokenizer, cls_vectors
from erc.training.module import ERCClassifier

PM_VARIANTS: tuple[str, ...] = ("pretrained", "scratch", "frozen")


@dataclass
class TokenizedDialogue:
    """A dialogue's utterances tokenized once: the pieces every CoM prefix and PM input is made of."""

    id: str
    speakers: list[int]          # speaker number by first appearance, 0-based (marker <s{n+1}>)
    markers: list[list[int]]     # "<sK>" for the first turn, " <sK>" after it
    context: list[list[int]]     # " " + text: the utterance inside a prefix
    final: list[list[int]]       # (" " + text).rstrip(): the utterance ending a prefix (the string is stripped)
    alone: list[list[int]]       # text: the PM input body
    labels: list[int]


@dataclass
class CoMPMSample:
    """One target utterance: the ``target``-th turn of ``dialogue`` with everything before it."""

    dialogue: TokenizedDialogue
    target: int
    length: int                  # CoM input length in tokens (bucketing)


def speaker_numbers(speakers: list[str]) -> list[int]:
    """0-based speaker numbers by order of first appearance in the dialogue (``<s1>`` = first speaker)."""
    seen: dict[str, int] = {}
    return [seen.setdefault(name, len(seen)) for name in speakers]


class CoMPM(ERCClassifier):
    """CoMPM as a LightningModule (see the module docstring)."""

    def __init__(self, benchmark: str, backbone: str = "roberta-large", pm: str = "pretrained",
                 max_length: int = 512, gru_dropout: float = 0.3, backbone_config: dict[str, Any] | None = None
                 ) -> None:
        super().__init__(benchmark)
        if pm not in PM_VARIANTS:
            raise DataError(f"classifier.pm={pm!r}; valid: {', '.join(PM_VARIANTS)}")
        self.save_hyperparameters()
        self.max_length = max_length
        self.tokenizer = build_tokenizer(backbone)
        self.context_model = build_encoder(backbone, overrides=backbone_config)
        self.pm = build_encoder(backbone, pretrained=pm != "scratch", overrides=backbone_config)
        self.pm_frozen = pm == "frozen"
        if self.pm_frozen:
            self.pm.requires_grad_(False)
        hidden = self.context_model.config.hidden_size
        self.gru = nn.GRU(hidden, hidden, num_layers=2, dropout=gru_dropout, batch_first=True)
        self.head = nn.Linear(hidden, self.num_labels)
        self._cls = self.tokenizer.cls_token_id
        self._pad = self.tokenizer.pad_token_id

    # ---- samples ------------------------------------------------------------------------------
    def _ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def encode(self, dialogues: list[Dialogue]) -> list[CoMPMSample]:
        """Tokenize every utterance once (one batched tokenizer call per piece kind) into target samples."""
        index = {name: i for i, name in enumerate(self.labels)}
        texts = [u.text for d in dialogues for u in d.utterances]
        context = self._ids([" " + t for t in texts])
        alone = self._ids(texts)
        ragged = [i for i, t in enumerate(texts) if (" " + t).rstrip() != " " + t]
        final = list(context)
        for i, ids in zip(ragged, self._ids([(" " + texts[i]).rstrip() for i in ragged])):
            final[i] = ids
        marker_cache: dict[str, list[int]] = {}

        def marker(text: str) -> list[int]:
            if text not in marker_cache:
                marker_cache[text] = self._ids([text])[0]
            return marker_cache[text]

        samples: list[CoMPMSample] = []
        at = 0
        for d in dialogues:
            n = len(d.utterances)
            speakers = speaker_numbers([u.speaker for u in d.utterances])
            labels = []
            for u_i, u in enumerate(d.utterances):
                if u.label not in index:
                    raise DataError(f"dialogue {d.id!r} utterance {u_i}: label {u.label!r} is not a "
                                    f"{self.benchmark} label ({', '.join(self.labels)})")
                labels.append(index[u.label])
            tok = TokenizedDialogue(
                id=d.id, speakers=speakers,
                markers=[marker(("" if i == 0 else " ") + f"<s{s + 1}>") for i, s in enumerate(speakers)],
                context=context[at:at + n], final=final[at:at + n], alone=alone[at:at + n], labels=labels)
            at += n
            running = 0
            for t in range(n):
                length = running + len(tok.markers[t]) + len(tok.final[t])
                samples.append(CoMPMSample(tok, t, 1 + min(length, self.max_length - 1)))
                running += len(tok.markers[t]) + len(tok.context[t])
        return samples

    def sample_length(self, sample: CoMPMSample) -> int:
        return sample.length

    def context_ids(self, sample: CoMPMSample) -> list[int]:
        """``<s>`` + the last ``max_length - 1`` tokens of the target's prefix string."""
        d, t = sample.dialogue, sample.target
        ids: list[int] = []
        for i in range(t):
            ids += d.markers[i]
            ids += d.context[i]
        ids += d.markers[t] + d.final[t]
        return [self._cls] + ids[-(self.max_length - 1):]

    def _pad_batch(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self._pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, :len(r)] = 1
        return ids, mask

    def collate(self, samples: list[CoMPMSample]) -> dict[str, Any]:
        """CoM inputs for every target, plus each needed earlier utterance once and one GRU track per
        (dialogue, speaker) that targets read their step from."""
        input_ids, attention_mask = self._pad_batch([self.context_ids(s) for s in samples])
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
                    pm_inputs.append([self._cls] + d.alone[j][-(self.max_length - 1):])
                row_ids.append(rows[(key[0], j)])
            track_rows.append(row_ids)
        batch: dict[str, Any] = {
            "input_ids": input_ids, "attention_mask": attention_mask,
            "labels": torch.tensor([s.dialogue.labels[s.target] for s in samples], dtype=torch.long),
            "sample_track": torch.tensor([track_of[r[0]] if r else -1 for r in reads], dtype=torch.long),
            "sample_step": torch.tensor([r[1] if r else 0 for r in reads], dtype=torch.long),
            "track_lengths": [len(r) for r in track_rows],
        }
        if pm_inputs:
            batch["pm_ids"], batch["pm_mask"] = self._pad_batch(pm_inputs)
            width = max(len(r) for r in track_rows)
            batch["track_rows"] = torch.tensor([r + [0] * (width - len(r)) for r in track_rows], dtype=torch.long)
        return batch

    # ---- model ----------------------------------------------------------------------------------
    def track_vectors(self, batch: dict[str, Any], like: torch.Tensor) -> torch.Tensor:
        """The speaker-memory track vector of every target (zeros for a speaker's first utterance)."""
        if "pm_ids" not in batch:
            return torch.zeros_like(like)
        with torch.set_grad_enabled(torch.is_grad_enabled() and not self.pm_frozen):
            pm_cls = cls_vectors(self.pm, batch["pm_ids"], batch["pm_mask"])
        sequences = pm_cls[batch["track_rows"]]                                   # (tracks, steps, hidden)
        packed = pack_padded_sequence(sequences, torch.tensor(batch["track_lengths"]), batch_first=True,
                                      enforce_sorted=False)
        outputs, _ = pad_packed_sequence(self.gru(packed)[0], batch_first=True)  # zero initial state
        has_track = (batch["sample_track"] >= 0).unsqueeze(-1)
        picked = outputs[batch["sample_track"].clamp(min=0), batch["sample_step"]]
        return torch.where(has_track, picked.to(like.dtype), torch.zeros_like(like))

    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        context = cls_vectors(self.context_model, batch["input_ids"], batch["attention_mask"])
        return self.head(context + self.track_vectors(batch, context))
