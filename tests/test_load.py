"""load_benchmark dispatch, the generated-set JSONL format, and errors for missing data."""

import json
import re

import pytest

from erc.data import (
    DataError,
    Dialogue,
    MissingDataError,
    Utterance,
    load_benchmark,
    parse_dataset,
    read_dialogues_jsonl,
    write_dialogues_jsonl,
)


def _dialogue(i: int) -> Dialogue:
    return Dialogue(id=f"meld_bal_{i}", benchmark="meld", split="train", source="bal",
                    utterances=[Utterance("Joey", "How you doin'?", "joy"), Utterance("Rachel", "Ugh.", "disgust")],
                    meta={"target": "disgust"})


def test_generated_set_round_trips_through_load_benchmark(tmp_path):
    path = tmp_path / "synthetic" / "meld_bal" / "train.jsonl"
    write_dialogues_jsonl(path, [_dialogue(0), _dialogue(1)])
    loaded = load_benchmark("meld_bal", "train", tmp_path / "benchmarks", tmp_path / "synthetic")
    assert loaded == [_dialogue(0), _dialogue(1)]


def test_a_set_left_inside_the_benchmark_folder_is_named_with_the_move(tmp_path):
    """Generated sets used to live in ``<data_dir>/synthetic/``: one found only there is not "missing" but named,
    with the command that moves it where sets live now."""
    write_dialogues_jsonl(tmp_path / "data" / "synthetic" / "meld_bal" / "train.jsonl", [_dialogue(0)])
    sets = tmp_path / "sets"
    with pytest.raises(MissingDataError, match=re.escape(
            f"but {tmp_path}/data/synthetic/meld_bal holds it, the former place inside the benchmark folder: move it "
            f"with `mkdir -p {sets} && mv {tmp_path}/data/synthetic/meld_bal {sets}/`")):
        load_benchmark("meld_bal", "train", tmp_path / "data", sets)
    assert load_benchmark("meld_bal", "train", tmp_path / "data", tmp_path / "data" / "synthetic")  # the same place


def test_minimal_records_get_defaults(tmp_path):
    path = tmp_path / "dialogues.jsonl"
    path.write_text(json.dumps({"utterances": [{"speaker": "A", "text": "hi", "label": "Joy"}]}) + "\n\n")
    [dialogue] = read_dialogues_jsonl(path, "meld", "train", "nat")
    assert (dialogue.id, dialogue.source, dialogue.utterances[0].label) == ("dialogues_1", "nat", "joy")


@pytest.mark.parametrize("line,message", [
    ("{not json", "line 1: invalid JSON"),
    ('{"utterances": [{"speaker": "A", "text": "hi"}]}', r"line 1: utterances\[0\]: missing field 'label'"),
    ('{"utterances": [{"speaker": "A", "text": "hi", "label": "happy"}]}', "unknown meld label 'happy'"),
    ('{"utterances": "A: hi (1)"}', "field 'utterances' must be list"),
    ('{"utterances": [{"speaker": "A", "text": "hi", "label": "joy"}], "source": "gpt"}',
     "field 'source' must be org, nat, bal or a filtered source"),
    ('{"id": "d1", "utterances": []}', r"line 1: field 'utterances' is empty"),
    (('{"id": "d1", "utterances": [{"speaker": "A", "text": "hi", "label": "joy"}]}\n'
      '{"id": "d2", "utterances": [{"speaker": "A", "text": "ok", "label": "joy"}]}\n'
      '{"id": "d1", "utterances": [{"speaker": "B", "text": "yo", "label": "joy"}]}'),
     r"line 3: field 'id': dialogue id 'd1' is already used on line 1"),
])
def test_bad_records_name_file_line_and_field(tmp_path, line, message):
    path = tmp_path / "bad.jsonl"
    path.write_text(line + "\n")
    with pytest.raises(DataError, match=message) as err:
        read_dialogues_jsonl(path, "meld", "train", "bal")
    assert str(path) in str(err.value)


def test_missing_generated_set_prints_the_command_that_makes_it(tmp_path):
    with pytest.raises(MissingDataError, match=r"python generate.py benchmark=meld prompt=balanced"):
        load_benchmark("meld_bal", "train", tmp_path)


def test_missing_benchmark_names_what_was_looked_for(tmp_path):
    with pytest.raises(MissingDataError) as err:
        load_benchmark("meld", "dev", tmp_path)
    assert str(tmp_path / "meld" / "dev_sent_emo.csv") in str(err.value) and "make data" in str(err.value)


@pytest.mark.parametrize("name,expected", [("meld", ("meld", "org")), ("emorynlp_nat", ("emorynlp", "nat"))])
def test_parse_dataset(name, expected):
    assert parse_dataset(name) == expected


@pytest.mark.parametrize("bad", ["meld_gpt", "friends", "meld_org"])
def test_bad_names_and_splits_are_errors(bad):
    with pytest.raises(DataError, match="unknown dataset"):
        parse_dataset(bad)
    with pytest.raises(DataError, match="unknown split 'valid'"):
        load_benchmark("meld", "valid")


def test_synthetic_dir_follows_the_environment(tmp_path, monkeypatch):
    write_dialogues_jsonl(tmp_path / "sets" / "meld_nat" / "test.jsonl", [_dialogue(3)])
    monkeypatch.setenv("ERC_SYNTHETIC_DIR", str(tmp_path / "sets"))
    assert load_benchmark("meld_nat", "test")[0].id == "meld_bal_3"


def test_a_filter_of_ones_own_names_a_source_as_the_shipped_ones_do() -> None:
    """``<nat|bal>_<filter>`` for any lowercase word: a filter added as a post-processing step needs no entry in
    erc/data/names.py; anything else is still refused."""
    from erc.data.names import filtered_source, is_filtered_source, parse_dataset, unfiltered_source

    assert parse_dataset("meld_bal_long") == ("meld", "bal_long")
    assert filtered_source("nat", "long2") == "nat_long2" and unfiltered_source("bal_long") == "bal"
    assert [is_filtered_source(s) for s in ("bal_probe", "nat_long", "bal_Long", "org_long", "bal_", "bal")] == [
        True, True, False, False, False, False]
    with pytest.raises(DataError, match="unknown dataset 'meld_bal_x-y'"):
        parse_dataset("meld_bal_x-y")
