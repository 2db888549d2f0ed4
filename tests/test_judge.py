"""The blind LLM judge against the loopback TGI server: its prompt never shows the generated labels, its answers
are re-asked when they have the wrong count, its figures move the way they should (perfect agreement: kappa 1,
permuted labels: about 0), a rerun asks nothing twice, postprocess_only asks nothing, SIGKILL mid-judging loses at
most the requests in flight, the filter writes a trainable set, and bad settings are refused naming the key."""

from __future__ import annotations

import json
import random
import re
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
import yaml
from hydra import compose, initialize_config_dir
from hydra.errors import ConfigCompositionException

from erc.data import Dialogue, Utterance, load_benchmark
from erc.errors import ConfigError
from erc.judge.agreement import agreement
from erc.judge.checks import check_judge_config, judge_llm_config
from erc.judge.prompt import parse_answer
from erc.llm.templates import label_options
from erc.paths import CONFIG_DIR, PROJECT_ROOT
from erc.pipeline import PostprocessError, generate

from helpers.generation import SEED, kill_once_written, out_dir, read_jsonl
from helpers.judge import LABELS, GeneratorAndJudge, judge_requests, make_cfg
from helpers.loopback_tgi import LoopbackTGI


def kept_dialogues(tmp_path: Path) -> list[dict]:
    return read_jsonl(out_dir(tmp_path) / "dialogues.jsonl")


# ---- figures and parsing ------------------------------------------------------------------------------------
def _dialogues(n: int, seed: int = 0) -> list[Dialogue]:
    rng = random.Random(seed)
    return [Dialogue(id=f"d{i}", benchmark="iemocap", split="train", source="nat",
                     utterances=[Utterance(speaker="A", text=f"u{i}.{t}", label=rng.choice(LABELS))
                                 for t in range(6)]) for i in range(n)]


def test_perfect_agreement_is_kappa_1_and_permuted_labels_about_0() -> None:
    dialogues = _dialogues(200)
    perfect = agreement(dialogues, {d.id: [u.label for u in d.utterances] for d in dialogues}, LABELS)
    assert perfect["accuracy"] == 1.0 and perfect["kappa"] == 1.0
    assert all(f["precision"] == f["recall"] == 1.0 for f in perfect["per_label"].values())
    shuffled = [u.label for d in dialogues for u in d.utterances]
    random.Random(1).shuffle(shuffled)
    judged = {d.id: shuffled[6 * i:6 * i + 6] for i, d in enumerate(dialogues)}
    permuted = agreement(dialogues, judged, LABELS)
    assert abs(permuted["kappa"]) < 0.06 and permuted["accuracy"] < 0.25
    counts = permuted["confusion"]["counts"]
    assert sum(map(sum, counts)) == 1200 == permuted["utterances"]
    # unjudged dialogues are counted as such and left out of the figures
    half = agreement(dialogues, dict(list(judged.items())[:50]), LABELS)
    assert half["dialogues"] == {"judged": 50, "unjudged": 150} and half["utterances"] == 300


def test_the_judges_figures_are_sklearns_with_the_generated_label_as_truth() -> None:
    """The confusion (rows generated, columns judged), accuracy, kappa and each label's precision and recall
    equal scikit-learn's on the judged utterances, with the generated label as y_true; unjudged dialogues count
    for nothing. A judge biased towards one label makes every per-label figure differ from its transpose."""
    from sklearn.metrics import accuracy_score, cohen_kappa_score, confusion_matrix, precision_recall_fscore_support

    dialogues = _dialogues(60, seed=3)
    rng = random.Random(4)
    judged = {d.id: [u.label if rng.random() < 0.5 else rng.choice(LABELS[:2]) for u in d.utterances]
              for d in dialogues[:50]}
    figures = agreement(dialogues, judged, LABELS)
    truth = [u.label for d in dialogues[:50] for u in d.utterances]
    answer = [label for d in dialogues[:50] for label in judged[d.id]]
    assert figures["confusion"]["counts"] == confusion_matrix(truth, answer, labels=LABELS).tolist()
    assert figures["accuracy"] == round(accuracy_score(truth, answer), 4)
    assert figures["kappa"] == round(cohen_kappa_score(truth, answer, labels=LABELS), 4)
    precision, recall, _, support = precision_recall_fscore_support(truth, answer, labels=LABELS, zero_division=0)
    for i, label in enumerate(LABELS):
        mine = figures["per_label"][label]
        assert (mine["precision"], mine["recall"]) == (round(precision[i], 4), round(recall[i], 4)), label
        assert mine["generated"] == support[i] and mine["judged"] == answer.count(label)
    assert any(round(precision[i], 4) != round(recall[i], 4) for i in range(len(LABELS)))
    # one label on both sides: kappa is undefined (None), not sklearn's nan
    same = [Dialogue(id="s", benchmark="iemocap", split="train", source="nat",
                     utterances=[Utterance(speaker="A", text="x", label=LABELS[0])] * 3)]
    single = agreement(same, {"s": [LABELS[0]] * 3}, LABELS)
    assert single["accuracy"] == 1.0 and single["kappa"] is None


