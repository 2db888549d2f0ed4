"""Grayscale labels for EmoOne-RoBERTa (J. Lee, Interspeech 2022) and its loss.

An emotion is rarely "one-hot": an angry line is also a little disgusted. EmoOne trains on
``w1 * CE(gold) + w2 * soft-CE(gray)``, where the gray label is a distribution over the classes:

- ``heuristic`` (the paper's C): the gold class gets 1, the other emotions of the utterance's
  sentiment group get 0.5, normalised to sum 1. MELD ships a sentiment per utterance, and that
  sentiment picks the group (a *negative* surprise sits with anger/disgust/fear/sadness); data
  without one (EmoryNLP, IEMOCAP, generated sets) uses the label's own group from
  ``conf/benchmark/<b>.yaml``.
- ``teacher`` (S): the softmax of a frozen CE-only context model trained first on the same data.
- ``teacher_post`` (SA): the teacher's distribution, but with the gold class lifted to 0.5 when the
  teacher gave it less (the other classes rescaled to share the remaining 0.5).

Every vector here is indexed by ``label_set(benchmark)``, the project's single class order, so
teacher class i is always student class i (the reference permutes EmoryNLP classes, bug E1).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from erc.data import DataError, benchmark_info, label_set

GRAY_METHODS: tuple[str, ...] = ("heuristic", "teacher", "teacher_post")
TEACHER_METHODS: tuple[str, ...] = ("teacher", "teacher_post")
SENTIMENTS: tuple[str, ...] = ("positive", "negative", "neutral")


def heuristic_gray(benchmark: str, label: int, sentiment: str | None = None) -> list[float]:
    """The C gray label of one utterance: gold 1, its sentiment group's other emotions 0.5, normalised.

    ``sentiment`` is the utterance's own sentiment when the data has one (MELD); ``None`` falls back
    to the gold label's group. The gold class keeps weight 1 even when the utterance's sentiment
    names another group (MELD has e.g. negative-sentiment joy), as in the reference.
    """
    labels = label_set(benchmark)
    groups: dict[str, str] = benchmark_info(benchmark)["sentiment"]
    if not 0 <= label < len(labels):
        raise ValueError(f"label id {label} is outside the {benchmark} label set {labels}")
    group = groups[labels[label]] if sentiment is None else sentiment.strip().lower()
    if group not in SENTIMENTS:
        raise DataError(f"utterance sentiment {sentiment!r} is not one of {', '.join(SENTIMENTS)}")
    weights = [1.0 if i == label else (0.5 if groups[name] == group else 0.0)
               for i, name in enumerate(labels)]
    total = sum(weights)
    return [w / total for w in weights]


def teacher_post(probs: torch.Tensor, gold: torch.Tensor) -> torch.Tensor:
    """SA adjustment: rows whose gold probability is below 0.5 get gold = 0.5 and the other
    classes rescaled to sum to 0.5; rows where the teacher already gives gold >= 0.5 are kept."""
    p_gold = probs.gather(1, gold.view(-1, 1))
    low = p_gold < 0.5
    rest = (1.0 - p_gold).clamp_min(torch.finfo(probs.dtype).tiny)
    adjusted = 0.5 * probs / rest
    adjusted = adjusted.scatter(1, gold.view(-1, 1), 0.5)
    return torch.where(low, adjusted, probs)


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Batch mean of ``-sum_c target_c * log softmax(logits)_c`` (log_softmax: no log(0) = -inf
    where the reference takes ``log(softmax)``)."""
    return -(target * F.log_softmax(logits, dim=-1)).sum(dim=-1).mean()


def emoone_loss(logits: torch.Tensor, gold: torch.Tensor, gray: torch.Tensor,
                w1: float = 1.0, w2: float = 1.0) -> torch.Tensor:
    """EmoOne's objective ``w1 * CE(logits, gold) + w2 * soft-CE(logits, gray)``."""
    return w1 * F.cross_entropy(logits, gold) + w2 * soft_cross_entropy(logits, gray)
