"""Deterministic train/dev/test split by hashed dialogue id.

A dialogue's split depends only on its id, never on how many dialogues exist or the order they
were generated in: raising ``n_dialogues`` or re-parsing never moves a dialogue between splits.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from erc.data.schema import SPLITS, DataError


def check_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """``{"train": .8, "dev": .1, "test": .1}``: exactly the three splits, non-negative, summing to 1."""
    ratios = {k: float(v) for k, v in ratios.items()}
    if set(ratios) != set(SPLITS) or any(v < 0 for v in ratios.values()) or abs(sum(ratios.values()) - 1) > 1e-6:
        raise DataError(f"config key 'split' must give train, dev and test ratios >= 0 summing to 1, got {ratios}")
    return ratios


def assign_split(dialogue_id: str, ratios: Mapping[str, float]) -> str:
    """The split of ``dialogue_id``: a uniform number from its hash, cut at the ratios."""
    position = int(hashlib.sha256(dialogue_id.encode()).hexdigest()[:15], 16) / 16**15
    bound = 0.0
    for split in SPLITS:
        bound += ratios[split]
        if position < bound:
            return split
    return SPLITS[-1]
