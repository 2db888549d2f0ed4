"""From the judge's stored answers to a set's judge files, without a server: which answer counts for a dialogue
(the first usable one, found by question and attempt), which dialogues are still to ask or used up their
attempts, the seeds and fields each request carries, the card's facts, and the files ``judge/agreement.json``,
``judge/labels.jsonl``, ``judge_confusion.png`` (removed again by ``judge=none``) and the filtered set."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import pytest

from erc.data import Dialogue, Utterance
from erc.judge.export import export_judgement, forget_judgement
from erc.judge.prompt import judge_prompt
from erc.judge.run import JudgeError, Judgement, JudgeTask
from erc.llm.backends.base import Completion
from erc.llm.sampling import derive_seed
from erc.llm.store import RequestStore, canonical_hash

from helpers.deadline import deadline
from helpers.judge import LABELS, make_cfg

A, B, C = LABELS[:3]


def _dialogues() -> list[Dialogue]:
    return [Dialogue(id=f"d{i}", benchmark="iemocap", split=("train", "dev", "test", "train")[i], source="nat",
                     meta={"dialogue": i}, utterances=[Utterance("Ann", f"first {i}", A),
                                                       Utterance("Bob", f"second {i}", B)])
            for i in range(4)]


def _record(task: JudgeTask, dialogue: Dialogue, attempt: int, answer: list[str], **extra) -> dict:
    question = canonical_hash(judge_prompt(task.template, dialogue, task.labels))
    return {"fingerprint": f"{dialogue.id}-{attempt}", "question": question, "attempt": attempt,
            "text": json.dumps({"emotions": answer}), "model": "m", **extra}


@pytest.fixture
def task(tmp_path: Path) -> JudgeTask:
    """The judge of four dialogues, two attempts each (its server is never asked)."""
    return JudgeTask(make_cfg(tmp_path, "http://127.0.0.1:9", "judge.max_attempts=2", "judge.seed=7"), _dialogues())


def test_the_first_usable_answer_counts_and_a_dialogue_out_of_attempts_is_unjudged(task) -> None:
    d0, d1, d2, _ = task.dialogues
    records = [_record(task, d0, 0, [A, C], reason=None),
               _record(task, d0, 1, [C, C], reason=None),                # a later answer changes nothing
               _record(task, d1, 0, [A], reason="wrong_count"),
               _record(task, d1, 1, ["bliss", A], reason="not_a_label"),  # both attempts used: failed
               _record(task, d2, 0, [A], reason="wrong_count"),           # one attempt left: asked again
               _record(task, d2, 1 + 1, [A, B], reason=None)]             # attempt 2 without attempt 1: never read
    with deadline(10, "reading the stored answers"):                      # a walk that stops counting attempts
        judgement = task.judgement(records, "m")
    assert judgement.labels == {"d0": [A, C]}
    assert (judgement.failed, judgement.unjudged) == (1, 3)
    slots = task._walk(records)[0]
    assert [(s.item[0].id, s.first, s.end) for s in slots] == [("d2", 1, 2), ("d3", 0, 2)]
    assert slots[0].constraint is not None and json.loads(slots[0].constraint.text)["properties"]["emotions"][
        "minItems"] == 2
    facts = judgement.facts
    assert (facts["model"], facts["requests"], facts["max_attempts"], facts["seed"]) == ("m", 6, 2, 7)
    assert list(facts["rejections"].items()) == [("not_a_label", 1), ("wrong_count", 2)]  # sorted: stable card
    assert facts["llm"] == {"backend": "tgi", "url": "http://127.0.0.1:9",
                            "chat_template": task.llm.chat_template} and facts["constrained"] is True
    # an answer to another question (the dialogue's text changed) is not this dialogue's
    edited = _record(task, Dialogue(id="d3", benchmark="iemocap", split="train", source="nat", meta={"dialogue": 3},
                                    utterances=[Utterance("Ann", "other", A), Utterance("Bob", "x", B)]), 0, [A, B])
    assert "d3" not in task.judgement([edited], "m").labels


def test_each_request_has_its_own_seed_and_names_its_dialogue(task) -> None:
    slots, _, _ = task._walk([])
    d2 = slots[2]
    assert [task.seed(d2, attempt) for attempt in (0, 1)] == [derive_seed(7, 2, 0), derive_seed(7, 2, 1)]
    assert task.seed(d2, 0) != task.seed(slots[1], 0)
    assert task.slot_fields(d2, 0) == {"question": d2.item[1], "dialogue_id": "d2", "dialogue": 2, "utterances": 2}
    assert task.describe(d2) == "judge d2"
    accepted = task.judge_answer(d2, Completion(json.dumps({"emotions": [A, B]}), "eos_token", 9, 1, "r"))
    assert (accepted.accepted, accepted.reasons, accepted.fields) == (True, [], {"status": "answered",
                                                                                  "reason": None})
    short = task.judge_answer(d2, Completion(json.dumps({"emotions": [A]}), "eos_token", 9, 1, "r"))
    assert (short.accepted, short.reasons, short.fields) == (False, ["wrong_count"], {"status": "rejected",
                                                                                       "reason": "wrong_count"})


def test_stored_answers_are_read_under_the_model_they_name(task, caplog) -> None:
    """Without asking, the judgement is that of the stored records, under the model they were made with; the
    warning counts the dialogues out of attempts apart from those not asked yet."""
    from erc.judge.run import judge_set

    assert task.stored().unjudged == 4 and task.stored().facts["model"] is None
    setup_hash = canonical_hash(task.setup("loopback/judge"), 16)
    d0, d1 = task.dialogues[:2]
    records = [{**r, "model": "loopback/judge", "setup_hash": setup_hash}
               for r in (_record(task, d0, 0, [B, B], reason=None), _record(task, d1, 0, [B], reason="wrong_count"),
                         _record(task, d1, 1, [B], reason="wrong_count"))]
    task.store_path.parent.mkdir(parents=True)
    task.store_path.write_text("".join(json.dumps(r) + "\n" for r in records))
    stored = task.stored()
    assert stored.labels == {"d0": [B, B]} and (stored.unjudged, stored.failed) == (3, 1)
    assert stored.facts["model"] == "loopback/judge"
    store = RequestStore(task.store_path)                  # what a rerun that asks plans: the two never asked
    plan = task.plan(store)
    store.close()
    assert (plan.finished, [s.item[0].id for s in plan.slots]) == (2, ["d2", "d3"])
    with caplog.at_level(logging.WARNING):
        assert judge_set(task.cfg, task.dialogues, ask=False).labels == {"d0": [B, B]}
    assert ("3 of 4 dialogue(s) have no judge answer: 1 after judge.max_attempts=2 answers without one label per "
            "utterance (raise it to ask again), 2 not asked yet") in caplog.text


def test_the_sets_judge_files_hold_the_figures_and_each_dialogues_labels(tmp_path, caplog) -> None:
    """agreement.json and labels.jsonl per dialogue (None for the unjudged), the card entry with its counts and
    file names, the filtered set with its own figures; judge=none removes the figures again."""
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9", "judge.filter=true", "judge.min_agreement=0.5")
    out = Path(cfg.out_dir)
    dialogues = [*_dialogues(), Dialogue(id="d4", benchmark="iemocap", split="train", source="nat",
                                         meta={"dialogue": 4}, utterances=[Utterance("Ann", "x", A),
                                                                           Utterance("Bob", "y", B),
                                                                           Utterance("Ann", "z", C)])]
    judgement = Judgement(labels={"d0": [A, B], "d1": [A, A], "d2": [C, C], "d4": [A, C, B]}, unjudged=1,
                          failed=1, facts={"model": "m"})
    with caplog.at_level(logging.INFO):
        judged = export_judgement(cfg, out, "iemocap_nat", dialogues, LABELS, judgement)
    assert f"{out}: the judge agrees on 44.4% of 9 utterances (kappa " in caplog.text
    assert "; 1 dialogue(s) unjudged)" in caplog.text
    assert f"{out.parent / 'iemocap_nat_judge'}: 2 of 5 dialogues kept by the judge filter" in caplog.text
    figures = json.loads((out / "judge" / "agreement.json").read_text())
    assert (figures["dataset"], figures["labels"], figures["utterances"], figures["accuracy"]) == (
        "iemocap_nat", LABELS, 9, round(4 / 9, 4))
    rows = [json.loads(line) for line in (out / "judge" / "labels.jsonl").read_text().splitlines()]
    assert rows[1] == {"id": "d1", "split": "dev", "generated": [A, B], "judged": [A, A], "agreement": 0.5}
    assert (rows[3]["judged"], rows[3]["agreement"]) == (None, None) and rows[2]["agreement"] == 0.0
    assert rows[4]["agreement"] == 0.3333
    assert (out / "judge_confusion.png").read_bytes()[:4] == b"\x89PNG"
    entry = judged.entry
    assert entry["model"] == "m" and entry["dialogues"] == {"judged": 4, "unjudged": 1, "failed": 1}
    assert entry["accuracy"] == 0.4444 and entry["files"]["agreement"] == "judge/agreement.json"
    folder, kept, filter_entry, kept_figures = judged.filtered
    assert folder == out.parent / "iemocap_nat_judge" and [d.id for d in kept] == ["d0", "d1"]
    assert filter_entry["dialogues"]["kept"] == 2 and filter_entry["min_agreement"] == 0.5   # judge.min_agreement
    assert (kept_figures["model"], kept_figures["utterances"], kept_figures["accuracy"]) == ("m", 4, 0.75)
    forget_judgement(out)
    assert not (out / "judge" / "agreement.json").exists() and not (out / "judge" / "labels.jsonl").exists()
    assert not (out / "judge_confusion.png").exists()


def test_without_the_filter_no_filtered_set_is_made(tmp_path) -> None:
    cfg = make_cfg(tmp_path, "http://127.0.0.1:9")
    judged = export_judgement(cfg, Path(cfg.out_dir), "iemocap_nat", _dialogues()[:1], LABELS,
                              Judgement(labels={"d0": [A, B]}, facts={}))
    assert judged.filtered is None and judged.entry["accuracy"] == 1.0
    assert not (Path(cfg.out_dir).parent / "iemocap_nat_judge").exists()


def test_every_judge_setting_is_part_of_the_setup_its_answers_are_stored_under(task) -> None:
    """A stored answer is reused only under the same judge: another seed, sampling, schema constraint, template,
    benchmark or model is another setup (its store is then refused, not mixed in)."""
    import copy
    import dataclasses

    base = canonical_hash(task.setup("m"))
    assert canonical_hash(task.setup("m")) == base
    others = {"model": canonical_hash(task.setup("other"))}
    template = dataclasses.replace(task.template, hash="another template")
    cfg = copy.deepcopy(task.cfg)
    cfg.benchmark.name = "meld"
    for name, value in [("judge_seed", 8), ("parameters", {**task.parameters, "temperature": 0.7}),
                        ("constrained", not task.constrained), ("template", template), ("cfg", cfg)]:
        changed = copy.copy(task)
        setattr(changed, name, value)
        others[name] = canonical_hash(changed.setup("m"))
    assert base not in others.values() and len(set(others.values())) == len(others), others


def test_a_store_of_another_judge_is_refused_with_the_judges_own_error_and_keys(tmp_path: Path, task) -> None:
    """generate.py catches the judge's error to name the judge step; the message names the judge's keys (judge.llm.*
    once the judge has a server of its own), what mixing would do and how to go on."""
    records = [{"setup_hash": "old"}, {"setup_hash": "new"}]
    with pytest.raises(JudgeError) as refused:
        task.refuse_other_setups(records, "new")
    assert ("holds 1 judge answer(s) made with other judge settings (setup old, now new: llm.*, judge.sampling, "
            "judge.template or judge.seed changed") in str(refused.value)
    assert f"Mixing them would mix two judges: set the judge back, or move {task.folder} away" in str(refused.value)
    own = JudgeTask(make_cfg(tmp_path, "http://127.0.0.1:9", "llm@judge.llm=tgi", "judge.llm.url=http://127.0.0.1:9"),
                    _dialogues())
    with pytest.raises(JudgeError, match=r"now new: judge\.llm\.\*, judge\.sampling"):
        own.refuse_other_setups(records, "new")
