"""What the judge is shown and how its answers are read, without a server: the numbered dialogue lines of its
prompt, the answer schema it is constrained to, and each tolerated answer form (a label's word in any case or
wrapping, its 1-based number, an object per utterance, JSON inside prose, numbered lines) next to the forms that
are no answer."""

from __future__ import annotations

import pytest

from erc.data import Dialogue, Utterance
from erc.judge.prompt import answer_schema, dialogue_lines, judge_prompt, parse_answer
from erc.llm.templates import PromptTemplate, label_options

LABELS = ["neutral", "joy", "anger"]


def _dialogue(*turns: tuple[str, str, str]) -> Dialogue:
    return Dialogue(id="d", benchmark="iemocap", split="train", source="nat",
                    utterances=[Utterance(speaker=s, text=t, label=label) for s, t, label in turns])


def test_the_prompt_numbers_each_utterance_from_one_with_its_speaker_and_no_label() -> None:
    dialogue = _dialogue(("Ann", "Hi there.", "joy"), ("Bob", "Go away.", "anger"), ("Ann", "Fine.", "neutral"))
    assert dialogue_lines(dialogue) == "1. Ann: Hi there.\n2. Bob: Go away.\n3. Ann: Fine."
    template = PromptTemplate(path="t.txt", text="{n_utterances} lines:{dialogue}Options: {label_options}", hash="h")
    assert judge_prompt(template, dialogue, LABELS) == (
        f"3 lines:\n1. Ann: Hi there.\n2. Bob: Go away.\n3. Ann: Fine.\nOptions: {label_options(LABELS)}")


def test_the_answer_schema_is_one_benchmark_label_per_utterance_and_nothing_else() -> None:
    schema = answer_schema(LABELS, 4)
    assert schema.name == "emotions"
    assert schema.schema() == {
        "type": "object", "additionalProperties": False, "required": ["emotions"],
        "properties": {"emotions": {"type": "array", "items": {"type": "string", "enum": LABELS},
                                    "minItems": 4, "maxItems": 4}}}


@pytest.mark.parametrize(("answer", "expected"), [
    # a word: any case, quoted, with a trailing full stop, or followed by its number in brackets
    ('["Joy", " \'ANGER\'. "]', ["joy", "anger"]),
    ('["`neutral`", "joy (2)"]', ["neutral", "joy"]),
    ('["\' joy \'", "anger ."]', ["joy", "anger"]),                # spaces inside the quotes or before the stop
    # a number: bare, in brackets, or followed by its own word after a dash, colon or full stop
    ('["2", "(3)"]', ["joy", "anger"]),
    ('["1 - neutral", "3. anger"]', ["neutral", "anger"]),
    ('["2: joy", "(1) neutral"]', ["joy", "neutral"]),
    # an object per utterance, its label under "emotion" or "label" (any case)
    ('[{"utterance": 1, "Emotion": "joy"}, {"label": 3}]', ["joy", "anger"]),
    # JSON after prose that holds a bracket which is no JSON; the emotions list beside other lists
    ('See [below]: {"emotions": ["joy", "neutral"]}', ["joy", "neutral"]),
    ('{"utterances": [1, 2], "labels": ["anger", "joy"]}', ["anger", "joy"]),
    ('{"Emotions": ["joy", "anger"], "utterances": [1, 2]}', ["joy", "anger"]),   # the list's key in any case
    ('{"n": 2, "answer": ["anger", "joy"]}', ["anger", "joy"]),
    # numbered lines, with a bracket or colon after the number
    ("Answer:\n 1) joy\n2: anger\n", ["joy", "anger"]),
])
def test_each_tolerated_answer_form_is_read_as_labels(answer, expected) -> None:
    assert parse_answer(answer, LABELS, 2) == (expected, None)


@pytest.mark.parametrize(("answer", "reason"), [
    ('{"emotions": []}', "no_answer"),                  # an empty list names nothing
    ("[]", "no_answer"),
    ('{"emotions": "joy, anger"}', "no_answer"),         # no list at all
    ("joy\nanger", "no_answer"),                         # lines without numbers are prose
    ('[true, "joy"]', "not_a_label"),                    # a boolean is no label's number (True == 1)
    ('[1.0, "joy"]', "not_a_label"),                     # nor a float
    ('[{"utterance": 1}, "joy"]', "not_a_label"),        # an object without an emotion or label
    ('["joy (x)", "joy"]', "not_a_label"),
    ('["(0)", "joy"]', "not_a_label"),                   # numbers run from 1 to the number of labels
    ('["4 anger", "joy"]', "not_a_label"),
    ('["bliss (2)", "joy"]', "not_a_label"),             # a word outside the labels, whatever number follows
    ('["joy", "anger sad"]', "not_a_label"),
])
def test_an_answer_that_names_no_label_per_utterance_is_refused_with_its_reason(answer, reason) -> None:
    assert parse_answer(answer, LABELS, 2) == (None, reason)


