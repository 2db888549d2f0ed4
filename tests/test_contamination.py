"""Test-set leakage (erc/data/contamination.py, erc/postprocess/decontaminate.py): real MELD train written as a
generated set shows (nearly) no test line; planted long test lines are every one reported, and decontamination
removes the dialogues carrying them and no others; generate.py records the check in the card and README and lists
what it removed in removed.jsonl; bad settings are refused before any request."""

from __future__ import annotations

import json
import random
from dataclasses import replace
from pathlib import Path

import pytest

from erc.data.contamination import BenchmarkLines, load_benchmark_lines, words
from erc.data.labels import label_set
from erc.data.load import load_benchmark
from erc.data.schema import SPLITS
from erc.errors import ConfigError
from erc.llm.sampling import derive_seed
from erc.pipeline import generate
from erc.postprocess.decontaminate import decontaminate

from helpers.config import compose_config
from helpers.generation import SEED, expected_slots, make_cfg, out_dir, read_jsonl
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

LABELS = label_set("iemocap")


def test_words_normalise_case_punctuation_apostrophes_and_spelled_words() -> None:
    assert words("Don't   you DARE, Ross!!") == words("dont you dare ross") == ["dont", "you", "dare", "ross"]
    assert words("It’s Mac and C.H.E.E.S.E.!") == ["its", "mac", "and", "cheese"]


@pytest.fixture(scope="module")
def meld(benchmark_data: Path) -> dict[str, list]:
    return {split: load_benchmark("meld", split, benchmark_data) for split in SPLITS}


def test_real_meld_train_shows_nearly_no_test_line_and_every_planted_one(meld, benchmark_data: Path) -> None:
    lines = BenchmarkLines(meld, min_words=6, ngram=8)
    train = meld["train"]
    natural = lines.check(train)
    leaks = natural.summary()["splits"]
    long_enough = sum(len(words(u.text)) >= 6 for d in train for u in d.utterances)
    assert leaks["train"]["utterances"] == long_enough     # train against itself: every specific line, no other
    assert 0 < leaks["test"]["utterances"] <= 20 and leaks["dev"]["utterances"] <= 10   # of 9,989 utterances

    rng = random.Random(0)
    long_lines = [u for d in meld["test"] for u in d.utterances if len(words(u.text)) >= 10]
    naturally = set(natural.matches(["dev", "test"]))
    hosts = rng.sample([i for i, d in enumerate(train) if d.id not in naturally], 25)
    planted = {}
    for host, line in zip(hosts, rng.sample(long_lines, 25), strict=True):
        turn = rng.randrange(len(train[host]))
        text = line.text if turn % 2 else f"Well, {line.text.lower()} Right?"   # whole, or inside a longer line
        utterances = list(train[host].utterances)
        utterances[turn] = replace(utterances[turn], text=text)
        train[host] = replace(train[host], utterances=utterances)
        planted[train[host].id] = (turn, line.id)
    found = {(m.dialogue, m.turn): m for m in lines.check(train).found if m.split == "test"}
    for dialogue, (turn, line_id) in planted.items():
        assert found[dialogue, turn].benchmark_id == line_id

    cfg = compose_config("generate", ["benchmark=meld", f"paths.data_dir={benchmark_data}", "out_dir=/nonexistent"])
    clean = decontaminate(cfg, train)
    removed = {r["id"] for r in clean.removed}
    assert removed == set(planted) | naturally                       # those dialogues and no others
    assert [d.id for d in clean.kept] == [d.id for d in train if d.id not in removed]
    assert clean.entry["removed"] == len(removed) and clean.entry["decontaminate"] == ["dev", "test"]
    assert all(r["match"]["split"] in ("dev", "test") for r in clean.removed)


def _tsv(dialogues: list[list[tuple[str, str, str]]]) -> str:
    return "\n".join("".join(f"{s}\t{t}\t{label}\n" for s, t, label in d) for d in dialogues)


def _iemocap_with(tmp_path: Path, test_line: str, train_line: str) -> None:
    """A small IEMOCAP TSV copy whose test split holds ``test_line`` and train split ``train_line``."""
    folder = tmp_path / "data" / "iemocap"
    folder.mkdir(parents=True)
    filler = [("Male", "Hello there.", "neutral"), ("Female", "Hi.", "happy")]
    for split, line in (("train", train_line), ("dev", "Nothing to see here at all today."), ("test", test_line)):
        (folder / f"iemocap_{split}.txt").write_text(_tsv([filler, [("Female", line, "sad"), *filler]]))


