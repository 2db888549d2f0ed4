"""TODKAT (Zhu et al., ACL 2021) on the training runner: one sample is one dialogue.

The network is :class:`erc.models.todkat_net.TodkatNet` (utterance encoder, VAE topic layer, knowledge
attention, a transformer over the turns with a key-padding mask, a per-turn classifier). This module
tokenizes dialogues once, pads batches dynamically, adds the topic model's loss to the cross-entropy
over real turns, and gives the topic model its own learning rate.

Differences from the released code (something678/TodKat), on purpose:
- attention runs over the turns of each dialogue with padded turns masked (the release attends across
  the dialogues of a batch, bug T1, so its predictions depend on the batch partner);
- the topic layer and the knowledge attention exist (the release has neither);
- dialogues are not cut to a turn cap (the release drops 32% of IEMOCAP's training turns, T3);
- the encoder starts from ``roberta-base`` (the release loads per-dataset "topic-language-model" weights
  whose training recipe is unpublished); torch's AdamW has bias correction (the release turns it off).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from erc.data import DataError, Dialogue
from erc.models.backbone import build_encoder, build_tokenizer, check_fast_path, position_limit, special_ids
from erc.models.base import ERCClassifier, PhaseSchedule
from erc.models.knowledge.cache import KnowledgeCache, default_cache_path, knowledge_sentences
from erc.models.todkat_net import TodkatNet
from erc.models.topic import topic_word_mask

KNOWLEDGE_CHOICES: tuple[str, ...] = ("none", "comet")


class TODKAT(ERCClassifier):
    """Topic-driven, knowledge-aware transformer over the turns of a dialogue.

    Options (``conf/classifier/todkat.yaml``): ``backbone`` (``roberta-base``; ``tiny``/``small`` for CPUs),
    ``max_utterance_tokens`` (head kept, ``<s>``/``</s>`` included), ``topic`` and its ``num_topics``,
    ``topic_hidden``, ``kl_weight``, ``topic_weight`` (the topic loss's weight next to the CE),
    ``topic_lr`` (null: the phase's lr), ``knowledge`` (``none``/``comet``) with ``knowledge_cache`` (None:
    ``cache/knowledge/comet.jsonl`` or ``$ERC_CACHE_DIR``) and ``knowledge_per_relation``, and the turn transformer's
    ``nhead``, ``dim_feedforward``, ``num_layers``, ``dropout``; ``fast_path`` (``auto``/``on``/``off``:
    :func:`erc.models.backbone.uses_packed_path`).
    """

    def __init__(self, benchmark: str, backbone: str = "roberta-base", pretrained: bool = True,
                 backbone_config: dict[str, Any] | None = None, max_utterance_tokens: int = 108,
                 topic: bool = True, num_topics: int = 50, topic_hidden: int = 256, kl_weight: float = 1.0,
                 topic_weight: float = 1.0, topic_lr: float | None = 1e-3, knowledge: str = "none",
                 knowledge_cache: str | None = None, knowledge_per_relation: int = 3, nhead: int = 8,
                 dim_feedforward: int = 2048, num_layers: int = 1, dropout: float = 0.1,
                 fast_path: str = "auto") -> None:
        super().__init__(benchmark)
        if knowledge not in KNOWLEDGE_CHOICES:
            raise ValueError(f"classifier.knowledge={knowledge!r}; valid: {', '.join(KNOWLEDGE_CHOICES)}")
        fast_path = check_fast_path(fast_path)
        self.save_hyperparameters()
        self.tokenizer = build_tokenizer(backbone)
        encoder = build_encoder(backbone, pretrained=pretrained, overrides=backbone_config)
        self.net = TodkatNet(encoder, self.num_labels,
                             topic_words=topic_word_mask(self.tokenizer) if topic else None,
                             num_topics=num_topics, topic_hidden=topic_hidden, kl_weight=kl_weight,
                             knowledge=knowledge == "comet", nhead=nhead, dim_feedforward=dim_feedforward,
                             num_layers=num_layers, dropout=dropout, fast_path=fast_path)
        self._first, self._last, self._pad_id = special_ids(self.tokenizer, "classifier.backbone")
        self.max_utterance_tokens = min(max_utterance_tokens, position_limit(encoder))
        self.topic_weight, self.topic_lr = topic_weight, topic_lr
        self.knowledge_mode = knowledge
        self.knowledge_cache_path = knowledge_cache
        self.knowledge_per_relation = knowledge_per_relation
        self._knowledge_cache: KnowledgeCache | None = None
        self._topic_loss: torch.Tensor | None = None

    # ---- samples: one per dialogue ------------------------------------------------------------
    def _tokenize(self, texts: list[str]) -> list[list[int]]:
        """``<s> text </s>`` ids (``[CLS] text [SEP]`` for BERT-style tokenizers: the encoder's own first and last
        special tokens), the head kept up to ``max_utterance_tokens`` (as the release does)."""
        if not texts:
            return []
        keep = self.max_utterance_tokens - 2
        return [[self._first, *ids[:keep], self._last]
                for ids in self.tokenizer(texts, add_special_tokens=False)["input_ids"]]

    def _cache(self) -> KnowledgeCache:
        if self._knowledge_cache is None:
            path = Path(self.knowledge_cache_path) if self.knowledge_cache_path else default_cache_path()
            if not path.is_file():
                raise FileNotFoundError(
                    f"knowledge cache {path} does not exist; fill it with `python -m erc.models.knowledge "
                    f"--comet <local COMET model> --data <datasets>` or set classifier.knowledge=none")
            self._knowledge_cache = KnowledgeCache(path)
        return self._knowledge_cache

    def encode(self, dialogues: list[Dialogue]) -> list[dict[str, Any]]:
        index = {name: i for i, name in enumerate(self.labels)}
        samples = []
        for dialogue in dialogues:
            texts = [u.text for u in dialogue.utterances]
            for i, u in enumerate(dialogue.utterances):
                if u.label not in index:
                    raise DataError(f"dialogue {dialogue.id!r} utterance {i}: label {u.label!r} is not a "
                                    f"{self.benchmark} label ({', '.join(self.labels)})")
            sample: dict[str, Any] = {
                "id": dialogue.id,
                "ids": self._tokenize(texts),
                "labels": [index[u.label] for u in dialogue.utterances],
            }
            if self.knowledge_mode == "comet":
                cache = self._cache()
                sample["knowledge"] = [
                    self._tokenize(knowledge_sentences(cache.get(text), self.knowledge_per_relation))
                    for text in texts]
            samples.append(sample)
        return samples

    def sample_length(self, sample: dict[str, Any]) -> int:
        return sum(len(ids) for ids in sample["ids"])

    def _pad(self, rows: list[list[int]]) -> tuple[torch.Tensor, torch.Tensor]:
        width = max((len(r) for r in rows), default=1)
        ids = torch.full((len(rows), width), self._pad_id, dtype=torch.long)
        mask = torch.zeros(len(rows), width, dtype=torch.long)
        for i, row in enumerate(rows):
            ids[i, :len(row)] = torch.tensor(row, dtype=torch.long)
            mask[i, :len(row)] = 1
        return ids, mask

    def collate(self, samples: list[dict[str, Any]]) -> dict[str, Any]:
        """Real turns flattened dialogue by dialogue, a (B, T) turn mask, and, with knowledge, the batch's
        distinct knowledge sentences (each encoded once) with a (N, M) index per turn (-1: none)."""
        rows = [ids for s in samples for ids in s["ids"]]
        input_ids, attention_mask = self._pad(rows)
        turns = max(len(s["ids"]) for s in samples)
        turn_mask = torch.zeros(len(samples), turns, dtype=torch.bool)
        for b, s in enumerate(samples):
            turn_mask[b, :len(s["ids"])] = True
        batch: dict[str, Any] = {
            "input_ids": input_ids, "attention_mask": attention_mask, "turn_mask": turn_mask,
            "labels": torch.tensor([label for s in samples for label in s["labels"]], dtype=torch.long),
        }
        if self.knowledge_mode == "comet":
            distinct: dict[tuple[int, ...], int] = {}
            per_turn = [[distinct.setdefault(tuple(ids), len(distinct)) for ids in turn]
                        for s in samples for turn in s["knowledge"]]
            width = max((len(t) for t in per_turn), default=0)
            index = torch.full((len(per_turn), max(width, 1)), -1, dtype=torch.long)
            for i, t in enumerate(per_turn):
                index[i, :len(t)] = torch.tensor(t, dtype=torch.long)
            batch["knowledge_ids"], batch["knowledge_attention_mask"] = self._pad([list(k) for k in distinct])
            batch["knowledge_index"] = index
        return batch

    # ---- model --------------------------------------------------------------------------------
    def forward(self, batch: dict[str, Any]) -> torch.Tensor:
        out = self.net(batch["input_ids"], batch["attention_mask"], batch["turn_mask"],
                       knowledge_ids=batch.get("knowledge_ids"),
                       knowledge_attention_mask=batch.get("knowledge_attention_mask"),
                       knowledge_index=batch.get("knowledge_index"))
        self._topic_loss = out.topic_loss
        return out.logits[batch["turn_mask"]]

    def loss(self, batch: dict[str, Any], logits: torch.Tensor) -> torch.Tensor:
        """Cross-entropy over the real turns, plus ``topic_weight`` times the topic model's loss."""
        ce = F.cross_entropy(logits.float(), batch["labels"])
        if self._topic_loss is None or self.net.topic is None or not self.training:
            return ce
        return ce + self.topic_weight * self._topic_loss.float()

    def training_step(self, batch: dict[str, Any], batch_idx: int) -> torch.Tensor:
        loss = super().training_step(batch, batch_idx)
        if self.net.topic is not None and self._topic_loss is not None:
            self.log(f"{self.phase}/train/topic_loss", self._topic_loss, on_step=True, on_epoch=True,
                     batch_size=int(batch["labels"].numel()))
        return loss

    def parameter_groups(self, schedule: PhaseSchedule) -> list[dict[str, Any]]:
        """The base groups (decay / no decay), with the topic model's parameters split off at ``topic_lr``:
        a VAE topic model learns nothing at the encoder's 2e-5 within a fine-tuning run."""
        groups = super().parameter_groups(schedule)
        if self.net.topic is None or self.topic_lr is None:
            return groups
        topic = {id(p) for p in self.net.topic.parameters()}
        split = []
        for group in groups:
            main = [p for p in group["params"] if id(p) not in topic]
            mine = [p for p in group["params"] if id(p) in topic]
            split += [{**group, "params": main}] if main else []
            split += [{**group, "params": mine, "lr": self.topic_lr}] if mine else []
        return split
