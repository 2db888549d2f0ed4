"""Hub-ready sets (erc/postprocess/hub.py, erc/publish.py, docs/publishing.md): a freshly generated set's README
parses as a Hugging Face dataset card with its metadata, the real ``datasets`` loads the set's folder offline with
train, validation and test and the benchmark's label names in its class order (the same dialogues and labels as
erc's own loader), and ``python -m erc.publish`` lists what it would upload (the raw answers only when asked, no
server address), refuses ``--push`` without ``HF_TOKEN`` in one line, and pushes through huggingface_hub to a
loopback server standing in for the Hub (a token it refuses: one line). One set, generated once against a loopback
TGI server, serves them all."""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from huggingface_hub import DatasetCard

from erc.data.formats.synthetic_jsonl import read_dialogues_jsonl
from erc.data.labels import label_set
from erc.paths import PROJECT_ROOT
from erc.pipeline import generate
from erc.publish import main, plan

from helpers.generation import make_cfg, out_dir
from helpers.loopback_hub import LoopbackHub
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

LABELS = label_set("iemocap")


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A natural IEMOCAP-labelled set of 12 slots, its optional steps left out."""
    tmp = tmp_path_factory.mktemp("hub")
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp, server.url, "n_dialogues=12", "judge=none", "postprocess.steps.quality=null",
                          "postprocess.steps.label_plot=null"))
    return out_dir(tmp)


def test_the_readme_is_a_dataset_card_with_the_hubs_metadata(folder: Path) -> None:
    card = json.loads((folder / "card.json").read_text())
    data = DatasetCard.load(folder / "README.md").data.to_dict()
    assert data["license"] == "llama2"   # the loopback server names Vicuna, a Llama 2 fine-tune
    assert data["language"] == ["en"] and data["task_categories"] == ["text-classification"]
    assert data["size_categories"] == ["n<1K"] and data["source_datasets"] == ["original"]
    assert data["pretty_name"].startswith("iemocap_nat: ") and "IEMOCAP" in data["pretty_name"]
    assert data["configs"] == [{"config_name": "default", "data_files": [
        {"split": "train", "path": "train.jsonl"}, {"split": "validation", "path": "dev.jsonl"},
        {"split": "test", "path": "test.jsonl"}]}]
    utterance = next(f for f in data["dataset_info"]["features"] if f["name"] == "utterances")["list"]
    names = next(f for f in utterance if f["name"] == "label")["dtype"]["class_label"]["names"]
    assert [names[str(i)] for i in range(len(names))] == LABELS
    assert all(card["counts"]["dialogues"][s] for s in ("train", "dev", "test"))   # so each split is in configs


def test_datasets_loads_the_folder_offline_with_the_benchmarks_labels(folder: Path, tmp_path: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_DATASETS_OFFLINE", "1")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    import datasets
    import huggingface_hub.constants

    # what the variables set when read at import (datasets may be imported already: sentence-transformers does)
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    loaded = datasets.load_dataset(str(folder), cache_dir=str(tmp_path / "cache"))
    assert list(loaded) == ["train", "validation", "test"]
    label = loaded["train"].features["utterances"].feature["label"]
    assert label.names == LABELS
    for split, ours in (("train", "train"), ("validation", "dev"), ("test", "test")):
        expected = read_dialogues_jsonl(folder / f"{ours}.jsonl", "iemocap", ours, "nat")
        rows = loaded[split]
        assert rows["id"] == [d.id for d in expected]
        assert [[label.int2str(u["label"]) for u in row] for row in rows["utterances"]] == \
               [[u.label for u in d.utterances] for d in expected]
        assert [[u["text"] for u in row] for row in rows["utterances"]] == [[u.text for u in d.utterances]
                                                                           for d in expected]
        assert [json.loads(m)["seed"] for m in rows["meta"]] == [d.meta["seed"] for d in expected]


def test_the_dry_run_lists_what_would_go_up_and_the_raw_answers_only_when_asked(folder: Path, capsys) -> None:
    main([str(folder), "--repo", "someone/iemocap-nat"])
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines() if line.startswith("  ")]
    assert listed == ["train.jsonl", "dev.jsonl", "test.jsonl", "prompt/natural.txt", "card.json", "README.md",
                      "provenance.json"]
    main([str(folder), "--repo", "someone/iemocap-nat", "--include-raw"])
    assert "requests.jsonl" in [line.split()[0] for line in capsys.readouterr().out.splitlines()
                                if line.startswith("  ")]
    uploads = {u.path: u.data for u in plan(folder, include_raw=True)}
    assert not any(b"127.0.0.1" in data for data in uploads.values())   # the server's address stays home
    assert len(uploads["requests.jsonl"].splitlines()) == len((folder / "requests.jsonl").read_text().splitlines())


def test_the_provenance_file_says_how_the_set_was_made(folder: Path) -> None:
    card = json.loads((folder / "card.json").read_text())
    uploads = {u.path: u.data for u in plan(folder)}
    record = json.loads(uploads["provenance.json"])
    assert (record["model"], record["backend"], record["server"]["server"]) == \
           ("loopback/vicuna-13b-v1.5", "tgi", "text-generation-inference")
    assert record["sampling"]["sent"] == card["generator"]["parameters_sent"]
    assert record["sampling"]["not_honoured"] == card["generator"]["not_honoured"]
    assert record["template"] == {"file": "prompt/natural.txt", "hash": card["generator"]["template"]["hash"],
                                  "reconstruction": True}
    assert record["seeds"]["base_seed"] == 7 and record["counts"] == card["counts"]
    assert record["code_version"].startswith(("git ", "erc "))
    assert record["tokens"] == card.get("tokens") and record["contamination"] == card.get("contamination")
    assert record["files"] == {p: hashlib.sha256(d).hexdigest() for p, d in uploads.items() if p != "provenance.json"}



def publish(folder: Path, tmp_path: Path, *args: str, **env: str) -> subprocess.CompletedProcess:
    """``python -m erc.publish <folder> *args`` with ``env`` added (HF_TOKEN only where given), huggingface_hub's
    files under ``tmp_path``."""
    base = {k: v for k, v in os.environ.items() if k != "HF_TOKEN"}
    return subprocess.run([sys.executable, "-m", "erc.publish", str(folder), *args], cwd=PROJECT_ROOT,
                          env={**base, "HF_HOME": str(tmp_path / "hf"), **env}, capture_output=True, text=True,
                          timeout=120)


def test_push_without_hf_token_refuses_in_one_line(folder: Path, tmp_path: Path) -> None:
    done = publish(folder, tmp_path, "--repo", "someone/x", "--push")
    assert done.returncode == 2
    assert done.stderr.splitlines() == [done.stderr.strip()] and "HF_TOKEN" in done.stderr


def test_push_uploads_the_planned_files_with_the_token_from_the_environment(folder: Path, tmp_path: Path) -> None:
    token = "hf_loopback0123456789"
    with LoopbackHub(token) as hub:
        done = publish(folder, tmp_path, "--repo", "someone/iemocap-nat", "--push", "--include-raw",
                       HF_ENDPOINT=hub.url, HF_TOKEN=token)
    assert done.returncode == 0, done.stderr
    assert hub.created == [{"name": "iemocap-nat", "organization": "someone", "type": "dataset",
                            "visibility": "public"}]
    planned = {u.path: u.data for u in plan(folder, include_raw=True)}
    pushed = hub.files["someone/iemocap-nat"]
    assert pushed.keys() == planned.keys()
    assert {p: d for p, d in pushed.items() if p != "provenance.json"} == \
           {p: d for p, d in planned.items() if p != "provenance.json"}
    assert json.loads(pushed["provenance.json"])["files"] == json.loads(planned["provenance.json"])["files"]
    assert hub.unknown == [] and {f"Bearer {token}"} <= set(hub.authorizations)
    assert token not in done.stdout + done.stderr


def test_a_token_the_hub_refuses_is_one_line(folder: Path, tmp_path: Path) -> None:
    with LoopbackHub("hf_the_right_one") as hub:
        done = publish(folder, tmp_path, "--repo", "someone/x", "--push", HF_ENDPOINT=hub.url,
                       HF_TOKEN="hf_a_wrong_one")
    assert done.returncode == 2 and done.stderr.splitlines() == [done.stderr.strip()]
    assert "401" in done.stderr and "HF_TOKEN" in done.stderr and "hf_a_wrong_one" not in done.stderr
    assert hub.files == {}
