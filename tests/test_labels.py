import pytest

from erc.data import DataError, canonical_label, label_set, sentiment_of


def test_label_orders_are_fixed_and_documented():
    assert label_set("meld") == ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]
    assert label_set("emorynlp") == ["neutral", "joyful", "peaceful", "powerful", "scared", "mad", "sad"]
    assert label_set("iemocap") == ["neutral", "happy", "sad", "angry", "excited", "frustrated"]


@pytest.mark.parametrize("benchmark,raw,expected", [
    ("emorynlp", "Joyful", "joyful"), ("emorynlp", "Mad", "mad"), ("iemocap", "hap", "happy"),
    ("iemocap", "exc", "excited"), ("iemocap", "FRU", "frustrated"), ("meld", " Sadness ", "sadness"),
])
def test_spellings_map_to_canonical_names(benchmark, raw, expected):
    assert canonical_label(benchmark, raw) == expected


def test_unknown_label_lists_the_valid_ones():
    with pytest.raises(DataError) as err:
        canonical_label("meld", "happy", "x.csv: line 3")
    message = str(err.value)
    assert "x.csv: line 3" in message and "'happy'" in message
    assert "neutral, joy, surprise, anger, sadness, disgust, fear" in message


def test_every_label_has_a_sentiment_group():
    for benchmark in ("meld", "emorynlp", "iemocap"):
        groups = {sentiment_of(benchmark, label) for label in label_set(benchmark)}
        assert groups <= {"positive", "negative", "neutral"}
    assert sentiment_of("meld", "surprise") == "neutral"
    assert sentiment_of("iemocap", "excited") == "positive"


def test_unknown_benchmark_is_a_clear_error():
    with pytest.raises(DataError, match="valid: meld, emorynlp, iemocap"):
        label_set("dailydialog")
