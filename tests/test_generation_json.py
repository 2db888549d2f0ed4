"""JSON output (prompt.format=json): the schema, the parser's rejection reasons, the config check, and whole runs
through the loopback TGI server and the embedded llama.cpp model."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import erc  # noqa: F401
from erc.data import load_benchmark
from erc.data.labels import label_set
from erc.errors import ConfigError
from erc.generation import GenerationError
from erc.generation.checks import check_generation_config
from erc.generation.json_output import dialogue_schema, parse_json_turns
from erc.generation.parsing import NO_DIALOGUE, Rules, validate
from erc.llm.sampling import derive_seed
from erc.paths import CONFIG_DIR
from erc.pipeline import generate

from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

LABELS = label_set("iemocap")  # neutral, happy, sad, angry, excited, frustrated
SPEAKERS = ["Male", "Female"]
SEED = 7


def dialogue_json(turns: list[tuple[str, str, object]], indent: int | None = None) -> str:
    return json.dumps({"dialogue": [{"speaker": s, "text": t, "emotion": e} for s, t, e in turns]}, indent=indent)


GOOD = [("Male", "Where were you last night?", 4), ("Female", "At work, as always.", 6),
        ("Male", "You could have called me.", 3)]


def test_schema_bounds_turns_and_lists_speakers_and_label_numbers_in_writing_order():
    schema = dialogue_schema(SPEAKERS, LABELS, 3, 8, 120)
    root = schema.schema()
    assert schema.name == "dialogue"
    assert root["type"] == "object" and root["required"] == ["dialogue"] and root["additionalProperties"] is False
    dialogue = root["properties"]["dialogue"]
    assert (dialogue["type"], dialogue["minItems"], dialogue["maxItems"]) == ("array", 3, 8)
    turn = dialogue["items"]
    assert list(turn["properties"]) == ["speaker", "text", "emotion"]  # the label after the utterance
    assert turn["required"] == ["speaker", "text", "emotion"] and turn["additionalProperties"] is False
    assert turn["properties"]["speaker"]["enum"] == SPEAKERS
    assert turn["properties"]["emotion"] == {"type": "integer", "enum": [1, 2, 3, 4, 5, 6]}
    assert turn["properties"]["text"]["maxLength"] == 120
    # llama.cpp's converter writes the turn's fields in that order too
    gbnf = schema.gbnf()
    item = next(line for line in gbnf.splitlines() if re.match(r"dialogue-item ::=", line))
    assert item.index("speaker-kv") < item.index("text-kv") < item.index("emotion-kv")


@pytest.mark.parametrize("text", [
    dialogue_json(GOOD),
    "Sure! Here is the dialogue:\n```json\n" + dialogue_json(GOOD, indent=2) + "\n```\nI hope it helps.",
    json.dumps([{"speaker": s, "text": t, "emotion": e} for s, t, e in GOOD]),  # a bare list
    dialogue_json([("Male", GOOD[0][1], "angry"), ("Female", GOOD[1][1], "6"), ("Male", GOOD[2][1], "3. sad")]),
], ids=["object", "fenced_in_prose", "bare_list", "labels_as_names_and_strings"])
def test_parses_the_dialogue_however_it_is_wrapped(text):
    parsed = parse_json_turns(text, "iemocap", LABELS)
    assert parsed.reasons == []
    assert parsed.turns == [("Male", "Where were you last night?", "angry"), ("Female", "At work, as always.",
                            "frustrated"), ("Male", "You could have called me.", "sad")]
    assert parsed.label_ids == [3, 5, 2]


def test_labels_given_by_name_are_counted():
    parsed = parse_json_turns(dialogue_json([("Male", "Hi.", "angry"), ("Female", "Oh.", 2)]), "iemocap", LABELS)
    assert parsed.labels_by_name == 1


@pytest.mark.parametrize("text, reasons", [
    ("I am sorry, but I cannot write a dialogue [as requested].", ["no_dialogue"]),
    ('{"dialogue": []}', ["no_dialogue"]),
    (dialogue_json([("Male", "Hi.", None)]), ["no_dialogue"]),  # nothing shaped like a turn: as prose
    (json.dumps({"dialogue": [dict(zip(("speaker", "text", "emotion"), GOOD[0], strict=True)), {"speaker": "Female",
                                                                                   "text": "No label."}]}),
     ["malformed_line"]),
    (dialogue_json([GOOD[0], ("Female", "Fine.", ["joy"])]), ["malformed_line"]),  # wrong type
    (dialogue_json([GOOD[0], ("Female", "Fine.", 7)]), ["label_out_of_range"]),
    (dialogue_json([GOOD[0], ("Female", "Fine.", "rage")]), ["unknown_label"]),
    (dialogue_json(GOOD)[:-30], ["unfinished_json"]),  # the answer ends inside the list
    (dialogue_json(GOOD).replace("}, {", "} {", 1), ["malformed_line"]),  # a missing comma: not a cut
], ids=["prose", "empty", "no_turn_shape", "missing_field", "wrong_type", "out_of_range", "unknown_label",
        "cut", "missing_comma"])
def test_rejection_reasons_are_the_line_parsers(text, reasons):
    assert parse_json_turns(text, "iemocap", LABELS).reasons == reasons


def test_a_cut_answer_keeps_its_complete_turns():
    parsed = parse_json_turns(dialogue_json(GOOD)[:-30], "iemocap", LABELS)
    assert [t[0] for t in parsed.turns] == ["Male", "Female"]


def _validate(text: str, target: str | None = None, truncated: bool = False):
    return validate(text, truncated=truncated, benchmark="iemocap", labels=LABELS, speakers=SPEAKERS, target=target,
                    rules=Rules(), format="json")


def test_validate_applies_the_shared_checks_to_json():
    assert _validate(dialogue_json(GOOD)).accepted
    assert _validate(dialogue_json(GOOD), truncated=True).reasons == ["truncated"]
    # an answer ending inside the list is truncated only when the token limit cut it (finish_reason=length)
    assert _validate(dialogue_json(GOOD)[:-30], truncated=True).reasons == ["too_few_turns", "truncated"]
    assert _validate(dialogue_json(GOOD)[:-30]).reasons == ["too_few_turns", "unfinished_json"]
    assert _validate(dialogue_json(GOOD[:2])).reasons == ["too_few_turns"]
    assert _validate(dialogue_json([("Joey", *GOOD[0][1:]), *GOOD[1:]])).reasons == ["unknown_speaker"]
    assert _validate(dialogue_json(GOOD), target="happy").reasons == ["balanced_target_missing"]
    repeated = [(s, "I told you I was at work all night.", e) for s, _, e in GOOD]
    assert _validate(dialogue_json(repeated)).reasons == ["degenerate_repetition"]
    counting = [(SPEAKERS[i % 2], t, i + 1) for i, t in enumerate(["Hi.", "Oh no.", "Why?", "Stop it.", "Fine."])]
    assert _validate(dialogue_json(counting)).reasons == ["label_enumeration"]
    # the same text read as lines holds no dialogue: the format decides the parser
    assert validate(dialogue_json(GOOD), truncated=False, benchmark="iemocap", labels=LABELS, speakers=SPEAKERS,
                    target=None, rules=Rules()).reasons == ["no_dialogue"]


def make_cfg(tmp_path: Path, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=["benchmark=iemocap", f"seed={SEED}", f"paths.data_dir={tmp_path}/data",
                                              "llm.backoff_s=0.01", "llm.backoff_max_s=0.05", *overrides])


def test_format_is_checked_and_selects_the_template(tmp_path):
    with pytest.raises(ConfigError, match=r"prompt\.format must be one of lines, json"):
        check_generation_config(make_cfg(tmp_path, "prompt.format=xml"))
    assert make_cfg(tmp_path, "prompt=balanced", "prompt.format=json").prompt.template.endswith("balanced_json.txt")
    assert make_cfg(tmp_path).prompt.template.endswith("/natural.txt")
    mine = tmp_path / "mine.txt"
    mine.write_text("Write {participants} talking, one of {label_options} per turn, as JSON.\n")
    assert make_cfg(tmp_path, "prompt.format=json", f"prompt.template={mine}").prompt.template == str(mine)
    with pytest.raises(ConfigError, match=r"lacks \{target\}"):  # the json template still needs the mode's slots
        check_generation_config(make_cfg(tmp_path, "prompt=balanced", "prompt.format=json",
                                         f"prompt.template={mine}"))


class JsonDialogues(ScriptedDialogues):
    """The loopback script's answers (by seed) written as JSON: valid ones fenced in prose, prose, and a cut one."""

    def __call__(self, inputs: str, parameters: dict) -> tuple[str, str]:
        seed = int(parameters["seed"])
        kind = self.kind(seed)
        if kind == "prose":
            return "I am sorry, but I cannot write a dialogue about that topic.", "eos_token"
        turns = [(s, t, self.labels.index(label) + 1) for s, t, label in self.turns_for(seed, self.target_of(inputs))]
        if kind == "truncated":
            return dialogue_json(turns, indent=2)[:-40], "length"
        return "Here is the dialogue:\n```json\n" + dialogue_json(turns, indent=2) + "\n```", "eos_token"