def test_the_filter_keeps_dialogues_at_the_threshold_and_removes_the_unjudged(tmp_path) -> None:
    """min_agreement is inclusive (3 of 6 utterances agreeing passes 0.5); a dialogue below it, or without a judge
    answer, is removed and listed with its reason."""
    from erc.judge.filter import judge_filter

    dialogues = [replace(d, split=split) for d, split in zip(_dialogues(4), ("train", "dev", "train", "test"),
                                                               strict=True)]

    def agreeing(dialogue: Dialogue, n: int) -> list[str]:
        """The judge agreeing on the first ``n`` utterances and giving another label to the rest."""
        return [u.label if t < n else next(x for x in LABELS if x != u.label)
                for t, u in enumerate(dialogue.utterances)]
    judged = {"d0": agreeing(dialogues[0], 3), "d1": agreeing(dialogues[1], 2), "d2": agreeing(dialogues[2], 6)}
    folder, kept, entry = judge_filter(tmp_path / "iemocap_nat", "iemocap_nat", dialogues, judged, 0.5)
    assert [d.id for d in kept] == ["d0", "d2"] and {d.source for d in kept} == {"nat_judge"}
    removed = {r["id"]: r for r in read_jsonl(folder / "removed.jsonl")}
    assert removed.keys() == {"d1", "d3"}
    assert (removed["d1"]["reason"], removed["d1"]["agreement"]) == ("disagreement", round(2 / 6, 4))
    assert (removed["d3"]["reason"], removed["d3"]["agreement"]) == ("unjudged", None)
    assert entry["dialogues"] == {"before": 4, "kept": 2, "removed": 2, "unjudged": 1}
    assert entry["utterances"] == {"before": 24, "kept": 12}
    assert entry["removed_by_split"] == {"train": 0, "dev": 1, "test": 1}


def test_answers_are_parsed_tolerantly_and_a_wrong_count_is_refused() -> None:
    labels = ["neutral", "joy", "anger"]
    assert parse_answer('{"emotions": ["joy", "anger"]}', labels, 2) == (["joy", "anger"], None)
    assert parse_answer('Here: ```json\n{"Emotions": ["Joy", 3]}\n```', labels, 2) == (["joy", "anger"], None)
    assert parse_answer('["(2) joy", "1"]', labels, 2) == (["joy", "neutral"], None)
    assert parse_answer("1. joy\n2. neutral", labels, 2) == (["joy", "neutral"], None)
    assert parse_answer('{"emotions": ["joy"]}', labels, 2) == (None, "wrong_count")
    assert parse_answer('{"emotions": ["joy", "bliss"]}', labels, 2) == (None, "not_a_label")
    assert parse_answer("I cannot tell.", labels, 2) == (None, "no_answer")
    # one label too many is a wrong count as much as one too few, in JSON or as numbered lines
    assert parse_answer('{"emotions": ["joy", "anger", "joy"]}', labels, 2) == (None, "wrong_count")
    assert parse_answer("1. joy\n2. neutral\n3. anger", labels, 2) == (None, "wrong_count")
    # a number and a word that name different labels are no answer for either
    assert parse_answer('["(2) anger", "1"]', labels, 2) == (None, "not_a_label")
    assert parse_answer('["3: neutral", "1"]', labels, 2) == (None, "not_a_label")


