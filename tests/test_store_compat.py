"""Stores written before the LLM layer (erc/llm) existed stay resumable: ``tests/fixtures/stores/`` holds the request
stores of generate.py runs made with the code of e0d331a (how: its README.md). Rerun with the same settings against
the same servers, they send no request, generation's or the judge's, and give the set those answers make."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from omegaconf import DictConfig

from erc.data.labels import label_set
from erc.pipeline import generate

from helpers.config import compose_config
from helpers.generation import read_jsonl
from helpers.judge import GeneratorAndJudge
from helpers.loopback_openai import LoopbackOpenAI
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

STORES = Path(__file__).parent / "fixtures" / "stores"


def restore(store: str, tmp_path: Path) -> Path:
    """The fixture's files copied to the out_dir a run with ``paths.data_dir=tmp_path/data`` writes."""
    folder = tmp_path / "data" / "synthetic" / "iemocap_nat"
    shutil.copytree(STORES / store, folder, ignore=shutil.ignore_patterns("README.md"))
    return folder


def make_cfg(tmp_path: Path, *overrides: str) -> DictConfig:
    """The settings the fixtures were made with."""
    return compose_config("generate", ["benchmark=iemocap", "seed=7", f"paths.data_dir={tmp_path}/data",
                                       "quality.enabled=false", "n_dialogues=6", *overrides])


def test_a_tgi_store_and_its_judge_store_resume_with_no_request(tmp_path) -> None:
    folder = restore("tgi_judge", tmp_path)
    stored = read_jsonl(folder / "requests.jsonl")
    judged = read_jsonl(folder / "judge" / "requests.jsonl")
    with LoopbackTGI(GeneratorAndJudge()) as server:
        generate(make_cfg(tmp_path, "llm=tgi", f"llm.url={server.url}", "judge=llm"))
        assert server.requests == []
    accepted = {r["dialogue"] for r in stored if r["status"] == "accepted"}
    kept = read_jsonl(folder / "dialogues.jsonl")
    assert 0 < len(kept) <= len(accepted)
    assert read_jsonl(folder / "requests.jsonl") == stored and read_jsonl(folder / "judge" / "requests.jsonl") == judged
    card = json.loads((folder / "card.json").read_text())
    assert card["judge"]["dialogues"]["unjudged"] == 0 and card["judge"]["requests"] == len(judged)


def test_an_openai_chat_store_resumes_with_no_request(tmp_path) -> None:
    folder = restore("openai_chat", tmp_path)
    stored = read_jsonl(folder / "requests.jsonl")
    with LoopbackOpenAI(ScriptedDialogues(label_set("iemocap"))) as server:
        generate(make_cfg(tmp_path, "llm=openai", "llm.route=chat", f"llm.url={server.v1}", "n_dialogues=4"))
        assert server.requests == []
    assert read_jsonl(folder / "requests.jsonl") == stored
    assert read_jsonl(folder / "dialogues.jsonl")