def test_json_answers_the_model_ended_inside_the_list_are_not_blamed_on_the_token_limit(tmp_path, caplog):
    """Every answer stops inside the list with finish_reason=eos_token: raising sampling.max_new_tokens would not
    help (and would change the setup hash), so the error names the stops and the schema instead."""
    cut = dialogue_json(GOOD)[:-30]
    with LoopbackTGI(lambda inputs, parameters: (cut, "eos_token")) as server, \
            pytest.raises(GenerationError) as raised:
        generate(make_cfg(tmp_path, "llm=tgi", f"llm.url={server.url}", "prompt.format=json", "n_dialogues=2",
                          "max_attempts=1", "quality.enabled=false"))
    message = str(raised.value)
    assert '"unfinished_json": 2' in message and "ended inside the dialogue list before the token limit" in message
    assert "llm.stop / sampling.stop" in message and "raise sampling.max_new_tokens" not in message
    assert "raise sampling.max_new_tokens" not in caplog.text


def test_tgi_run_in_json_gives_a_trainable_set_and_sends_the_schema(tmp_path):
    script = JsonDialogues(LABELS)
    with LoopbackTGI(script) as server:
        card = generate(make_cfg(tmp_path, "llm=tgi", f"llm.url={server.url}", "prompt.format=json", "n_dialogues=8",
                                 "sampling=paper_constrained", "quality.enabled=false"))
    out = tmp_path / "data" / "synthetic" / "iemocap_nat"
    for body in server.answered:
        assert 'as a JSON object {"dialogue": [{"speaker": "...", "text": "...", "emotion": number}, ...]}' in \
            body["inputs"]
        grammar = body["parameters"]["grammar"]
        assert grammar["type"] == "json"  # the schema, not the line grammar's regex, although constrained=true
        assert grammar["value"] == dialogue_schema(SPEAKERS, LABELS, 3, 12, 160).schema()
    records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert {r["format"] for r in records} == {"json"} and all(r["constrained"] for r in records)
    kinds = [ScriptedDialogues.kind(r["seed"]) for r in records]
    assert card["rejections"] == {"no_dialogue": kinds.count("prose"), "truncated": kinds.count("truncated")}
    assert card["counts"]["accepted"] == kinds.count("valid") + kinds.count("valid_without_target") > 0
    assert card["generator"]["format"] == "json"
    assert json.loads((out / "card.json").read_text())["generator"]["format"] == "json"
    assert "**Answers were JSON** (`prompt.format=json`" in (out / "README.md").read_text()
    loaded = [d for split in ("train", "dev", "test") for d in load_benchmark("iemocap_nat", split, tmp_path / "data")]
    assert len(loaded) == card["counts"]["kept"]
    first = next(d for d in loaded if d.meta["dialogue"] == 0)
    seed = derive_seed(SEED, 0, first.meta["attempt"])
    assert [(u.speaker, u.text, u.label) for u in first.utterances] == script.turns_for(seed, None)
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert runs[-1]["setup"]["format"] == "json"


