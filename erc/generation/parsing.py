"""Parsing and validation of LLM output into labelled dialogue turns.

Small models wrap the dialogue in prose, number or bullet the lines, bold the speaker, bracket the
label or write it as a word; those are all accepted. Whatever makes a dialogue unusable is a
*reason*, and every reason is counted in the data card, so a researcher sees why data was lost:

- ``no_dialogue``: no ``Speaker: utterance (label)`` line at all
- ``too_few_turns``: fewer lines than ``validation.min_turns``
- ``label_out_of_range``: a number outside 1..K; ``unknown_label``: a word outside the label set
- ``malformed_line``: a non-empty line inside the dialogue that is not a labelled turn
  (e.g. a missing colon or label), so the dialogue would silently lose a turn
- ``unknown_speaker``: a speaker not named in the prompt (``validation.strict_speakers``)
- ``balanced_target_missing``: a balanced dialogue without its target emotion
- ``truncated``: the token limit cut the output (``finish_reason=length``)
- ``unfinished_json``: a JSON answer ends inside its list although the token limit did not cut it (the model
  ended its turn there, or a stop sequence cut it): raising ``sampling.max_new_tokens`` would not help
- ``degenerate_repetition``: a repeated line, or a word n-gram repeated again and again
- ``label_enumeration``: labels counting 1, 2, 3, 4... down the lines, the artefact small
  models produce under a grammar instead of choosing emotions

JSON answers (``prompt.format=json``) are read by :func:`erc.generation.json_output.parse_json_turns` with the
same reasons (a JSON item that is not a turn is a ``malformed_line``), then checked here like lines.
"""

from __future__ import annotations

import itertools
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any

from erc.data.labels import canonical_label
from erc.data.schema import DataError

# The answer held no dialogue at all (empty, or prose only): the server, template or model failed,
# not the dialogue, so such answers do not use up a slot (see erc.generation.task).
NO_DIALOGUE = "no_dialogue"

# A JSON answer that ends inside its list; with ``finish_reason=length`` it is ``truncated`` instead.
UNFINISHED_JSON = "unfinished_json"

# prompt.format: the paper's "Speaker: utterance (number)" lines, or a JSON object (erc.generation.json_output).
FORMATS = ("lines", "json")

REASONS = (NO_DIALOGUE, "too_few_turns", "label_out_of_range", "unknown_label", "malformed_line",
           "unknown_speaker", "balanced_target_missing", "truncated", UNFINISHED_JSON, "degenerate_repetition",
           "label_enumeration")

_TURN = re.compile(
    r"""^\s*(?:[-*\u2022>]\s*|\d{1,3}[.)]\s+)?        # bullet or "1." numbering
        [*_"']*(?P<speaker>[^\W\d_][^:\n()\[\]*]{0,39}?)[*_"']*\s*:\s*[*_]*\s*
        (?P<text>.*?\S)\s*
        [(\[]\s*(?P<label>[^()\[\]]{1,30}?)\s*[)\]]     # (3), [3], (joy), (3. joy)
        \s*[.!?,;"']*\s*$""",
    re.VERBOSE,
)
_LABEL_NUMBER = re.compile(r"(\d{1,3})(?:\s*[.:=-]?\s*[A-Za-z]+)?")
_LABEL_WORD = re.compile(r"[A-Za-z]+")
_WORD = re.compile(r"[a-z0-9']+")


@dataclass(frozen=True)
class Rules:
    """Validation settings (``conf/generate.yaml: validation``)."""

    min_turns: int = 3
    repeat_ngram: int = 4
    max_ngram_repeats: int = 2
    enumeration_run: int = 4
    strict_speakers: bool = True

    @classmethod
    def from_config(cls, cfg: Any) -> Rules:
        return cls(int(cfg.min_turns), int(cfg.repeat_ngram), int(cfg.max_ngram_repeats),
                   int(cfg.enumeration_run), bool(cfg.strict_speakers))


@dataclass
class ParsedDialogue:
    """Turns as ``(speaker, text, label)`` with canonical labels, and why the dialogue is rejected
    (empty ``reasons`` = accepted)."""

    turns: list[tuple[str, str, str]]
    reasons: list[str]
    labels_by_name: int = 0
    label_ids: list[int] = field(default_factory=list)

    @property
    def accepted(self) -> bool:
        return not self.reasons


