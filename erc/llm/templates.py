"""Prompt template files and the client-side chat template: what every LLM task sends is a template filled with
its slots, and the hash of the template's effective text goes into every record, so an answer always says which
wording asked for it."""

from __future__ import annotations

import hashlib
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
