"""Diversity and form: how varied a set's wording is, and whether its utterances look cut off or repeated.

Text is tokenised once, lower-cased, with sacrebleu's ``13a`` tokenizer (the one self-BLEU uses). distinct-n is
the corpus-level share of distinct n-grams among all n-grams; it falls as text grows, so it is computed on an
equal-size seeded sample of utterances in every column. Self-BLEU (0-100) scores each sampled utterance against
all the others as references and averages: high means the utterances repeat each other's wording. It is only
comparable at the same sample size, tokenizer and smoothing. Duplicates use generation's own keys
(:mod:`erc.data.dedup`): exact (normalised words) and near (MinHash Jaccard >= the threshold).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

import numpy as np

from erc.data.dedup import deduplicate
from erc.quality.corpus import Corpus


def tokenize(texts: list[str]) -> list[list[str]]:
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    tokenizer = Tokenizer13a()
    return [tokenizer(text.lower()).split() for text in texts]


def distinct_n(tokens: list[list[str]], n: int) -> float:
    grams = [tuple(t[i:i + n]) for t in tokens for i in range(len(t) - n + 1)]
    return len(set(grams)) / len(grams) if grams else 0.0


def self_bleu(texts: list[str]) -> float:
    """Mean sentence BLEU of each text against all the others as references, exactly as sacrebleu's
    ``BLEU(effective_order=True).sentence_score(texts[i], others)`` scores it (13a tokens, exp smoothing, closest
    reference length), in time linear in the number of texts: each n-gram's two largest counts over all texts
    give its largest count over all but one, so no text's references are gathered one by one."""
    from sacrebleu.metrics.bleu import BLEU, MAX_NGRAM_ORDER
    from sacrebleu.metrics.helpers import extract_all_word_ngrams
    from sacrebleu.tokenizers.tokenizer_13a import Tokenizer13a

    if len(texts) < 2:
        return 0.0
    tokenizer = Tokenizer13a()
    grams, lengths = zip(*(extract_all_word_ngrams(tokenizer(text.rstrip()), 1, MAX_NGRAM_ORDER)
                           for text in texts), strict=True)
    best: dict[tuple[str, ...], tuple[int, int, int]] = {}     # n-gram -> (largest count, its text, second largest)
    for i, counts in enumerate(grams):
        for gram, count in counts.items():
            top, holder, second = best.get(gram, (0, -1, 0))
            best[gram] = (count, i, top) if count > top else (top, holder, max(second, count))
    length_counts = Counter(lengths)
    scores = []
    for i, counts in enumerate(grams):
        correct, total = [0] * MAX_NGRAM_ORDER, [0] * MAX_NGRAM_ORDER
        for gram, count in counts.items():
            top, holder, second = best[gram]
            total[len(gram) - 1] += count
            correct[len(gram) - 1] += min(count, second if holder == i else top)
        others = [n for n, c in length_counts.items() if c > (1 if n == lengths[i] else 0)]
        ref_len = min(others, key=lambda n: (abs(lengths[i] - n), n))
        scores.append(BLEU.compute_bleu(correct, total, lengths[i], ref_len, smooth_method="exp",
                                        effective_order=True).score)
    return float(np.mean(scores))


def share_at_cap(texts: list[str], cap: int) -> float:
    """The share of texts cut by a length cap of ``cap`` characters: at least ``cap - 1`` long once trailing
    spaces are stripped (a cut right after a space leaves ``cap - 1`` characters of a stripped text)."""
    return float(np.mean([len(text.rstrip()) >= cap - 1 for text in texts])) if texts else 0.0


def sample_rows(n: int, size: int, seed: int) -> np.ndarray:
    """``size`` row indices out of ``n`` (all of them when there are fewer), sorted, from ``seed``."""
    if n <= size:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=size, replace=False))


def sampled_figures(corpus: Corpus, tokens: list[list[str]], sample_utterances: int, self_bleu_utterances: int,
                    seed: int) -> dict[str, float | int]:
    """distinct-1/2/3 and self-BLEU of ``corpus`` on seeded samples of the given sizes (``tokens``: its
    utterances tokenised), with the sizes used (smaller when the corpus is)."""
    sample = sample_rows(len(corpus), sample_utterances, seed)
    sampled = [tokens[i] for i in sample]
    bleu_rows = sample_rows(len(corpus), self_bleu_utterances, seed + 1)
    return {"distinct_1": distinct_n(sampled, 1), "distinct_2": distinct_n(sampled, 2),
            "distinct_3": distinct_n(sampled, 3), "sample_utterances": len(sample),
            "self_bleu": self_bleu([corpus.texts[i] for i in bleu_rows]), "self_bleu_utterances": len(bleu_rows)}


def diversity(corpus: Corpus, *, sample_utterances: int, self_bleu_utterances: int, length_cap: int | None,
              seed: int, dedup: dict[str, float | int]) -> dict[str, float | int | None]:
    """Every diversity and form figure of ``corpus`` (see the module docstring); ``length_cap`` in characters,
    None when no cap is known (``at_length_cap`` is then None)."""
    tokens = tokenize(corpus.texts)
    lengths = np.array([len(t) for t in tokens])
    seen = Counter(" ".join(t) for t in tokens)
    by_position = [replace(d, id=str(i)) for i, d in enumerate(corpus.dialogues)]   # ids need not be unique here
    _, removed = deduplicate(by_position, threshold=float(dedup["minhash_threshold"]),
                             num_perm=int(dedup["num_perm"]), shingle_words=int(dedup["shingle_words"]))
    n_dialogues = max(len(corpus.dialogues), 1)
    stripped = [text.rstrip() for text in corpus.texts]
    return {
        "utterances": len(corpus), "dialogues": len(corpus.dialogues),
        **sampled_figures(corpus, tokens, sample_utterances, self_bleu_utterances, seed),
        "vocabulary": len({w for t in tokens for w in t}),
        "tokens_mean": float(lengths.mean()) if len(lengths) else 0.0,
        "tokens_p95": float(np.percentile(lengths, 95)) if len(lengths) else 0.0,
        "turns_mean": float(np.mean([len(d) for d in corpus.dialogues])),
        "speakers_mean": float(np.mean([len({u.speaker for u in d.utterances}) for d in corpus.dialogues])),
        "duplicate_dialogues_exact": removed["exact"] / n_dialogues,
        "duplicate_dialogues_near": removed["near"] / n_dialogues,
        "duplicate_utterances": sum(c - 1 for c in seen.values()) / max(len(corpus), 1),
        "at_length_cap": share_at_cap(corpus.texts, length_cap) if length_cap else None,
        # ends in a letter or digit, no closing punctuation: cut mid-word (or an unpunctuated "Hey": hence the
        # real column as the reference)
        "ends_mid_word": float(np.mean([bool(s) and s[-1].isalnum() for s in stripped])),
        "length_cap": length_cap,
    }
