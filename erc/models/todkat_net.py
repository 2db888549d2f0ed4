"""TODKAT's network as plain torch (Zhu et al., ACL 2021): the model the paper describes, with switches.

One sample is a whole dialogue. Each turn is encoded on its own as ``<s> utterance </s>`` (the head
kept up to a maximum length) and represented by its last-layer ``<s>`` vector; optionally joined by
a topic vector (:mod:`erc.models.topic`) and by attention over commonsense sentences
(:mod:`erc.models.knowledge`). A transformer encoder then runs over the turns of each dialogue, with a
key-padding mask, and a linear layer classifies every turn.

Where this differs from the released code (something678/TodKat; see
docs/classifiers.md#differences-from-the-reference-code): its transformer layer receives
``(batch, turns, hidden)`` with ``batch_first=False``, so attention runs across the dialogues of a batch
at the same turn index, unmasked (bug T1: a prediction depends on the dialogue it is batched with). Here
attention runs over the turns of one dialogue, padded turns masked out, so a dialogue's logits do not
depend on its batch. The released code also has no topic layer and no knowledge (both are switches here,
off = the released architecture apart from T1).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from erc.models.backbone import cls_vectors
from erc.models.knowledge.attention import KnowledgeAttention
from erc.models.topic import NeuralTopicModel, bag_of_words


@dataclass
class TodkatOutput:
    """``logits`` (B, T, C), zero rows at padded turns; ``topic_loss`` a scalar (0 without a topic layer)."""

    logits: torch.Tensor
    topic_loss: torch.Tensor


class TodkatNet(nn.Module):
    """Utterance encoder -> [topic] -> [knowledge attention] -> turn transformer -> per-turn classifier.

    ``encoder`` is any Hugging Face encoder returning ``last_hidden_state`` (RoBERTa-base by default).
    ``topic_words`` is the (V,) mask of tokenizer ids the topic model reconstructs (None: no topic layer);
    ``fast_path`` is how :func:`erc.models.backbone.cls_vectors` runs the encoder (``auto``, ``on``, ``off``).
    """

    def __init__(self, encoder: nn.Module, num_classes: int, *, topic_words: torch.Tensor | None = None,
                 num_topics: int = 50, topic_hidden: int = 256, kl_weight: float = 1.0,
                 knowledge: bool = False, nhead: int = 8, dim_feedforward: int = 2048, num_layers: int = 1,
                 dropout: float = 0.1, fast_path: str = "auto") -> None:
        super().__init__()
        self.encoder = encoder
        self.fast_path = fast_path
        hidden = encoder.config.hidden_size
        self.kl_weight = kl_weight
        self.topic: NeuralTopicModel | None = None
        if topic_words is not None:
            self.register_buffer("topic_words", topic_words.bool(), persistent=False)
            self.topic = NeuralTopicModel(hidden, topic_words.numel(), num_topics, topic_hidden)
        self.knowledge = KnowledgeAttention(hidden) if knowledge else None
        joined = hidden + (num_topics if self.topic is not None else 0) + (hidden if knowledge else 0)
        # The released model feeds the CLS vectors straight in; extras are projected back to d_model.
        self.fuse = nn.Linear(joined, hidden) if joined != hidden else nn.Identity()
        layer = nn.TransformerEncoderLayer(hidden, nhead, dim_feedforward, dropout, activation="gelu",
                                           batch_first=True)
        self.turns = nn.TransformerEncoder(layer, num_layers, enable_nested_tensor=False)
        self.classifier = nn.Linear(hidden, num_classes)

    def encode(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        """Last-layer ``<s>`` vectors of (N, L) right-padded sequences."""
        return cls_vectors(self.encoder, input_ids, attention_mask, self.fast_path)

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor, turn_mask: torch.Tensor,
                knowledge_ids: torch.Tensor | None = None, knowledge_attention_mask: torch.Tensor | None = None,
                knowledge_index: torch.Tensor | None = None) -> TodkatOutput:
        """Logits for every turn.

        ``input_ids``/``attention_mask``: (N, L), the N real turns of the batch, dialogue by dialogue;
        ``turn_mask``: (B, T) bool, True at real turns (``turn_mask.sum() == N``);
        ``knowledge_ids``/``knowledge_attention_mask``: (K, Lk) the batch's distinct knowledge sentences;
        ``knowledge_index``: (N, M) index into them per turn, -1 where a turn has fewer than M.
        """
        utterances = self.encode(input_ids, attention_mask)
        parts = [utterances]
        topic_loss = utterances.new_zeros(())
        if self.topic is not None:
            bow = bag_of_words(input_ids, attention_mask, self.topic_words) if self.training else None
            topic = self.topic(utterances, bow)
            parts.append(topic.theta)
            if bow is not None:
                topic_loss = topic.loss(self.kl_weight)
        if self.knowledge is not None:
            parts.append(self._knowledge(utterances, knowledge_ids, knowledge_attention_mask, knowledge_index))
        turns = self.fuse(torch.cat(parts, dim=-1))
        padded = turns.new_zeros(*turn_mask.shape, turns.shape[-1])
        padded[turn_mask] = turns
        context = self.turns(padded, src_key_padding_mask=~turn_mask)
        logits = self.classifier(context) * turn_mask.unsqueeze(-1)
        return TodkatOutput(logits=logits, topic_loss=topic_loss)

    def _knowledge(self, utterances: torch.Tensor, ids: torch.Tensor | None, mask: torch.Tensor | None,
                   index: torch.Tensor | None) -> torch.Tensor:
        if index is None or ids is None or mask is None:
            raise ValueError("classifier.knowledge=comet needs knowledge_ids, knowledge_attention_mask and "
                             "knowledge_index in the batch")
        real = index >= 0
        if ids.shape[0] == 0:
            return torch.zeros_like(utterances)
        sentences = self.encode(ids, mask)
        gathered = sentences[index.clamp_min(0)]
        assert self.knowledge is not None
        return self.knowledge(utterances, gathered, real)
