"""Post-processing a generated set: build it from ``requests.jsonl``, write it, run the configured steps, write its
card and README (and those of the filtered sets the steps wrote). Rerunnable any time with no generation request:
``python generate.py ... postprocess_only=true``.

A file is written only when its bytes change, and the card's ``created_at`` alone never counts as a change: a rerun
with nothing new leaves every file (and its mtime) as it was, so whatever watches the files (training job keys,
make) sees no new data.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omegaconf import DictConfig

from erc.postprocess.build import build
from erc.postprocess.card import filtered_card, write_card
from erc.postprocess.export import export_set
from erc.postprocess.step import SetContext, Step, run_steps

log = logging.getLogger(__name__)


@dataclass
class Outcome:
    """The set's card and the steps that failed (name: why)."""

    card: dict[str, Any]
    failed: dict[str, str] = field(default_factory=dict)


def readme_sections(steps: list[Step]) -> Callable[[dict[str, Any]], str]:
    """The steps' sections of the README of a card, in step order."""
    return lambda card: "".join(step.readme(card) for step in steps)


def postprocess(cfg: DictConfig, steps: list[Step], ask: bool = False) -> Outcome:
    """Build, write and post-process the set of ``cfg.out_dir`` with ``steps`` (those of ``postprocess.steps``,
    :func:`~erc.postprocess.step.make_steps`; see the module docstring); ``ask``: steps may ask an LLM (the judge),
    else they read stored answers only."""
    built = build(cfg)
    card = export_set(cfg, built)
    ctx = SetContext(cfg, built, card, ask)
    failed = run_steps(ctx, steps)
    if failed:
        card["failed_steps"] = failed
    write_card(built.out_dir, card, readme_sections(steps))
    step_sections = tuple(s for step in steps for s in step.sections)
    for filtered in ctx.filtered:
        folder = Path(filtered.folder)
        own = filtered_card(card, folder.name, filtered.sizes, filtered.entry, filtered.sections, step_sections)
        write_card(folder, own, readme_sections(steps))
    log.info("%s: %d dialogues kept (%s)", built.out_dir, len(built.kept), card["counts"]["dialogues"])
    return Outcome(card, failed)