def test_an_answer_names_labels_one_to_k_and_only_one_list() -> None:
    """A label's number runs from 1 to the number of labels, the last one included, as a JSON number or in text;
    0 is no label (not the last one counted from the end). An object holding several lists, none named emotions
    or labels, is no answer (which list would it be?); one unnamed list is read."""
    labels = ["neutral", "joy", "anger"]
    assert parse_answer('["3", "(3) anger"]', labels, 2) == (["anger", "anger"], None)
    assert parse_answer("[3, 1]", labels, 2) == (["anger", "neutral"], None)
    assert parse_answer("[0, 1]", labels, 2) == (None, "not_a_label")
    assert parse_answer("[4, 1]", labels, 2) == (None, "not_a_label")
    assert parse_answer('{"answer": ["joy", "anger"]}', labels, 2) == (["joy", "anger"], None)
    assert parse_answer('{"first": ["joy", "anger"], "second": ["neutral", "joy"]}', labels, 2) == (
        None, "no_answer")


def test_a_figure_over_nothing_is_none_not_zero() -> None:
    """Precision and recall of a label neither generated nor judged, and the accuracy of a set with no judged
    utterance, were never measured: None, as the module says (0.0 would read as a measured total failure)."""
    dialogues = [Dialogue(id="a", benchmark="iemocap", split="train", source="nat",
                          utterances=[Utterance("A", "x", LABELS[0]), Utterance("B", "y", LABELS[1])])]
    figures = agreement(dialogues, {"a": [LABELS[0], LABELS[0]]}, LABELS)
    assert figures["per_label"][LABELS[0]] == {"generated": 1, "judged": 2, "precision": 0.5, "recall": 1.0}
    assert figures["per_label"][LABELS[1]] == {"generated": 1, "judged": 0, "precision": None, "recall": 0.0}
    assert figures["per_label"][LABELS[2]] == {"generated": 0, "judged": 0, "precision": None, "recall": None}
    nothing = agreement(dialogues, {}, LABELS)
    assert nothing["utterances"] == 0 and nothing["accuracy"] is None and nothing["kappa"] is None


