"""CoMPM's context model inputs (CoM), shared by CoMPM and EmoOne through one base class.

CoM reads the encoder (RoBERTa in the reference) over the string ``"<s1> utt <s2> utt ... <sK> target"``
(stripped) of the dialogue up to and including the target: ``<sK>`` numbers speakers by first appearance in the
dialogue and is tokenized as plain text; the last ``max_length - 1`` tokens are kept (the oldest context is
dropped) and the encoder's first token (``<s>``, or ``[CLS]`` for BERT-style tokenizers) is prepended (no
``</s>``). ``max_length`` is capped at the encoder's position limit (:func:`erc.models.backbone.position_limit`).
:class:`ContextModelClassifier` builds those inputs; CoMPM (:mod:`erc.models.compm`) adds the speaker memory on
top, EmoOne (:mod:`erc.models.emoone`) a gray label per sample, so the two see identical inputs.

Each utterance is tokenized once per dataset and a target's input is the concatenation of its pieces' id lists
(``"<sK>"``/``" <sK>"`` markers and ``" " + text`` utterances). Byte-level BPE (and WordPiece, and
SentencePiece with a whitespace pre-tokenizer) never merges across the pre-tokenizer's word boundaries, and every
piece boundary falls on one, so this equals tokenizing the whole string (tested on real MELD text, and per tokenizer
family in tests/test_backbone_families.py) at a fraction of the cost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from erc.data import DataError, Dialogue, Utterance
from erc.models.backbone import build_encoder, build_tokenizer, check_fast_path, position_limit, special_ids
from erc.models.base import ERCClassifier


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
class ContextSample:
    """One target utterance: the ``target``-th turn of ``dialogue`` with everything before it."""

    dialogue: TokenizedDialogue
    target: int
    length: int                  # CoM input length in tokens (bucketing)


def speaker_numbers(speakers: list[str]) -> list[int]:
    """0-based speaker numbers by order of first appearance in the dialogue (``<s1>`` = first speaker)."""
    seen: dict[str, int] = {}
    return [seen.setdefault(name, len(seen)) for name in speakers]


class ContextModelClassifier(ERCClassifier):
    """An ERC classifier whose samples are target utterances with their CoM input (see the module docstring).

    It owns the tokenizer and the context encoder (``self.context_model``); subclasses add their heads, a
    ``forward`` (reading encoders through :func:`erc.models.backbone.cls_vectors` with ``self.fast_path``), and
    through :meth:`make_sample` what else a sample carries."""

    def __init__(self, benchmark: str, backbone: str, max_length: int,
                 backbone_config: dict[str, Any] | None, fast_path: str = "auto") -> None:
        super().__init__(benchmark)
        self.fast_path = check_fast_path(fast_path)
        self.tokenizer = build_tokenizer(backbone)
        self.context_model = build_encoder(backbone, overrides=backbone_config)
        self._cls, _, self._pad = special_ids(self.tokenizer, "classifier.backbone")
        self.max_length = min(max_length, position_limit(self.context_model))

    # ---- samples ------------------------------------------------------------------------------
    def _ids(self, texts: list[str]) -> list[list[int]]:
        if not texts:
            return []
        return self.tokenizer(texts, add_special_tokens=False)["input_ids"]

    def alone_ids(self, texts: list[str]) -> list[list[int]]:
        """Each utterance on its own (``TokenizedDialogue.alone``), with the CoM tokenizer; CoMPM's PM, which may
        be another encoder, tokenizes with its own."""
        return self._ids(texts)

    def make_sample(self, dialogue: TokenizedDialogue, target: int, length: int, utterance: Utterance
                    ) -> ContextSample:
        """The sample of one target (``utterance`` is its source, for subclasses that attach more to it)."""
        return ContextSample(dialogue, target, length)

    def encode(self, dialogues: list[Dialogue]) -> list[ContextSample]:
        """Tokenize every utterance once (one batched tokenizer call per piece kind) into target samples, dialogue
        by dialogue, turn by turn."""
        index = {name: i for i, name in enumerate(self.labels)}
        texts = [u.text for d in dialogues for u in d.utterances]
        context = self._ids([" " + t for t in texts])
        alone = self.alone_ids(texts)
        ragged = [i for i, t in enumerate(texts) if (" " + t).rstrip() != " " + t]
        final = list(context)
        for i, ids in zip(ragged, self._ids([(" " + texts[i]).rstrip() for i in ragged]), strict=True):
            final[i] = ids
        marker_cache: dict[str, list[int]] = {}

        def marker(text: str) -> list[int]:
            if text not in marker_cache:
                marker_cache[text] = self._ids([text])[0]
            return marker_cache[text]

        samples: list[ContextSample] = []
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
                samples.append(self.make_sample(tok, t, 1 + min(length, self.max_length - 1), d.utterances[t]))
                running += len(tok.markers[t]) + len(tok.context[t])
        return samples

    def sample_length(self, sample: ContextSample) -> int:
        return sample.length

    def context_ids(self, sample: ContextSample) -> list[int]:
        """``<s>`` + the last ``max_length - 1`` tokens of the target's prefix string."""
        d, t = sample.dialogue, sample.target
        ids: list[int] = []
        for i in range(t):
            ids += d.markers[i]
            ids += d.context[i]
        ids += d.markers[t] + d.final[t]
        return [self._cls, *ids[-(self.max_length - 1):]]

    # ---- batches ------------------------------------------------------------------------------
    def _pad_batch(self, rows: list[list[int]], pad: int | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Right-padded ids (``pad``, default the CoM tokenizer's pad id) and the attention mask."""
        width = max(len(r) for r in rows)
        ids = torch.full((len(rows), width), self._pad if pad is None else pad, dtype=torch.long)
        mask = torch.zeros((len(rows), width), dtype=torch.long)
        for i, r in enumerate(rows):
            ids[i, :len(r)] = torch.tensor(r, dtype=torch.long)
            mask[i, :len(r)] = 1
        return ids, mask

    def context_batch(self, samples: list[ContextSample]) -> dict[str, Any]:
        """The CoM part of a batch: padded ``input_ids`` and ``attention_mask`` of every target, and ``labels``."""
        input_ids, attention_mask = self._pad_batch([self.context_ids(s) for s in samples])
        return {"input_ids": input_ids, "attention_mask": attention_mask,
                "labels": torch.tensor([s.dialogue.labels[s.target] for s in samples], dtype=torch.long)}
