"""The tgi backend and the whole generate() pipeline against a loopback TGI-protocol server.

The server (tests/helpers/loopback_tgi.py) answers by seed from a script, so each test knows exactly which
requests must become dialogues; faults (429, 503, slow answers, 422) are real HTTP answers.
"""

from __future__ import annotations

import asyncio
import re
import socket
import time

import pytest

import erc  # noqa: F401
from erc.data import load_benchmark
from erc.data.labels import label_set
from erc.generation import GenerationError
from erc.llm.backends import TransientError, make_backend
from erc.llm.sampling import Sampling, derive_seed
from erc.pipeline import generate

from helpers.generation import SEED, expected_requests, expected_slots, make_cfg, out_dir, read_jsonl
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

LABELS = label_set("iemocap")
VICUNA = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
          "detailed, and polite answers to the user's questions. USER: ")


def test_tgi_sends_table_ii_with_distinct_derived_seeds(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=5", "max_attempts=1"))
    assert len(server.answered) == 5
    for body in server.answered:
        p = body["parameters"]
        assert p["temperature"] == 0.7 and p["top_k"] == 10000 and p["typical_p"] == 0.995
        assert p["repetition_penalty"] == 1.0 and p["do_sample"] is True and p["details"] is True
        assert "top_p" not in p  # TGI rejects top_p >= 1; omitted means 1.0
        assert p["max_new_tokens"] == 512 and p["stop"] == ["\n\n\n", "</s>", "USER:"]
        assert "grammar" not in p  # the paper sampled freely
        assert body["inputs"].startswith(VICUNA) and body["inputs"].endswith(" ASSISTANT:")
    seeds = [body["parameters"]["seed"] for body in server.answered]
    assert sorted(seeds) == sorted(derive_seed(SEED, slot, 0) for slot in range(5))
    assert len(set(seeds)) == 5
    runs = read_jsonl(out_dir(tmp_path) / "runs.jsonl")
    assert runs[-1]["provenance"]["model"] == "loopback/vicuna-13b-v1.5"
    assert runs[-1]["provenance"]["server_version"] == "3.3.7"


def test_tgi_yields_exactly_the_valid_dialogues_despite_faults(tmp_path):
    n, attempts = 12, 3
    script = ScriptedDialogues(LABELS)
    with LoopbackTGI(script, faults=[429, 503, "slow", 429], slow_s=3.0) as server:
        card = generate(make_cfg(tmp_path, server.url, f"n_dialogues={n}", f"max_attempts={attempts}",
                                 "llm.timeout_s=1", "llm.concurrency=4"))
    want = expected_slots(n, attempts, balanced=False)
    out = out_dir(tmp_path)
    records = read_jsonl(out / "requests.jsonl")
    assert len(records) == expected_requests(n, attempts, balanced=False)
    assert len({r["fingerprint"] for r in records}) == len(records)
    dialogues = read_jsonl(out / "dialogues.jsonl")
    assert {d["meta"]["dialogue"]: d["meta"]["attempt"] for d in dialogues} == want
    for d in dialogues:
        seed = derive_seed(SEED, d["meta"]["dialogue"], d["meta"]["attempt"])
        assert [(u["speaker"], u["text"], u["label"]) for u in d["utterances"]] == script.turns_for(seed, None)
    # The splits are what load_benchmark reads, and together they are exactly dialogues.jsonl.
    loaded = [d for split in ("train", "dev", "test")
              for d in load_benchmark("iemocap_nat", split, data_dir=tmp_path / "data")]
    assert sorted(d.id for d in loaded) == sorted(d["id"] for d in dialogues)
    assert card["counts"]["accepted"] == len(want)
    kinds = [ScriptedDialogues.kind(r["seed"]) for r in records]
    assert card["rejections"] == {"no_dialogue": kinds.count("prose"), "truncated": kinds.count("truncated")}
    assert (out / "label_distribution.png").stat().st_size > 0 and (out / "utterances.parquet").is_file()


def test_tgi_rerun_resumes_without_rerequesting(tmp_path):
    script = ScriptedDialogues(LABELS)
    with LoopbackTGI(script) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6"))
        first = len(server.requests)
        assert first == expected_requests(6, 3, balanced=False)
        generate(make_cfg(tmp_path, server.url, "n_dialogues=6"))
        assert len(server.requests) == first  # nothing re-requested
        generate(make_cfg(tmp_path, server.url, "n_dialogues=9"))  # only the 3 new slots
        new_seeds = {body["parameters"]["seed"] for body in server.requests[first:]}
    assert new_seeds == {derive_seed(SEED, slot, a) for slot in range(6, 9) for a in range(3)
                         if a <= expected_slots(9, 3, False).get(slot, 2)}
    records = read_jsonl(out_dir(tmp_path) / "requests.jsonl")
    assert len(records) == expected_requests(9, 3, balanced=False)


def test_balanced_reasks_a_dialogue_missing_its_target(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, server.url, "prompt=balanced", "n_dialogues=12", "max_attempts=4"))
        for body in server.answered:
            assert "at least one utterance expressing" in body["inputs"]
    records = read_jsonl(out_dir(tmp_path, "bal") / "requests.jsonl")
    missing = [r for r in records if ScriptedDialogues.kind(r["seed"]) == "valid_without_target"]
    assert missing and all(r["reasons"] == ["balanced_target_missing"] for r in missing)
    dialogues = read_jsonl(out_dir(tmp_path, "bal") / "dialogues.jsonl")
    assert {d["meta"]["dialogue"]: d["meta"]["attempt"] for d in dialogues} == expected_slots(12, 4, balanced=True)
    for d in dialogues:
        target = LABELS[d["meta"]["dialogue"] % len(LABELS)]  # each label targets the same number
        assert d["meta"]["target"] == target and target in {u["label"] for u in d["utterances"]}