# ---- the judge in generate.py -------------------------------------------------------------------------------
def test_judge_blind_resumable_and_filtered_into_a_trainable_set(tmp_path) -> None:
    script = GeneratorAndJudge()
    with LoopbackTGI(script) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=24", "judge.filter=true", "judge.min_agreement=0.8"))
        kept = kept_dialogues(tmp_path)
        asked = judge_requests(server)
        assert kept and len(asked) >= len(kept)
        # blind: no judge prompt holds a generated label (as a word outside the options, or a line's "(n)")
        for prompt in script.judge_prompts:
            body = prompt.replace(label_options(LABELS), "")
            assert not re.search(r"\(\d+\)", body)
            assert not any(re.search(rf"\b{label}\b", body) for label in LABELS)
        records = read_jsonl(out_dir(tmp_path) / "judge" / "requests.jsonl")
        assert len(records) == len(asked) and len({r["fingerprint"] for r in records}) == len(records)
        answered = [r for r in records if r["status"] == "answered"]
        assert sorted(r["dialogue_id"] for r in answered) == sorted(d["id"] for d in kept)   # each judged once
        wrong = [r for r in records if r["reason"] == "wrong_count"]
        assert wrong and all(any(a["dialogue_id"] == r["dialogue_id"] and a["attempt"] > r["attempt"]
                                 for a in answered) for r in wrong)              # re-asked with the next seed
        assert {body["parameters"]["do_sample"] for body in asked} == {False}    # greedy
        assert {run["task"] for run in read_jsonl(out_dir(tmp_path) / "judge" / "runs.jsonl")} == {"judge"}
        # the card's figures are the script's
        card = json.loads((out_dir(tmp_path) / "card.json").read_text())
        disagree = {d["id"] for d in kept if script.disagrees(d["utterances"][0]["text"])}
        n_utterances = sum(len(d["utterances"]) for d in kept)
        wrong_utterances = sum(len(d["utterances"]) for d in kept if d["id"] in disagree)
        judge = card["judge"]
        assert judge["utterances"] == n_utterances and judge["dialogues"]["unjudged"] == 0
        assert judge["accuracy"] == pytest.approx(1 - wrong_utterances / n_utterances, abs=1e-4)
        assert judge["model"] == "loopback/vicuna-13b-v1.5" and judge["llm"]["backend"] == "tgi"
        assert (out_dir(tmp_path) / "judge_confusion.png").read_bytes()[:4] == b"\x89PNG"
        assert "Blind LLM judge" in (out_dir(tmp_path) / "README.md").read_text()

        # the filter's set: the dialogues the judge agrees with, trainable under its own name
        data = tmp_path / "data"
        filtered = [d for s in ("train", "dev", "test") for d in load_benchmark("iemocap_nat_judge", s, data)]
        assert {d.id for d in filtered} == {d["id"] for d in kept} - disagree
        assert {d.source for d in filtered} == {"nat_judge"}
        removed = read_jsonl(data / "synthetic" / "iemocap_nat_judge" / "removed.jsonl")
        assert {r["id"] for r in removed} == disagree and all(r["reason"] == "disagreement" for r in removed)
        filtered_card = json.loads((data / "synthetic" / "iemocap_nat_judge" / "card.json").read_text())
        assert filtered_card["filter"]["dialogues"]["removed"] == len(disagree)
        assert filtered_card["judge"]["accuracy"] == 1.0
        from erc.training.validation import check_data_axes

        with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
            train_cfg = compose("train", overrides=["data=iemocap_nat_judge", f"paths.data_dir={data}"])
        check_data_axes(train_cfg.data)
        assert train_cfg.data.pretrain == "iemocap_nat_judge"

        # a rerun asks nothing (generation or judge) and rewrites nothing; postprocess_only asks nothing either
        files = [p for p in out_dir(tmp_path).rglob("*") if p.is_file() and not p.name.startswith(".")]
        stamps = {p: p.stat().st_mtime_ns for p in files}
        before = len(server.requests)
        generate(make_cfg(tmp_path, server.url, "n_dialogues=24", "judge.filter=true"))
        generate(make_cfg(tmp_path, server.url, "n_dialogues=24", "judge.filter=true", "postprocess_only=true"))
        assert len(server.requests) == before
        assert {p: p.stat().st_mtime_ns for p in files if p.name != "runs.jsonl"} == \
            {p: s for p, s in stamps.items() if p.name != "runs.jsonl"}


def test_postprocess_only_never_asks_and_counts_the_unjudged(tmp_path, caplog) -> None:
    with LoopbackTGI(GeneratorAndJudge()) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6", "judge=none"))
        before = len(server.requests)
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6", "postprocess_only=true"))
        assert len(server.requests) == before
    card = json.loads((out_dir(tmp_path) / "card.json").read_text())
    kept = len(kept_dialogues(tmp_path))
    assert card["judge"]["dialogues"] == {"judged": 0, "unjudged": kept, "failed": 0}
    assert f"{kept} of {kept} dialogue(s) have no judge answer" in caplog.text