def _scripted_texts(n: int) -> dict[int, list[str]]:
    """slot -> the utterances of its accepted dialogue, as the script writes them."""
    script = ScriptedDialogues(LABELS)
    return {slot: [t for _, t, _ in script.turns_for(derive_seed(SEED, slot, attempt), None)]
            for slot, attempt in expected_slots(n, 3, balanced=False).items()}


def test_generate_removes_the_dialogue_with_a_test_line_and_says_so(tmp_path: Path) -> None:
    texts = _scripted_texts(8)
    leaked_slot, train_slot = sorted(texts)[:2]
    _iemocap_with(tmp_path, test_line=texts[leaked_slot][2], train_line=texts[train_slot][0].upper())
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=8", "quality.enabled=false"))
    folder = out_dir(tmp_path)
    leaked = f"iemocap_nat_{leaked_slot:06d}"
    removed = read_jsonl(folder / "removed.jsonl")
    assert [(r["id"], r["match"]["split"], r["match"]["turn"], r["match"]["how"]) for r in removed] == [
        (leaked, "test", 2, "exact")]
    assert removed[0]["match"]["matched"] == texts[leaked_slot][2]
    kept = [d["id"] for s in SPLITS for d in read_jsonl(folder / f"{s}.jsonl")]
    assert leaked not in kept and f"iemocap_nat_{train_slot:06d}" in kept and len(kept) == len(texts) - 1
    card = json.loads((folder / "card.json").read_text())
    entry = card["contamination"]
    assert entry["splits"]["test"]["utterances"] == 1 and entry["splits"]["dev"]["utterances"] == 0
    assert entry["splits"]["train"]["utterances"] == 1 and entry["splits"]["train"]["exact"] == 1
    assert entry["removed"] == card["counts"]["decontaminated"] == 1
    readme = (folder / "README.md").read_text()
    assert "Contamination" in readme and "removed 1 dialogue(s)" in readme and texts[leaked_slot][2] in readme
    assert texts[train_slot][0].upper() not in json.dumps(card)  # the benchmark's text stays out of what is published
    assert all("matched" not in e for e in entry["splits"]["test"]["examples"])

    # decontamination off: the same matches counted, nothing removed, the stale removed.jsonl gone
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=8", "quality.enabled=false",
                          "postprocess.decontaminate=[]"))
        assert not server.requests                                      # post-processing only
    card = json.loads((folder / "card.json").read_text())
    assert card["contamination"]["splits"]["test"]["utterances"] == 1 and card["counts"]["decontaminated"] == 0
    assert not (folder / "removed.jsonl").exists()
    assert leaked in [d["id"] for s in SPLITS for d in read_jsonl(folder / f"{s}.jsonl")]


def test_without_the_benchmark_the_card_says_the_check_was_skipped(tmp_path: Path) -> None:
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=4", "quality.enabled=false"))
    card = json.loads((out_dir(tmp_path) / "card.json").read_text())
    assert "iemocap" in card["contamination"]["skipped"] and card["counts"]["decontaminated"] == 0
    assert "has not been checked" in (out_dir(tmp_path) / "README.md").read_text()


@pytest.mark.parametrize(("override", "key"), [
    ("postprocess.decontaminate=[test,holdout]", "postprocess.decontaminate"),
    ("~contamination", "postprocess.decontaminate"),
    ("contamination.ngram=0", "contamination.ngram"),
    ("contamination.near_threshold=1.5", "contamination.near_threshold"),
])
def test_bad_settings_are_refused_before_any_request(tmp_path: Path, override: str, key: str) -> None:
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        with pytest.raises(ConfigError, match=key.replace(".", r"\.")):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=2", override))
        assert not server.requests


def test_meld_index_builds_from_the_data_folder(benchmark_data: Path) -> None:
    lines = load_benchmark_lines("meld", benchmark_data, min_words=6, ngram=8)
    test_line = next(u.text for d in load_benchmark("meld", "test", benchmark_data) for u in d.utterances
                     if len(words(u.text)) >= 12)
    assert "test" in lines.exact[" ".join(words(test_line))]
