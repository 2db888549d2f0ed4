"""MELD CSV loader, on the real files and on small broken copies written by the tests."""

from collections import Counter

import pytest

from erc.data import DataError, load_benchmark
from erc.data.formats.meld_csv import read_meld_csv

# Published counts (declare-lab/MELD README).
PUBLISHED = {
    "train": (1038, 9989, {"anger": 1109, "disgust": 271, "fear": 268, "joy": 1743, "neutral": 4710,
                           "sadness": 683, "surprise": 1205}),
    "dev": (114, 1109, {"anger": 153, "disgust": 22, "fear": 40, "joy": 163, "neutral": 470,
                        "sadness": 111, "surprise": 150}),
    "test": (280, 2610, {"anger": 345, "disgust": 68, "fear": 50, "joy": 402, "neutral": 1256,
                         "sadness": 208, "surprise": 281}),
}
HEADER = "Sr No.,Utterance,Speaker,Emotion,Sentiment,Dialogue_ID,Utterance_ID,Season,Episode,StartTime,EndTime\n"


@pytest.mark.parametrize("split", ["train", "dev", "test"])
def test_real_meld_matches_published_counts(benchmark_data, split):
    dialogues = load_benchmark("meld", split, benchmark_data)
    n_dialogues, n_utterances, labels = PUBLISHED[split]
    assert len(dialogues) == n_dialogues
    assert sum(len(d) for d in dialogues) == n_utterances
    assert Counter(u.label for d in dialogues for u in d.utterances) == labels
    assert all(d.source == "org" and d.split == split and d.benchmark == "meld" for d in dialogues)


def test_real_meld_keys_and_text(benchmark_data):
    train = load_benchmark("meld", "train", benchmark_data)
    ids = {d.id for d in train}
    assert "train_dia60" not in ids and "train_dia59" in ids and "train_dia61" in ids
    first = train[0].utterances[0]
    assert first.text == "also I was the point person on my company's transition from the KL-5 to GR-6 system."
    assert first.speaker == "Chandler" and first.sentiment == "neutral" and first.id == "dia0_utt0"
    assert not any("\u2019" in u.text for d in train for u in d.utterances)
    sentiments = Counter(u.sentiment for d in train for u in d.utterances if u.label == "surprise")
    assert sentiments == {"negative": 614, "positive": 591}


def _write(tmp_path, body: str, name: str = "train_sent_emo.csv"):
    path = tmp_path / name
    path.write_text(HEADER + body, encoding="utf-8")
    return path


def test_rows_are_ordered_by_integer_ids_not_file_order(tmp_path):
    path = _write(tmp_path, (
        '7,ten,B,joy,positive,1,10,1,1,"0:0:0,0","0:0:0,0"\n'
        '7,two,A,neutral,neutral,1,2,1,1,"0:0:0,0","0:0:0,0"\n'
        '1,zero,A,fear,negative,0,0,1,1,"0:0:0,0","0:0:0,0"\n'
    ))
    dialogues = read_meld_csv(path, "train")
    assert [d.id for d in dialogues] == ["train_dia0", "train_dia1"]
    assert [u.text for u in dialogues[1].utterances] == ["two", "ten"]


def test_old_copies_with_cp1252_mojibake_are_repaired(tmp_path):
    path = _write(tmp_path, '1,You must\x92ve had â€œfunâ€\x9d,Ross,joy,positive,0,0,1,1,"0","0"\n')
    assert read_meld_csv(path, "train")[0].utterances[0].text == 'You must\'ve had "fun"'


@pytest.mark.parametrize("row,field", [
    ('1,Hi,Ross,happy,positive,0,0,1,1,"0","0"\n', "'Emotion'"),
    ('1,Hi,Ross,joy,great,0,0,1,1,"0","0"\n', "'Sentiment'"),
    ('1,Hi,Ross,joy,positive,zero,0,1,1,"0","0"\n', "'Dialogue_ID'"),
    ('1,Hi,Ross,joy,positive,0\n', "wrong number of fields"),
])
def test_malformed_rows_name_file_line_and_field(tmp_path, row, field):
    first = '1,Fine,Ross,joy,positive,0,0,1,1,"0","0"\n'
    path = _write(tmp_path, first + row.replace(",0,0,1,1", ",0,1,1,1", 1))
    with pytest.raises(DataError) as err:
        read_meld_csv(path, "train")
    assert str(path) in str(err.value) and "line 3" in str(err.value) and field in str(err.value)


def test_duplicate_keys_are_an_error(tmp_path):
    row = '1,Hi,Ross,joy,positive,0,0,1,1,"0","0"\n'
    with pytest.raises(DataError, match="line 3: duplicate"):
        read_meld_csv(_write(tmp_path, row + row), "train")
