"""EmoryNLP: the JSON release (dev, test) and the CoMPM TSV copy (the only full train split)."""

import json
from collections import Counter
from pathlib import Path

import pytest

from erc.data import DataError, load_benchmark
from erc.data.formats.emorynlp_json import read_emorynlp_json
from erc.data.formats.erc_tsv import read_erc_tsv

TRAIN_LABELS = {"joyful": 2184, "mad": 1076, "neutral": 3034, "peaceful": 900, "powerful": 784, "sad": 671,
                "scared": 1285}


@pytest.fixture(scope="module")
def emorynlp(benchmark_data: Path) -> Path:
    """The real EmoryNLP folder; skip when this copy of the benchmarks has none."""
    folder = benchmark_data / "emorynlp"
    if not folder.is_dir():
        pytest.skip(f"EmoryNLP not found at {folder}: run `make data`")
    return folder


@pytest.fixture(scope="module")
def emorynlp_tsv(emorynlp: Path) -> Path:
    """The CoMPM TSV copy of EmoryNLP, which ``make data`` does not download; skip when it is absent."""
    folder = emorynlp / "tsv"
    if not folder.is_dir():
        pytest.skip(f"the ERC TSV copy of EmoryNLP is not at {folder}")
    return folder


@pytest.mark.parametrize("split,scenes,utterances", [("dev", 99, 1344), ("test", 85, 1328)])
def test_json_splits(emorynlp, split, scenes, utterances):
    dialogues = load_benchmark("emorynlp", split, emorynlp.parent)
    assert (len(dialogues), sum(len(d) for d in dialogues)) == (scenes, utterances)
    assert dialogues[0].id.startswith("s0") and dialogues[0].utterances[0].id.endswith("_u001")


def test_train_falls_back_to_the_tsv_copy(emorynlp_tsv, tmp_path):
    """Without the train JSON the loader detects the TSV copy instead (a folder holding only the TSV copy,
    whether or not this copy of the benchmarks has the JSON too)."""
    (tmp_path / "emorynlp").mkdir()
    (tmp_path / "emorynlp" / "tsv").symlink_to(emorynlp_tsv)
    train = load_benchmark("emorynlp", "train", tmp_path)
    assert (len(train), sum(len(d) for d in train)) == (713, 9934)
    assert Counter(u.label for d in train for u in d.utterances) == TRAIN_LABELS


@pytest.mark.parametrize("split,stem", [("dev", "dev"), ("test", "test")])
def test_json_and_tsv_copies_agree_utterance_by_utterance(emorynlp_tsv, split, stem):
    from_json = load_benchmark("emorynlp", split, emorynlp_tsv.parent.parent)
    from_tsv = read_erc_tsv(emorynlp_tsv / f"EMORY_{stem}.txt", split, "emorynlp")
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
