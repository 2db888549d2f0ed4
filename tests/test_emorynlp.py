"""EmoryNLP: the JSON release (dev, test) and the CoMPM TSV copy (the only full train split)."""

import json
from collections import Counter

import pytest

from erc.data import DataError, load_benchmark
from erc.data.formats.emorynlp_json import read_emorynlp_json
from erc.data.formats.erc_tsv import read_erc_tsv

TRAIN_LABELS = {"joyful": 2184, "mad": 1076, "neutral": 3034, "peaceful": 900, "powerful": 784, "sad": 671,
                "scared": 1285}


@pytest.mark.parametrize("split,scenes,utterances", [("dev", 99, 1344), ("test", 85, 1328)])
def test_json_splits(shared_data, split, scenes, utterances):
    dialogues = load_benchmark("emorynlp", split, shared_data)
    assert (len(dialogues), sum(len(d) for d in dialogues)) == (scenes, utterances)
    assert dialogues[0].id.startswith("s0") and dialogues[0].utterances[0].id.endswith("_u001")


def test_train_falls_back_to_the_tsv_copy(shared_data):
    """The train JSON is not in the shared folder: the loader detects the TSV copy instead."""
    assert not (shared_data / "emorynlp" / "emotion-detection-trn.json").exists()
    train = load_benchmark("emorynlp", "train", shared_data)
    assert (len(train), sum(len(d) for d in train)) == (713, 9934)
    assert Counter(u.label for d in train for u in d.utterances) == TRAIN_LABELS


@pytest.mark.parametrize("split,stem", [("dev", "dev"), ("test", "test")])
def test_json_and_tsv_copies_agree_utterance_by_utterance(shared_data, split, stem):
    from_json = load_benchmark("emorynlp", split, shared_data)
    from_tsv = read_erc_tsv(shared_data / "emorynlp" / "tsv" / f"EMORY_{stem}.txt", split, "emorynlp")
    pairs = [(u.text, u.label) for d in from_json for u in d.utterances]
    assert pairs == [(u.text, u.label) for d in from_tsv for u in d.utterances]
    assert [len(d) for d in from_json] == [len(d) for d in from_tsv]


def test_bad_record_names_the_utterance_and_field(tmp_path):
    data = {"season_id": "dev", "episodes": [{"episode_id": "s01_e01", "scenes": [{"scene_id": "s01_e01_c01",
            "utterances": [{"utterance_id": "s01_e01_c01_u001", "speakers": ["Ross Geller"], "transcript": "Hi",
                            "emotion": "Happy"}]}]}]}
    path = tmp_path / "emotion-detection-dev.json"
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match=r"s01_e01_c01_u001: field 'emotion': unknown emorynlp label 'Happy'"):
        read_emorynlp_json(path, "dev")
    del data["episodes"][0]["scenes"][0]["utterances"][0]["speakers"]
    path.write_text(json.dumps(data))
    with pytest.raises(DataError, match="s01_e01_c01_u001: missing field 'speakers'"):
        read_emorynlp_json(path, "dev")