def parse_label(raw: str | int, benchmark: str, labels: list[str]) -> tuple[int | None, str | None, bool]:
    """``(class id, reason, given as a word)`` for the text inside the label brackets (or a JSON turn's
    ``emotion``: a string like it, or a number)."""
    if isinstance(raw, int):
        return (raw - 1, None, False) if 1 <= raw <= len(labels) else (None, "label_out_of_range", False)
    number = _LABEL_NUMBER.fullmatch(raw)
    if number:
        value = int(number.group(1))
        return (value - 1, None, False) if 1 <= value <= len(labels) else (None, "label_out_of_range", False)
    if _LABEL_WORD.fullmatch(raw):
        try:
            return labels.index(canonical_label(benchmark, raw)), None, True
        except DataError:
            return None, "unknown_label", True
    return None, "unknown_label", False


def parse_turns(text: str, benchmark: str, labels: list[str]) -> ParsedDialogue:
    """Every labelled turn in ``text``; prose before the first and after the last turn is ignored."""
    lines = text.splitlines()
    matches = [(i, _TURN.match(line)) for i, line in enumerate(lines)]
    found = [i for i, m in matches if m]
    if not found:
        return ParsedDialogue([], [NO_DIALOGUE])
    reasons: set[str] = set()
    turns, ids, by_name = [], [], 0
    for i, match in matches[found[0]:found[-1] + 1]:
        if match is None:
            if lines[i].strip():
                reasons.add("malformed_line")
            continue
        label_id, reason, as_word = parse_label(match.group("label").strip(), benchmark, labels)
        if reason:
            reasons.add(reason)
            continue
        by_name += as_word
        utterance = match.group("text").strip()
        if len(utterance) >= 2 and utterance[0] in '"\u201c' and utterance[-1] in '"\u201d':
            utterance = utterance[1:-1].strip()  # a quoted utterance; a lone quote is the model's text
        turns.append((match.group("speaker").strip(), utterance, labels[label_id]))
        ids.append(label_id)
    return ParsedDialogue(turns, sorted(reasons), by_name, ids)


def _degenerate(turns: list[tuple[str, str, str]], rules: Rules) -> bool:
    words = [_WORD.findall(text.lower()) for _, text, _ in turns]
    lines = Counter(tuple(w) for w in words if len(w) >= rules.repeat_ngram)
    if any(count > 1 for count in lines.values()):
        return True
    n = rules.repeat_ngram
    grams = Counter(tuple(w[i:i + n]) for w in words for i in range(len(w) - n + 1))
    return any(count > rules.max_ngram_repeats for count in grams.values())


def _enumerated(label_ids: list[int], run: int) -> bool:
    """True when ``run`` consecutive lines have labels stepping by +1 (or by -1)."""
    for step in (1, -1):
        length = 1
        for previous, current in itertools.pairwise(label_ids):
            length = length + 1 if current - previous == step else 1
            if length >= run:
                return True
    return False


def validate(text: str, *, truncated: bool, benchmark: str, labels: list[str], speakers: list[str],
             target: str | None, rules: Rules, format: str = "lines") -> ParsedDialogue:
    """Parse ``text`` in its output ``format`` (``prompt.format``; a request record's ``"format"``, which
    records from before JSON output lack: ``"lines"``) and collect every reason to reject it. Speakers are
    returned as named in the prompt (``speakers``) when they match it case-insensitively."""
    if format == "json":
        from erc.generation.json_output import parse_json_turns  # here: json_output builds on this module

        parsed = parse_json_turns(text, benchmark, labels)
    elif format == "lines":
        parsed = parse_turns(text, benchmark, labels)
    else:
        raise ValueError(f"unknown output format {format!r}; valid: {', '.join(FORMATS)}")
    reasons = set(parsed.reasons)
    if truncated:  # the token limit explains an unfinished JSON list
        reasons.discard(UNFINISHED_JSON)
        reasons.add("truncated")
    if parsed.turns:
        known = {s.lower(): s for s in speakers}
        named = []
        for speaker, utterance, label in parsed.turns:
            canonical = known.get(speaker.lower())
            if canonical is None and rules.strict_speakers:
                reasons.add("unknown_speaker")
            named.append((canonical or speaker, utterance, label))
        parsed.turns = named
        if len(parsed.turns) < rules.min_turns:
            reasons.add("too_few_turns")
        if target is not None and target not in {label for _, _, label in parsed.turns}:
            reasons.add("balanced_target_missing")
        if _degenerate(parsed.turns, rules):
            reasons.add("degenerate_repetition")
        if _enumerated(parsed.label_ids, rules.enumeration_run):
            reasons.add("label_enumeration")
    parsed.reasons = sorted(reasons)
    return parsed
