"""Prompts: the paper's three-sentence prompt, filled per benchmark and per dialogue.

The paper's exact prompt text (its Fig. 3) is not public, so the templates in
``conf/prompt/templates/`` are reconstructions; the hash of the template text goes into every
record so that a dataset always says which wording produced it. Everything a dialogue's prompt
depends on (speakers, balanced target) is derived from the base seed and the dialogue's index only,
never from ``n_dialogues``: raising ``n_dialogues`` keeps the prompts of existing dialogues.
"""

from __future__ import annotations

import hashlib
import random
from dataclasses import dataclass
from pathlib import Path

from erc.data.schema import DataError


@dataclass(frozen=True)
class PromptTemplate:
    """A prompt template file: comment lines dropped, the other lines joined by single spaces."""

    path: str
    text: str
    hash: str

    def render(self, *, participants: str, labels: list[str], target: str | None) -> str:
        """The user prompt of one dialogue. ``target`` fills ``{target}`` (balanced mode)."""
        slots = {"participants": participants, "label_options": label_options(labels)}
        if target is not None:
            slots["target"] = target
        try:
            return self.text.format(**slots)
        except KeyError as err:
            raise DataError(f"{self.path}: unknown slot {{{err.args[0]}}}; valid slots: "
                            f"{', '.join('{' + s + '}' for s in slots)}") from None


def load_template(path: str | Path) -> PromptTemplate:
    """Read a template file; the hash covers the effective text, not the comments."""
    path = Path(path)
    if not path.is_file():
        raise DataError(f"{path}: prompt template not found (config key prompt.template)")
    lines = [line.strip() for line in path.read_text(encoding="utf-8").splitlines()]
    text = " ".join(line for line in lines if line and not line.startswith("#"))
    if not text:
        raise DataError(f"{path}: prompt template is empty")
    return PromptTemplate(str(path), text, hashlib.sha256(text.encode()).hexdigest()[:16])


def label_options(labels: list[str]) -> str:
    """The labels as numbered options, e.g. ``(1) neutral, (2) joy, ...``: asking for a number
    instead of a word keeps the LLM inside the label set (the paper's "logic reasoning" trick)."""
    return ", ".join(f"({number}) {label}" for number, label in enumerate(labels, start=1))


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


def apply_chat_template(chat_template: str, user_prompt: str) -> str:
    """Wrap the user prompt in a chat template rendered on the client (e.g. Vicuna v1.1's
    ``... USER: {prompt} ASSISTANT:``), so the server's own template, which changed between
    revisions of the Vicuna repository, never matters. ``"none"`` sends the prompt as is."""
    if chat_template == "none":
        return user_prompt
    if "{prompt}" not in chat_template:
        raise DataError(f"llm.chat_template must contain {{prompt}} or be 'none' (or 'gguf' for "
                        f"llm=local), got {chat_template!r}")
    return chat_template.replace("{prompt}", user_prompt)
