"""Prompts: the paper's three-sentence prompt, filled per benchmark and per dialogue.

The paper's exact prompt text (its Fig. 3) is not public, so the templates in
``conf/prompt/templates/`` are reconstructions; the hash of the template text goes into every
record so that a dataset always says which wording produced it. Everything a dialogue's prompt
depends on (speakers, balanced target) is derived from the base seed and the dialogue's index only,
never from ``n_dialogues``: raising ``n_dialogues`` keeps the prompts of existing dialogues.
"""

from __future__ import annotations

import random
from dataclasses import dataclass

from erc.data.schema import DataError
from erc.llm.templates import PromptTemplate


def join_names(names: list[str]) -> str:
    """``["Joey", "Rachel", "Ross"]`` -> ``"Joey, Rachel and Ross"``."""
    return names[0] if len(names) == 1 else ", ".join(names[:-1]) + " and " + names[-1]


@dataclass(frozen=True)
class DialogueSpec:
    """What dialogue ``index`` asks for: its speakers and, in balanced mode, its target label."""

    index: int
    speakers: tuple[str, ...]
    target: str | None


def plan_dialogue(index: int, *, seed: int, mode: str, labels: list[str], speaker_pool: list[str],
                  speakers_per_dialogue: list[int]) -> DialogueSpec:
    """Draw the speakers of dialogue ``index`` and pick its balanced target (label ``index mod K``,
    so each label is the target of the same number of dialogues)."""
    low, high = speakers_per_dialogue
    if not 1 <= low <= high <= len(speaker_pool):
        raise DataError(f"benchmark.generation.speakers_per_dialogue {speakers_per_dialogue} must be "
                        f"[min, max] with 1 <= min <= max <= {len(speaker_pool)} (the speaker pool)")
    rng = random.Random(f"{seed}:speakers:{index}")
    speakers = speaker_pool if low == high == len(speaker_pool) else rng.sample(speaker_pool, rng.randint(low, high))
    if mode == "balanced":
        target = labels[index % len(labels)]
    elif mode == "natural":
        target = None
    else:
        raise DataError(f"prompt.mode must be 'natural' or 'balanced', got {mode!r}")
    return DialogueSpec(index, tuple(speakers), target)


def render_user_prompt(template: PromptTemplate, spec: DialogueSpec, *, participants: str,
                       labels: list[str]) -> str:
    """Fill the template for one dialogue (``participants`` is the benchmark's phrase with {names})."""
    return template.render(participants=participants.format(names=join_names(list(spec.speakers))),
                           labels=labels, target=spec.target)