def test_validation_error_stops_the_run_naming_the_parameter(tmp_path):
    # The server's own limit (TGI's --max-stop-sequences, 4 here): only the server can refuse it.
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        with pytest.raises(GenerationError, match="stop"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=4", "sampling.stop=[a,b,c]"))
        assert len(server.requests) >= 1 and not server.answered
    assert read_jsonl(out_dir(tmp_path) / "requests.jsonl") == []


def test_gives_up_after_the_configured_retries(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS), faults=[503] * 50) as server:
        with pytest.raises(GenerationError, match="gave up after 2 retries"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=1", "llm.max_retries=2"))
        assert len(server.requests) == 3


def test_changed_settings_refuse_to_mix_into_an_existing_set(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        generate(make_cfg(tmp_path, server.url, "n_dialogues=2"))
        with pytest.raises(GenerationError, match="other settings"):
            generate(make_cfg(tmp_path, server.url, "n_dialogues=2", "sampling.max_new_tokens=100"))


def test_replicas_are_served_round_robin(tmp_path):
    script = ScriptedDialogues(LABELS)
    with LoopbackTGI(script) as a, LoopbackTGI(script) as b:
        generate(make_cfg(tmp_path, a.url, f"llm.url=[{a.url},{b.url}]", "n_dialogues=8", "max_attempts=1"))
        assert len(a.requests) == len(b.requests) == 4


def test_constrained_decoding_sends_tgi_a_regex_grammar(tmp_path):
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        card = generate(make_cfg(tmp_path, server.url, "sampling=paper_constrained", "n_dialogues=2", "max_attempts=1"))
    for body in server.answered:
        grammar = body["parameters"]["grammar"]
        assert grammar["type"] == "regex"
        assert grammar["value"].startswith("((?:Male|Female): ") and "(?:6|5|4|3|2|1)" in grammar["value"]
    assert card["generator"]["constrained"] is True


def free_port() -> int:
    """A loopback port with nothing listening (bound, then released)."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.mark.parametrize("overrides, path", [
    ([], ""), (["llm=openai", "llm.model=loopback", "llm.server=plain"], "/v1")],
    ids=["tgi", "openai_without_models_call"])
def test_nothing_listening_at_the_url_fails_at_once_naming_it(tmp_path, overrides, path):
    """A refused connection before the server ever answered is a server not started or a wrong URL: no passing
    fault, so not retried (the shipped 8 retries took 155 s, at least 90 s). The backoff here is the shipped one;
    the bound leaves room for a loaded machine's imports."""
    url = f"http://127.0.0.1:{free_port()}{path}"
    started = time.monotonic()
    with pytest.raises(GenerationError, match=rf"^cannot connect to {re.escape(url)} \(connection refused\): "
                                              r"no server answers there; start it, or fix llm\.url$"):
        generate(make_cfg(tmp_path, url, *overrides, f"llm.url={url}", "n_dialogues=1", "llm.backoff_s=1.0",
                          "llm.backoff_max_s=60.0"))
    assert time.monotonic() - started < 20


def test_a_refused_connection_after_the_server_answered_is_retried(tmp_path):
    """Once the URL has answered, a refused connection is a server restarting: a transient fault."""
    server = LoopbackTGI(ScriptedDialogues(LABELS)).start()
    cfg = make_cfg(tmp_path, server.url)
    backend = make_backend(cfg.llm, Sampling.from_config(cfg.sampling, []))
    assert len(backend.slots) == 2  # two clients: the second has no pooled connection, so it must connect

    async def run() -> None:
        try:
            await backend.start()
            await backend.complete("Male: Hi. (1)", 1, None)   # the first client
            server.stop()
            with pytest.raises(TransientError, match="ConnectError"):
                await backend.complete("Male: Hi. (1)", 2, None)   # the second client, refused
        finally:
            await backend.close()

    asyncio.run(run())


def test_hf_hub_offline_does_not_stop_requests_to_the_tgi_server(tmp_path, monkeypatch):
    """HF_HUB_OFFLINE=1 (set for a chat template's tokenizer read from the cache) keeps the Hub away, not llm.url."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)  # what HF_HUB_OFFLINE=1 sets when the hub is imported
    with LoopbackTGI(ScriptedDialogues(LABELS)) as server:
        card = generate(make_cfg(tmp_path, server.url, "n_dialogues=1", "max_attempts=1", "quality.enabled=false"))
    assert server.answered and card["counts"]["requests"] == 1