def test_the_setup_of_lines_does_not_name_a_format(tmp_path):
    """A store written before JSON output stays resumable: its setup hash has no format in it."""
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, "llm=tgi", f"llm.url={server.url}", "n_dialogues=2", "quality.enabled=false"))
    out = tmp_path / "data" / "synthetic" / "iemocap_nat"
    runs = [json.loads(line) for line in (out / "runs.jsonl").read_text().splitlines()]
    assert "format" not in runs[-1]["setup"]
    assert {json.loads(line)["format"] for line in (out / "requests.jsonl").read_text().splitlines()} == {"lines"}


@pytest.mark.slow
def test_embedded_model_writes_parseable_json_under_the_schema(tmp_path):
    """SmolLM2-135M under the schema's GBNF: every answer is JSON the parser reads as a dialogue."""
    cfg = make_cfg(tmp_path, "prompt.format=json", "n_dialogues=2", "max_attempts=1", "sampling.grammar.max_turns=4",
                   "sampling.grammar.max_utterance_chars=60", "quality.enabled=false")
    generate(cfg)
    out = tmp_path / "data" / "synthetic" / "iemocap_nat"
    records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert len(records) == 2
    for record in records:
        document = json.loads(record["text"])
        assert 3 <= len(document["dialogue"]) <= 4
        assert NO_DIALOGUE not in record["reasons"] and "malformed_line" not in record["reasons"]
