"""Deterministic train/dev/test split by hashed dialogue id, with a repair for small sets.

A dialogue's split depends on its id: its hash gives a position in [0, 1), cut at the ratios. Raising
``n_dialogues``, re-parsing or changing dedup never moves a dialogue between splits, so test
dialogues never leak into training across reruns.

Small sets are the exception. Six dialogues at 0.5/0.25/0.25 leave a split empty by chance about a
third of the time, and an empty dev split cannot select a model. So when a split with a non-zero
ratio got no dialogue and there are at least as many dialogues as non-zero splits, the dialogue of
the largest split whose position lies nearest to the empty split's interval is moved there. The
trade-off: a moved dialogue's split then depends on the rest of the set. Once the set grows enough
for the hash to fill that split, the moved dialogue goes back to its hashed split, so raising
``n_dialogues`` can move it (at most one dialogue per split that was empty, only in small sets).
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping

from erc.data.schema import SPLITS
from erc.errors import ConfigError


def check_ratios(ratios: Mapping[str, float]) -> dict[str, float]:
    """``{"train": .8, "dev": .1, "test": .1}``: exactly the three splits, non-negative, summing to 1."""
    try:
        ratios = {k: float(v) for k, v in ratios.items()}
    except (TypeError, ValueError):
        raise ConfigError(f"split must give train, dev and test ratios as numbers, got {dict(ratios)}") from None
    if set(ratios) != set(SPLITS) or any(v < 0 for v in ratios.values()) or abs(sum(ratios.values()) - 1) > 1e-6:
        raise ConfigError(f"split must give train, dev and test ratios >= 0 summing to 1, got {ratios} "
                          f"(e.g. split.train=0.8 split.dev=0.1 split.test=0.1)")
    return ratios


def position(dialogue_id: str) -> float:
    """A uniform number in [0, 1) from the hash of ``dialogue_id``."""
    return int(hashlib.sha256(dialogue_id.encode()).hexdigest()[:15], 16) / 16**15


def _intervals(ratios: Mapping[str, float]) -> dict[str, tuple[float, float]]:
    bounds, low = {}, 0.0
    for split in SPLITS:
        bounds[split] = (low, low + ratios[split])
        low += ratios[split]
    return bounds


def assign_split(dialogue_id: str, ratios: Mapping[str, float]) -> str:
    """The hashed split of ``dialogue_id``: its position cut at the ratios."""
    p = position(dialogue_id)
    for split, (_, high) in _intervals(ratios).items():
        if p < high:
            return split
    return SPLITS[-1]


def assign_splits(dialogue_ids: list[str], ratios: Mapping[str, float]) -> dict[str, str]:
    """The split of every id: the hashed split, then the small-set repair of the module docstring
    (every split with a non-zero ratio gets a dialogue when there are enough; see
    :func:`dialogues_needed`)."""
    splits = {i: assign_split(i, ratios) for i in dialogue_ids}
    if len(dialogue_ids) < dialogues_needed(ratios):
        return splits
    intervals = _intervals(ratios)
    for empty in (s for s in SPLITS if ratios[s] > 0):
        if empty in splits.values():
            continue
        sizes = {s: sum(v == s for v in splits.values()) for s in SPLITS}
        donor = max(SPLITS, key=lambda s: (sizes[s], -SPLITS.index(s)))
        low, high = intervals[empty]
        moved = min((i for i, s in splits.items() if s == donor),
                    key=lambda i: (max(low - position(i), position(i) - high, 0.0), i))
        splits[moved] = empty
    return splits


def dialogues_needed(ratios: Mapping[str, float]) -> int:
    """How many dialogues give every split with a non-zero ratio at least one."""
    return sum(ratios[s] > 0 for s in SPLITS)
