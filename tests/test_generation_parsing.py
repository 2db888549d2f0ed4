"""The parser and validator on real SmolLM2-135M outputs (tests/fixtures/generation/smollm2_outputs.jsonl:
prose around the dialogue, labels as words, numbers out of range, repeated lines, counting labels,
a truncated last line; each with the reasons a reader expects) and on hand-written format variants."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from erc.data.labels import label_set
from erc.generation.parsing import Rules, validate

FIXTURES = Path(__file__).parent / "fixtures" / "generation" / "smollm2_outputs.jsonl"
OUTPUTS = [json.loads(line) for line in FIXTURES.read_text(encoding="utf-8").splitlines()]
RULES = Rules(min_turns=3, repeat_ngram=4, max_ngram_repeats=2, enumeration_run=4, strict_speakers=True)


def check(text: str, *, benchmark: str = "meld", speakers=("Joey", "Rachel", "Ross"), target=None,
          truncated: bool = False):
    return validate(text, truncated=truncated, benchmark=benchmark, labels=label_set(benchmark),
                    speakers=list(speakers), target=target, rules=RULES)


@pytest.mark.parametrize("output", OUTPUTS, ids=[o["id"] for o in OUTPUTS])
def test_real_smollm2_outputs(output):
    parsed = check(output["text"], benchmark=output["benchmark"], speakers=output["speakers"],
                   target=output["target"], truncated=output["finish_reason"] == "length")
    expected = output["expected"]
    assert parsed.reasons == expected["reasons"]
    if "turns" in expected:
        assert [list(turn) for turn in parsed.turns] == expected["turns"]
    if "n_turns" in expected:
        assert len(parsed.turns) == expected["n_turns"]
    if "labels_by_name" in expected:
        assert parsed.labels_by_name == expected["labels_by_name"]


def test_the_fixture_table_covers_the_failure_modes():
    seen = {reason for o in OUTPUTS for reason in o["expected"]["reasons"]}
    assert {"no_dialogue", "truncated", "unknown_label", "label_out_of_range", "degenerate_repetition",
            "label_enumeration", "too_few_turns", "balanced_target_missing", "malformed_line"} <= seen


DIALOGUE = """Sure! Here is a dialogue between Joey, Rachel and Ross:

1. **Joey**: How you doin'? (2)
2. Rachel: Oh my God, you did NOT just say that. [4]
3. Ross: "We were on a break!" (Anger)
4. Joey: Fine, fine. (1. neutral)

I hope you enjoyed this conversation!"""


def test_accepts_numbering_bold_brackets_quotes_and_label_words_amid_prose():
    parsed = check(DIALOGUE)
    assert parsed.accepted, parsed.reasons
    assert parsed.turns == [("Joey", "How you doin'?", "joy"),
                            ("Rachel", "Oh my God, you did NOT just say that.", "anger"),
                            ("Ross", "We were on a break!", "anger"), ("Joey", "Fine, fine.", "neutral")]
    assert parsed.labels_by_name == 1


def test_speakers_are_matched_case_insensitively_and_returned_as_named():
    parsed = check("joey: Hi. (1)\nRACHEL: Hey. (2)\nRoss: Hello. (3)\nJoey: Bye. (3)")
    assert [s for s, _, _ in parsed.turns] == ["Joey", "Rachel", "Ross", "Joey"]


@pytest.mark.parametrize("text, reason", [
    ("Joey: Hi. (1)\nRachel: Hey. (2)\nMonica: Hello. (1)", "unknown_speaker"),
    ("Joey: Hi. (1)\nRachel Hey there (2)\nRoss: Hello. (1)", "malformed_line"),  # a missing colon
    ("Joey: Hi. (1)\nRachel: Hey. (1)", "too_few_turns"),
    ("Joey: Hi. (1)\nRachel: Hey. (9)\nRoss: Hello. (1)", "label_out_of_range"),
])
def test_rejection_reasons(text, reason):
    assert reason in check(text).reasons


@pytest.mark.parametrize("label", ["0", "00", "0. neutral", "8"])
def test_a_label_number_outside_1_to_k_is_rejected_never_wrapped(label):
    """``(0)`` must not become class -1, i.e. the last class, by Python's negative indexing."""
    parsed = check(f"Joey: Hi. ({label})\nRachel: Hey. (2)\nRoss: Hello. (1)\nJoey: Bye. (3)")
    assert parsed.reasons == ["label_out_of_range"]
    assert [label for _, _, label in parsed.turns] == ["joy", "neutral", "surprise"]
    assert parsed.label_ids == [1, 0, 2]


def test_balanced_target_and_truncation():
    text = "Joey: Hi. (1)\nRachel: Hey. (2)\nRoss: Hello. (1)"
    assert check(text, target="joy").accepted
    assert check(text, target="fear").reasons == ["balanced_target_missing"]
    assert check(text, truncated=True).reasons == ["truncated"]


def test_natural_repetition_of_short_lines_is_not_degenerate():
    parsed = check("Joey: Yeah. (1)\nRachel: What happened at the museum today? (3)\nJoey: Yeah. (1)\n"
                   "Ross: Nothing, I just fell asleep in the dinosaur hall again. (5)")
    assert parsed.accepted, parsed.reasons
