"""JSON output (``prompt.format=json``, beyond the paper): the dialogue as ``{"dialogue": [turn, ...]}``.

Each turn is ``{"speaker": ..., "text": ..., "emotion": <label number>}``. The emotion is the label's *number*, as
in the paper's line format ("using its number": the numbered options keep the model inside the label set); the
parser also takes the label's name, or a string such as ``"3"`` or ``"3. joy"``, as the line parser does. The root
is an object, not a bare list, because OpenAI's structured outputs require an object root; a bare list is still
parsed, since models write one when no schema holds them to the object.

:func:`dialogue_schema` is the constraint sent where a server takes a JSON schema (and, as GBNF, to llama.cpp): the
dialogue's own speakers and the benchmark's label numbers as enums, the number of turns and the utterance length
bounded, as :class:`erc.llm.grammar.DialogueGrammar` bounds the lines. Properties are listed speaker, text,
emotion, the order a constrained model writes them in: the label after the utterance, as in the line format.

:func:`parse_json_turns` reads an answer with the line parser's rejection reasons (see
:mod:`erc.generation.parsing`): ``no_dialogue`` when no list holds a single turn-shaped item (prose, an empty
list); ``malformed_line`` for an item that is not a turn (a field missing or of the wrong type) beside items that
are, or for a list that goes on with something that is not an item; ``label_out_of_range`` / ``unknown_label``;
and ``unfinished_json`` when the answer ends inside the list (the complete items before the end are the turns;
:func:`erc.generation.parsing.validate` makes it ``truncated`` when ``finish_reason=length`` says the token limit
cut it). A ```` ```json ```` fence and prose around the JSON are ignored.
"""

from __future__ import annotations

import json
import re
from typing import Any

from erc.generation.parsing import NO_DIALOGUE, UNFINISHED_JSON, ParsedDialogue, parse_label
from erc.llm.grammar import JsonSchema

FIELDS = ("speaker", "text", "emotion")
_DECODER = json.JSONDecoder()
_SPACE = re.compile(r"\s*")


def dialogue_schema(speakers: list[str] | tuple[str, ...], labels: list[str], min_turns: int, max_turns: int,
                    max_utterance_chars: int) -> JsonSchema:
    """The JSON schema of one dialogue's answer (named ``dialogue`` where a server asks for a name)."""
    turn = {"type": "object",
            "properties": {"speaker": {"type": "string", "enum": list(speakers)},
                           "text": {"type": "string", "minLength": 1, "maxLength": max_utterance_chars},
                           "emotion": {"type": "integer", "enum": list(range(1, len(labels) + 1))}},
            "required": list(FIELDS), "additionalProperties": False}
    return JsonSchema.of("dialogue", {
        "type": "object",
        "properties": {"dialogue": {"type": "array", "items": turn, "minItems": min_turns, "maxItems": max_turns}},
        "required": ["dialogue"], "additionalProperties": False})


def _turn_fields(item: Any) -> tuple[str, str, int | str] | None:
    """``(speaker, text, emotion)`` of an item shaped like a turn (keys in any case), else None."""
    if not isinstance(item, dict):
        return None
    fields = {str(key).lower(): value for key, value in item.items()}
    speaker, text, emotion = (fields.get(name) for name in FIELDS)
    if not (isinstance(speaker, str) and speaker.strip() and isinstance(text, str) and text.strip()):
        return None
    if isinstance(emotion, bool) or not isinstance(emotion, int | str):
        return None
    return speaker.strip(), text.strip(), emotion.strip() if isinstance(emotion, str) else emotion


def _items_from(text: str, start: int) -> tuple[list[Any], str | None]:
    """The JSON values of the list opening at ``text[start] == "["``, one by one, and why the list is incomplete:
    None (it closed), ``UNFINISHED_JSON`` (the text ends inside it) or ``"malformed_line"`` (something that is not
    a value comes before its end)."""
    items: list[Any] = []
    at = _SPACE.match(text, start + 1).end()
    while True:
        if text.startswith("]", at):
            return items, None
        try:
            item, at = _DECODER.raw_decode(text, at)
        except json.JSONDecodeError:
            return items, "malformed_line" if "]" in text[at:] else UNFINISHED_JSON
        items.append(item)
        at = _SPACE.match(text, at).end()
        if text.startswith(",", at):
            at = _SPACE.match(text, at + 1).end()   # a trailing comma before "]" is tolerated
        elif not text.startswith("]", at):
            return items, "malformed_line" if "]" in text[at:] else UNFINISHED_JSON


def parse_json_turns(text: str, benchmark: str, labels: list[str]) -> ParsedDialogue:
    """The turns of the first JSON list in ``text`` holding a turn-shaped item: the ``dialogue`` of the object
    the schema asks for, or a bare list (whatever surrounds it is ignored)."""
    for opening in re.finditer(r"\[", text):
        items, incomplete = _items_from(text, opening.start())
        shaped = [_turn_fields(item) for item in items]
        if any(shaped):
            break
    else:
        return ParsedDialogue([], [NO_DIALOGUE])
    reasons = {incomplete} if incomplete else set()
    turns, ids, by_name = [], [], 0
    for fields in shaped:
        if fields is None:
            reasons.add("malformed_line")
            continue
        speaker, utterance, emotion = fields
        label_id, reason, as_word = parse_label(emotion, benchmark, labels)
        if reason:
            reasons.add(reason)
            continue
        by_name += as_word
        turns.append((speaker, utterance, labels[label_id]))
        ids.append(label_id)
    return ParsedDialogue(turns, sorted(reasons), by_name, ids)