# ---- the figures and the filter's record ----------------------------------------------------------------------
def test_kappa_over_two_labels_is_cohens_and_the_confusion_plot_shows_each_rows_shares() -> None:
    """Two labels are enough for kappa (scikit-learn's); a set with one label on both sides has none. The plot
    shows each generated label's row as shares of the judge's labels, and the kappa ('-' when undefined)."""
    from sklearn.metrics import cohen_kappa_score

    from erc.judge.agreement import agreement, confusion_figure
    from erc.plots import plt

    generated = ["joy", "joy", "anger", "anger"]
    dialogue = _dialogue(*[("A", f"u{i}", label) for i, label in enumerate(generated)])
    judged = ["joy", "anger", "anger", "anger"]
    figures = agreement([dialogue], {"d": judged}, LABELS)
    assert figures["kappa"] == round(cohen_kappa_score(generated, judged, labels=LABELS), 4) == 0.5
    fig = confusion_figure(figures, LABELS, "two")
    assert fig.axes[0].images[0].get_array().tolist() == [[0, 0, 0], [0, 0.5, 0.5], [0, 0, 1]]
    assert "(kappa 0.50;" in fig.get_suptitle() and fig.axes[0].get_title() == "two"
    plt.close(fig)
    single = agreement([_dialogue(("A", "x", "joy"))], {"d": ["joy"]}, LABELS)
    assert single["kappa"] is None
    fig = confusion_figure(single, LABELS, "one")
    assert "(kappa -;" in fig.get_suptitle()
    plt.close(fig)


def test_removed_dialogues_keep_their_turns_with_the_judges_label_beside_the_generated_one(tmp_path) -> None:
    """``removed.jsonl`` shows why each dialogue went: every turn's speaker, text and generated label next to the
    judge's label for that same turn (None where the judge gave no answer); the card's rule states the threshold
    as a percentage."""
    import json

    from erc.judge.filter import judge_filter

    dialogues = [_dialogue(("Ann", "Hi.", "joy"), ("Bob", "No.", "anger")),
                 _dialogue(("Ann", "So.", "neutral"), ("Bob", "Ok.", "joy")),
                 _dialogue(("Cy", "Yes!", "joy")), _dialogue(("Di", "Hm.", "neutral"))]
    dialogues = [Dialogue(id=f"d{i}", benchmark=d.benchmark, split=d.split, source=d.source, utterances=d.utterances)
                 for i, d in enumerate(dialogues)]
    judged = {"d0": ["sad", "anger"], "d2": ["joy"], "d3": ["anger"]}
    folder, kept, entry = judge_filter(tmp_path / "iemocap_nat", "iemocap_nat", dialogues, judged, 0.75)
    assert [d.id for d in kept] == ["d2"]
    removed = [json.loads(line) for line in (folder / "removed.jsonl").read_text().splitlines()]
    assert [(r["id"], r["split"], r["utterances"], r["reason"], r["agreement"]) for r in removed] == [
        ("d0", "train", 2, "disagreement", 0.5), ("d1", "train", 2, "unjudged", None),
        ("d3", "train", 1, "disagreement", 0.0)]
    assert removed[0]["turns"] == [{"speaker": "Ann", "text": "Hi.", "label": "joy", "judge": "sad"},
                                   {"speaker": "Bob", "text": "No.", "label": "anger", "judge": "anger"}]
    assert [t["judge"] for t in removed[1]["turns"]] == [None, None]
    assert entry["min_agreement"] == 0.75 and "at least 75% of its utterances" in entry["rule"]
    assert entry["dialogues"] == {"before": 4, "kept": 1, "removed": 3, "unjudged": 1}
    assert entry["utterances"] == {"before": 6, "kept": 1} and entry["removed_file"] == "removed.jsonl"
    assert (entry["filter"], entry["from"]) == ("judge", "iemocap_nat")
