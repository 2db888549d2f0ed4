"""What the judge is asked and how its answer is read.

The judge sees a dialogue's speakers and utterances, numbered, and the benchmark's label set as numbered options
(as the generation prompt shows it), never the generated labels. Its answer is constrained, where the backend has
constrained decoding, to ``{"emotions": [<label>, ...]}`` with exactly one label per utterance; it is parsed
tolerantly anyway (a label's number instead of its word, other capitalisation, a bare list, JSON inside prose or a
code fence, numbered lines), since a free or weakly constrained model rarely answers to the letter.
"""

from __future__ import annotations

import json
import re
from typing import Any

from erc.data.schema import Dialogue
from erc.llm.grammar import JsonSchema
from erc.llm.templates import PromptTemplate, label_options

# The reason an answer is re-asked (records keep it; the count decides).
WRONG_COUNT = "wrong_count"
NOT_A_LABEL = "not_a_label"
NO_ANSWER = "no_answer"


def dialogue_lines(dialogue: Dialogue) -> str:
    """``1. Speaker: utterance`` lines: speakers and text only."""
    return "\n".join(f"{i}. {u.speaker}: {u.text}" for i, u in enumerate(dialogue.utterances, start=1))


def judge_prompt(template: PromptTemplate, dialogue: Dialogue, labels: list[str]) -> str:
    """The user prompt for ``dialogue`` (its labels are not in it)."""
    return template.text.format(dialogue=f"\n{dialogue_lines(dialogue)}\n", n_utterances=len(dialogue),
                                label_options=label_options(labels))


def answer_schema(labels: list[str], n: int) -> JsonSchema:
    """``{"emotions": [...]}`` with exactly ``n`` labels of the benchmark."""
    return JsonSchema.of("emotions", {
        "type": "object", "additionalProperties": False, "required": ["emotions"],
        "properties": {"emotions": {"type": "array", "items": {"type": "string", "enum": list(labels)},
                                    "minItems": n, "maxItems": n}}})


def _label(item: Any, labels: list[str]) -> str | None:
    """One answered item as a label: its word (any case, quotes or a "(3)" around it) or its 1-based number."""
    if isinstance(item, dict):
        values = [v for k, v in item.items() if str(k).lower() in ("emotion", "label")]
        return _label(values[0], labels) if values else None
    if isinstance(item, bool):
        return None
    if isinstance(item, int):
        return labels[item - 1] if 1 <= item <= len(labels) else None
    if not isinstance(item, str):
        return None
    text = item.strip().strip("\"'`.").strip().lower()
    lowered = [label.lower() for label in labels]
    if text in lowered:
        return labels[lowered.index(text)]
    number = re.fullmatch(r"\(?(\d+)\)?(?:\s*[-:.]?\s*([a-z]+))?", text)
    if number and 1 <= int(number.group(1)) <= len(labels):
        word = number.group(2)
        return labels[int(number.group(1)) - 1] if word is None or word == lowered[int(number.group(1)) - 1] else None
    word = re.fullmatch(r"([a-z]+)\s*\(\d+\)", text)
    return labels[lowered.index(word.group(1))] if word and word.group(1) in lowered else None


def _json_value(text: str) -> Any:
    """The first JSON object or array in ``text`` (None if there is none)."""
    decoder = json.JSONDecoder()
    for match in re.finditer(r"[{\[]", text):
        try:
            return decoder.raw_decode(text, match.start())[0]
        except ValueError:
            continue
    return None


def _items(text: str) -> list[Any] | None:
    value = _json_value(text)
    if isinstance(value, dict):
        lists = [v for k, v in value.items() if isinstance(v, list)]
        named = [v for k, v in value.items() if isinstance(v, list) and str(k).lower() in ("emotions", "labels")]
        value = named[0] if named else (lists[0] if len(lists) == 1 else None)
    if isinstance(value, list):
        return value
    lines = re.findall(r"^\s*\d+\s*[.):]\s*(.+?)\s*$", text, flags=re.MULTILINE)
    return lines or None


def parse_answer(text: str, labels: list[str], n: int) -> tuple[list[str] | None, str | None]:
    """``(labels, None)`` for an answer naming one label per utterance, else ``(None, reason)``."""
    items = _items(text)
    if not items:
        return None, NO_ANSWER
    if len(items) != n:
        return None, WRONG_COUNT
    judged = [_label(item, labels) for item in items]
    if any(label is None for label in judged):
        return None, NOT_A_LABEL
    return judged, None
