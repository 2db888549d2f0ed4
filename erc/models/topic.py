"""TODKAT's topic layer: a VAE neural topic model over each utterance (Zhu et al., ACL 2021, §3.1).

The released TODKAT code has no topic layer (its repository issue #16); this is the paper's idea in
its standard form (a Miao et al. 2016 / ProdLDA-style NTM conditioned on the utterance encoder):

- encoder: the utterance representation -> mean and log-variance of a K-dim Gaussian latent;
- topic vector: ``theta = softmax(z)``, with ``z`` sampled by reparameterisation in training and
  ``z = mu`` in eval (so predictions are deterministic);
- decoder: ``log p(word) = log_softmax(theta @ beta)`` over the tokenizer's vocabulary, trained to
  reconstruct the utterance's bag of words, plus ``kl_weight * KL(q(z|u) || N(0, I))``.

The bag of words uses tokenizer ids (so the decoder has the same shape for every dataset and phase)
and leaves out special tokens, punctuation and English stop words, which carry no topic.
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn


@dataclass
class TopicOutput:
    """``theta``: (N, K) topic proportions joined to the utterance; ``recon``/``kl``: (N,) per-utterance terms."""

    theta: torch.Tensor
    recon: torch.Tensor
    kl: torch.Tensor

    def loss(self, kl_weight: float) -> torch.Tensor:
        """Negative ELBO per word, averaged over utterances (per word so that long and short
        utterances weigh alike and the scale stays near the classifier's cross-entropy)."""
        return (self.recon + kl_weight * self.kl).mean()


def topic_word_mask(tokenizer) -> torch.Tensor:
    """A (V,) bool mask of the tokenizer ids that count as topic words.

    Special tokens, pure punctuation/digits and English stop words (sklearn's list) are left out.
    The word-boundary marks of each tokenizer family are stripped before the checks: byte-level BPE's leading-space
    ``Ġ``, SentencePiece's ``▁``, and WordPiece's continuation prefix (``##``) where the tokenizer has one.
    """
    from sklearn.feature_extraction.text import ENGLISH_STOP_WORDS

    vocab_size = len(tokenizer)
    mask = torch.ones(vocab_size, dtype=torch.bool)
    special = set(tokenizer.all_special_ids)
    junk = set(string.punctuation + string.digits + string.whitespace + "Ġ▁")
    backend = getattr(getattr(tokenizer, "backend_tokenizer", None), "model", None)
    continuation = getattr(backend, "continuing_subword_prefix", None) or ""
    for token, index in tokenizer.get_vocab().items():
        if index >= vocab_size:
            continue
        word = token.removeprefix(continuation) if continuation else token
        word = word.replace("Ġ", "").replace("▁", "").strip().lower()
        if index in special or not word or set(word) <= junk or word in ENGLISH_STOP_WORDS:
            mask[index] = False
    return mask


@dataclass
class BagOfWords:
    """Each utterance's bag of words as its tokens: ``ids`` (N, L) and ``weights`` (N, L), 1 at a topic word and 0 at
    padding and other tokens. The same counts as a dense (N, V) matrix, which the reconstruction reads with one
    gather instead of a product over the whole vocabulary (and N x V zeros a step: RoBERTa's V is 50,265)."""

    ids: torch.Tensor
    weights: torch.Tensor


def bag_of_words(input_ids: torch.Tensor, attention_mask: torch.Tensor, word_mask: torch.Tensor) -> BagOfWords:
    """The bag of words of each row's real tokens, restricted to ``word_mask`` (V,)."""
    return BagOfWords(input_ids, attention_mask.to(torch.get_default_dtype()) * word_mask[input_ids])


class NeuralTopicModel(nn.Module):
    """VAE topic model whose encoder reads an utterance vector and whose decoder rebuilds its words."""

    def __init__(self, input_dim: int, vocab_size: int, num_topics: int = 50, hidden_dim: int = 256,
                 dropout: float = 0.2) -> None:
        super().__init__()
        self.encoder = nn.Sequential(nn.Linear(input_dim, hidden_dim), nn.Softplus(), nn.Dropout(dropout))
        self.mu = nn.Linear(hidden_dim, num_topics)
        self.logvar = nn.Linear(hidden_dim, num_topics)
        # beta: topic-word logits, plus a background word distribution so topics need not spend
        # themselves on words every utterance uses.
        self.beta = nn.Linear(num_topics, vocab_size)

    def forward(self, utterance: torch.Tensor, bow: BagOfWords | None = None) -> TopicOutput:
        """``utterance``: (N, input_dim); ``bow``: the utterances' words, or None when only ``theta`` is needed."""
        hidden = self.encoder(utterance)
        mu, logvar = self.mu(hidden), self.logvar(hidden).clamp(-10.0, 10.0)
        z = mu + torch.randn_like(mu) * torch.exp(0.5 * logvar) if self.training else mu
        theta = F.softmax(z, dim=-1)
        kl = -0.5 * (1.0 + logvar - mu.pow(2) - logvar.exp()).sum(dim=-1)
        if bow is None:
            zeros = torch.zeros_like(kl)
            return TopicOutput(theta=theta, recon=zeros, kl=zeros)
        log_p = F.log_softmax(self.beta(theta), dim=-1)
        words = bow.weights.sum(dim=-1).clamp_min(1.0)
        recon = -(log_p.gather(1, bow.ids) * bow.weights).sum(dim=-1) / words
        return TopicOutput(theta=theta, recon=recon, kl=kl / words)
