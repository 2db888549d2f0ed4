"""The attention through which a TODKAT utterance reads its knowledge sentences (:mod:`erc.models.knowledge`)."""

from __future__ import annotations

import math

import torch
from torch import nn


class KnowledgeAttention(nn.Module):
    """Scaled dot-product attention from an utterance vector to its knowledge sentence vectors.

    An utterance with no knowledge gets a zero vector (not a uniform average over padding).
    """

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.key = nn.Linear(dim, dim)
        self.value = nn.Linear(dim, dim)

    def forward(self, utterance: torch.Tensor, knowledge: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
        """``utterance`` (N, H), ``knowledge`` (N, M, H), ``mask`` (N, M) True where real -> (N, H)."""
        scores = torch.einsum("nh,nmh->nm", self.query(utterance), self.key(knowledge))
        scores = scores / math.sqrt(utterance.shape[-1])
        scores = scores.masked_fill(~mask, float("-inf"))
        weights = torch.softmax(scores, dim=-1).nan_to_num(0.0)  # rows without knowledge: all -inf
        return torch.einsum("nm,nmh->nh", weights, self.value(knowledge))