def test_changed_judge_settings_are_refused_not_mixed(tmp_path) -> None:
    """The judge's step fails naming its own settings; the set stays written and the card names the step."""
    with LoopbackTGI(GeneratorAndJudge()) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=4"))
        with pytest.raises(PostprocessError, match=r"judge: .*judge answer\(s\) made with other judge settings"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=4", "judge.seed=5"))
        with pytest.raises(PostprocessError, match="other judge settings"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=4", "judge.seed=5", "postprocess_only=true"))
    card = json.loads((out_dir(tmp_path) / "card.json").read_text())
    # the judge asks llm.* as composed here (judge.llm null): the message names what it reads
    assert "llm.*, judge.sampling, judge.template or judge.seed changed" in card["failed_steps"]["judge"]
    assert "judge" not in card and "Post-processing incomplete" in (out_dir(tmp_path) / "README.md").read_text()
    assert all((out_dir(tmp_path) / f"{split}.jsonl").is_file() for split in ("train", "dev", "test"))


def test_sigkill_mid_judging_then_rerun_judges_every_dialogue_once(tmp_path) -> None:
    """A real generate.py judging on 4 workers is killed; the rerun finishes with nothing lost or asked twice."""
    requests_path = out_dir(tmp_path) / "judge" / "requests.jsonl"
    command = [sys.executable, str(PROJECT_ROOT / "generate.py"), "llm=tgi", "benchmark=iemocap", "n_dialogues=30",
               f"seed={SEED}", "judge=llm", "llm@judge.llm=tgi", "judge.llm.url=${llm.url}",
               "judge.llm.concurrency=4", "quality.enabled=false",
               f"paths.data_dir={tmp_path}/data", f"hydra.run.dir={tmp_path}/hydra"]
    script = GeneratorAndJudge(judge_latency_s=0.05)
    with LoopbackTGI(script) as server:
        kill_once_written([*command, f"llm.url={server.url}"], requests_path, 8)
        answered_before_kill = len(judge_requests(server))
        before = read_jsonl(requests_path)
        with open(requests_path, "a") as handle:        # a crash in the middle of a write leaves a torn last line
            handle.write(json.dumps(before[-1])[:57])
        rerun = subprocess.run([*command, f"llm.url={server.url}"], cwd=PROJECT_ROOT, capture_output=True, text=True,
                               timeout=120)
        assert rerun.returncode == 0, rerun.stderr[-3000:]
        asked_again = [(b["inputs"], b["parameters"]["seed"]) for b in judge_requests(server)[answered_before_kill:]]
    after = read_jsonl(requests_path)
    assert after[:len(before)] == before                        # every record written before the kill is kept
    assert len({r["fingerprint"] for r in after}) == len(after)
    assert answered_before_kill - len(before) <= 4              # lost at most the requests in flight
    stored_before = {(r["prompt"], r["seed"]) for r in before}
    assert not stored_before & set(asked_again)                 # nothing stored was asked again
    kept = kept_dialogues(tmp_path)
    assert len({r["dialogue_id"] for r in before if r["status"] == "answered"}) < len(kept)   # killed mid-judging
    answered = [r["dialogue_id"] for r in after if r["status"] == "answered"]
    assert sorted(answered) == sorted(d["id"] for d in kept)    # every dialogue judged, each once
    assert json.loads((out_dir(tmp_path) / "card.json").read_text())["judge"]["dialogues"]["unjudged"] == 0


# ---- settings -----------------------------------------------------------------------------------------------
def compose_generate(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=["llm=tgi", "judge=llm", *overrides])


def test_the_judge_asks_llm_as_composed_unless_the_llm_group_is_composed_at_judge_llm() -> None:
    same = compose_generate("llm.url=http://gen:8080", "llm.concurrency=5")
    assert same.judge.llm is None
    assert judge_llm_config(same) is same.llm                   # command-line llm.* overrides included
    own = compose_generate("llm.url=http://gen:8080", "llm.token=${oc.env:GEN_TOKEN,null}", "llm@judge.llm=openai",
                           "judge.llm.url=http://host:8000/v1", "judge.llm.route=chat", "judge.llm.concurrency=3")
    check_judge_config(own)
    llm = judge_llm_config(own)
    assert (llm.backend, llm.url, llm.route, llm.server, llm.concurrency) == (
        "openai", "http://host:8000/v1", "chat", "vllm", 3)
    # the whole openai config, nothing of the generation's tgi one (its token, its URL)
    openai = yaml.safe_load((CONFIG_DIR / "llm" / "openai.yaml").read_text())
    assert set(llm) == set(openai) - {"defaults"} and "token" not in llm
    with pytest.raises(ConfigCompositionException):              # struct mode: a key the backend lacks
        compose_generate("llm@judge.llm=tgi", "judge.llm.n_ctx=512")


def test_the_card_names_the_judges_server_route_and_model_file_but_no_key() -> None:
    """What the card records of the judge's server tells which server answered (a vLLM behind the chat route, a
    GGUF file), never its API key."""
    from erc.judge.checks import public_judge_llm

    openai = yaml.safe_load((CONFIG_DIR / "llm" / "openai.yaml").read_text())
    server = compose_generate("llm@judge.llm=openai", "judge.llm.url=http://host:8000/v1", "judge.llm.route=chat",
                              "judge.llm.model=m7", "judge.llm.api_key=sk-abc")
    assert public_judge_llm(judge_llm_config(server)) == {
        "backend": "openai", "server": "vllm", "route": "chat", "url": "http://host:8000/v1", "model": "m7",
        "chat_template": openai["chat_template"]}
    embedded = compose_generate("llm@judge.llm=local", "judge.llm.model_path=/models/judge.gguf")
    assert public_judge_llm(judge_llm_config(embedded)) == {"backend": "local", "model_path": "/models/judge.gguf",
                                                            "chat_template": "gguf"}


def test_a_judge_llm_key_without_its_own_config_is_refused_with_the_choice_to_make(capsys) -> None:
    from erc.cli import check_command_line

    with pytest.raises(SystemExit) as exit_:
        check_command_line(argv=["judge=llm", "judge.llm.url=http://host:8080"])
    assert exit_.value.code == 2
    assert capsys.readouterr().err.strip() == (
        "error: judge.llm.url=http://host:8080: judge.llm is llm.* as composed until it has a config of its own: "
        "choose one first, llm@judge.llm=<local|openai|tgi> (conf/llm/), then set judge.llm.url on it")
    check_command_line(argv=["judge=llm", "llm@judge.llm=tgi", "judge.llm.url=http://host:8080"])   # accepted


def test_an_embedded_judge_does_not_change_the_generations_sampling() -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", ["llm=tgi", "judge=llm", "llm@judge.llm=local"], return_hydra_config=True)
        assert cfg.hydra.runtime.choices.sampling == "embedded"   # what local.yaml's defaults list does
        with pytest.raises(ConfigError, match=r"^llm@judge.llm=local also selects sampling=embedded .*sampling=paper$"):
            check_judge_config(cfg)
        chosen = compose("generate", ["llm=tgi", "judge=llm", "llm@judge.llm=local", "sampling=paper"],
                         return_hydra_config=True)
        check_judge_config(chosen)
        assert chosen.hydra.runtime.choices.sampling == "paper"
        tuned = compose("generate", ["llm=tgi", "judge=llm", "llm@judge.llm=local", "sampling.temperature=0.9"],
                        return_hydra_config=True)                 # a value of it: the group is still embedded
        with pytest.raises(ConfigError, match=r"^llm@judge.llm=local also selects sampling=embedded"):
            check_judge_config(tuned)
        check_judge_config(compose("generate", ["llm=local", "judge=llm", "llm@judge.llm=local"],
                                   return_hydra_config=True))


def test_a_judge_server_without_the_judge_is_refused() -> None:
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        cfg = compose("generate", ["llm=tgi", "llm@judge.llm=openai"])
    with pytest.raises(ConfigError, match=r"^llm@judge.llm gives the judge a server, but judge=none: add judge=llm"):
        check_judge_config(cfg)


@pytest.mark.parametrize(("override", "message"), [
    ("llm@judge.llm=tgi judge.llm.concurrency=0", "judge.llm.concurrency must be an integer >= 1"),
    ("llm@judge.llm=tgi judge.llm.url=http://user:pw@host:80", "judge.llm.url must not hold credentials"),
    ("llm.concurrency=0", r"^llm\.concurrency must be an integer >= 1"),     # judge.llm null: the judge reads llm.*
    ("judge.sampling.temperature=-1", "judge.sampling.temperature must be a number >= 0"),
    ("judge.sampling.max_new_tokens=0", "judge.sampling.max_new_tokens must be a positive integer"),
    ("judge.max_attempts=0", "judge.max_attempts must be an integer >= 1"),
    ("judge.min_agreement=1.5", r"judge.min_agreement must be a number in \[0, 1\]"),
    ("judge.filter=maybe", "judge.filter must be true or false"),
    ("judge.name=gpt", r"^judge must be one of none, llm \(judge=llm asks an LLM judge\), got 'gpt'"),
    ("judge.seed=-1", "judge.seed must be a non-negative integer"),
    ("judge.seed=0.5", "judge.seed must be a non-negative integer"),
    ("judge.sampling.constrained=maybe", "judge.sampling.constrained must be true or false"),
    ("judge.template=/nonexistent.txt", "judge.template"),
    ("llm@judge.llm=tgi judge.llm.chat_template=auto", "judge.llm.chat_template=auto needs llm.tokenizer"),
    ("llm@judge.llm=openai judge.llm.server=ollama",
     "judge.llm.server=ollama is not supported on llm.route=completions"),
])
def test_a_bad_judge_setting_is_refused_naming_the_key(override, message) -> None:
    with pytest.raises(ConfigError, match=message):
        check_judge_config(compose_generate(*override.split()))


@pytest.mark.parametrize("override", ["judge.min_agreement=0", "judge.min_agreement=0.5", "judge.min_agreement=1",
                                      "judge.max_attempts=1", "judge.seed=0", "judge.sampling.constrained=false"])
def test_each_judge_setting_takes_the_ends_of_its_range(override) -> None:
    """min_agreement 0 (keep every judged dialogue) and 1 (keep only full agreement) are valid shares; one attempt
    per dialogue and seed 0 are valid counts."""
    check_judge_config(compose_generate(override))


def test_the_judge_is_on_only_with_judge_llm() -> None:
    from omegaconf import OmegaConf

    from erc.judge.checks import judge_enabled

    assert judge_enabled(compose_generate())
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        assert not judge_enabled(compose("generate", ["llm=tgi", "judge=none"]))
    assert not judge_enabled(OmegaConf.create({"llm": {}}))


def test_a_judge_server_other_than_local_leaves_generations_sampling_alone() -> None:
    """Only ``llm@judge.llm=local`` drags ``sampling=embedded`` along: another server of the judge's own, or the
    embedded model for both, needs no sampling named on the command line, in a composed config or a running job's
    record (Hydra's)."""
    from hydra.core.hydra_config import HydraConfig
    from omegaconf import OmegaConf, open_dict

    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        other = compose("generate", ["llm=tgi", "judge=llm", "llm@judge.llm=openai"], return_hydra_config=True)
        embedded = compose("generate", ["llm=tgi", "judge=llm", "llm@judge.llm=local"], return_hydra_config=True)
    check_judge_config(other)
    # in a running job the record is Hydra's, not the config's
    hydra = HydraConfig.instance()
    try:
        hydra.set_config(embedded)
        job = OmegaConf.masked_copy(embedded, [k for k in embedded if k != "hydra"])
        with open_dict(job):
            assert "hydra" not in job
        with pytest.raises(ConfigError, match=r"^llm@judge\.llm=local also selects sampling=embedded"):
            check_judge_config(job)
    finally:
        hydra.cfg = None


def test_a_template_with_a_lone_brace_or_no_slot_is_refused_naming_the_fix(tmp_path) -> None:
    template = tmp_path / "t.txt"
    template.write_text("{dialogue} ({n_utterances}) {label_options}: close the list with }\n")
    with pytest.raises(ConfigError, match=r"judge.template .*t.txt: .*write a literal brace as \{\{ or \}\}"):
        check_judge_config(compose_generate(f"judge.template={template}"))
    template.write_text("Name the emotions.\n")
    with pytest.raises(ConfigError, match=r"it uses none$"):
        check_judge_config(compose_generate(f"judge.template={template}"))


def test_a_template_with_a_slot_the_judge_does_not_fill_is_refused(tmp_path) -> None:
    """An extra slot would be a KeyError at the first dialogue, after the run started: refused when checked."""
    template = tmp_path / "t.txt"
    template.write_text("{dialogue}\nLabel each of the {n_utterances} utterances of {speaker}: {label_options}\n")
    with pytest.raises(ConfigError, match=r"must use exactly the slots .*, it uses .*\{speaker\}"):
        check_judge_config(compose_generate(f"judge.template={template}"))


def test_a_template_without_the_dialogue_is_refused(tmp_path) -> None:
    template = tmp_path / "t.txt"
    template.write_text("Name the emotions: {label_options} ({n_utterances}).\n")
    with pytest.raises(ConfigError, match=r"must use exactly the slots \{dialogue\}"):
        check_judge_config(compose_generate(f"judge.template={template}"))
