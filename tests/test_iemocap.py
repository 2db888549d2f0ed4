"""IEMOCAP loaders on fixtures written here (IEMOCAP itself may not be redistributed)."""

from collections import Counter

import pytest

from erc.data import DataError, load_benchmark, load_benchmark_with_report


def _release_tree(root, sessions=(1, 2, 3, 4, 5), per_session=3):
    """A miniature release tree: ``per_session`` dialogues per session, turns written out of time
    order, with labels outside the 6-way set and an un-evaluated overlap turn."""
    for s in sessions:
        for d in range(per_session):
            name = f"Ses0{s}F_impro0{d + 1}"
            transcripts = root / f"Session{s}" / "dialog" / "transcriptions"
            evaluations = root / f"Session{s}" / "dialog" / "EmoEvaluation"
            transcripts.mkdir(parents=True, exist_ok=True)
            evaluations.mkdir(parents=True, exist_ok=True)
            (transcripts / f"{name}.txt").write_text(
                f"{name}_M000 [010.0000-011.0000]: Second line.\n"
                f"{name}_F000 [001.5000-003.2500]: Excuse me.\n"
                f"{name}_MXX0 [011.5000-012.0000]: [LAUGHTER]\n"
                f"{name}_F001 [012.0000-013.0000]: Nobody agreed on this.\n"
                f"{name}_M001 [014.0000-015.0000]: What a surprise!\n"
            )
            (evaluations / f"{name}.txt").write_text(
                "% [START_TIME - END_TIME] TURN_NAME EMOTION [V, A, D]\n\n"
                f"[1.5000 - 3.2500]\t{name}_F000\tneu\t[2.5000, 2.5000, 2.5000]\n"
                "C-E2:\tNeutral state;\t()\n\n"
                f"[10.0000 - 11.0000]\t{name}_M000\tfru\t[2.0000, 3.0000, 3.0000]\n\n"
                f"[12.0000 - 13.0000]\t{name}_F001\txxx\t[2.0000, 3.0000, 3.0000]\n\n"
                f"[14.0000 - 15.0000]\t{name}_M001\tsur\t[3.0000, 3.0000, 3.0000]\n"
            )
    return root


def test_release_tree_splits_labels_and_order(tmp_path):
    _release_tree(tmp_path / "iemocap", per_session=5)  # 20 train/dev dialogues -> every 10th is dev
    train, skipped = load_benchmark_with_report("iemocap", "train", tmp_path)
    dev = load_benchmark("iemocap", "dev", tmp_path)
    test = load_benchmark("iemocap", "test", tmp_path)
    assert (len(train), len(dev), len(test)) == (18, 2, 5)
    assert all(d.id.startswith("Ses05") for d in test)
    assert not any(d.id.startswith("Ses05") for d in train + dev)
    assert [d.id for d in dev] == ["Ses02F_impro05", "Ses04F_impro05"]
    first = train[0]
    assert [(u.speaker, u.text, u.label) for u in first.utterances] == [
        ("F", "Excuse me.", "neutral"), ("M", "Second line.", "frustrated")]
    assert skipped == Counter({"xxx": 18, "sur": 18, "unlabelled": 18})


def test_tsv_copy_with_header_four_field_line_and_skipped_labels(tmp_path):
    folder = tmp_path / "iemocap"
    folder.mkdir()
    (folder / "iemocap_train.txt").write_text(
        "F\tExcuse me.\tneu\nM\tDo you have your forms?\tfru\nF\tpart one\tpart two\txxx\n"
        "\nM\tYeah.\thap\nF\tGreat!\texc\nM\tHm.\tsur\n"
    )
    (folder / "iemocap_test.txt").write_text("Speaker\tUtterance\tEmotion\nF\tHello\tang\tnonsense\tsad\n")
    train, skipped = load_benchmark_with_report("iemocap", "train", tmp_path)
    assert [[u.label for u in d.utterances] for d in train] == [["neutral", "frustrated"], ["happy", "excited"]]
    assert skipped == {"xxx": 1, "sur": 1}
    test = load_benchmark("iemocap", "test", tmp_path)
    assert [(u.speaker, u.text, u.label) for u in test[0].utterances] == [("F", "Hello ang nonsense", "sad")]


def test_unknown_label_in_tsv_names_file_and_line(tmp_path):
    folder = tmp_path / "iemocap" / "tsv"
    folder.mkdir(parents=True)
    (folder / "iemocap_dev.txt").write_text("F\tHi\tneu\nM\tHo\tjoy\n")
    with pytest.raises(DataError, match=r"iemocap_dev.txt: line 2: field 'label': unknown iemocap label 'joy'"):
        load_benchmark("iemocap", "dev", tmp_path)


def test_missing_iemocap_says_how_to_obtain_it(tmp_path):
    with pytest.raises(DataError) as err:
        load_benchmark("iemocap", "train", tmp_path)
    message = str(err.value)
    assert "iemocap_release" in message and "erc_tsv" in message and "USC SAIL" in message
