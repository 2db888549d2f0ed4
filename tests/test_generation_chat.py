"""The OpenAI-compatible chat route (``llm=openai llm.route=chat``) and the per-server dialects, against a loopback
OpenAI-compatible server (tests/helpers/loopback_openai.py): request bodies field by field, hosted OpenAI's strictness,
faults, errors that name the field refused, resume, and the route in the records, runs.jsonl and the data card.
The bundled model behind a real ``llama_cpp.server`` chat route is in tests/test_generation_backends.py."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from hydra import compose, initialize_config_dir

import erc  # noqa: F401
from erc.data.labels import label_set
from erc.generation import GenerationError
from erc.generation.json_output import dialogue_schema
from erc.llm.backends import FatalRequestError, make_backend
from erc.llm.dialects import dialect, template_stop
from erc.llm.grammar import DialogueGrammar, JsonSchema
from erc.llm.sampling import Sampling
from erc.llm.store import canonical_hash, fingerprint
from erc.paths import CONFIG_DIR
from erc.pipeline import generate

from helpers.generation import SEED, expected_requests, expected_slots, out_dir, read_jsonl
from helpers.loopback_openai import LoopbackOpenAI
from helpers.loopback_tgi import ScriptedDialogues

LABELS = label_set("iemocap")
GRAMMAR = DialogueGrammar(("Male", "Female"), 6, 2, 4, 40)
SCHEMA = JsonSchema.of("dialogue", {"type": "object", "properties": {"dialogue": {"type": "array"}},
                                    "required": ["dialogue"], "additionalProperties": False})


def make_cfg(tmp_path: Path, url: str, *overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=[
            "llm=openai", "llm.route=chat", f"llm.url={url}", "benchmark=iemocap", f"seed={SEED}",
            f"paths.data_dir={tmp_path}/data", "llm.backoff_s=0.01", "llm.backoff_max_s=0.05", *overrides])


def ask(cfg, constraints) -> tuple[list, list[str]]:
    """One request per constraint through the backend cfg names; the completions and what it could not honour."""
    async def run():
        backend = make_backend(cfg.llm, Sampling.from_config(cfg.sampling, template_stop(cfg.llm)))
        await backend.start()
        prompt = backend.prompt("Write a dialogue expressing joy.", cfg.prompt.get("system"))
        try:
            return [await backend.complete(prompt, 11, c) for c in constraints], backend.lost
        finally:
            await backend.close()

    return asyncio.run(run())


# What each server's chat request carries beside model, messages, seed, temperature and stop (Table II as the
# reference says: docs/generation.md#routes-and-servers), and its constraint fields for the line grammar and a schema.
OPENAI_FORMAT = {"type": "json_schema", "json_schema": {"name": "dialogue", "schema": SCHEMA.schema()}}
CHAT_BODIES = {
    "vllm": ({"top_p": 1.0, "max_completion_tokens": 512, "top_k": 10000, "min_p": 0.0, "repetition_penalty": 1.0},
             {"structured_outputs": {"regex": GRAMMAR.regex()}}, {"structured_outputs": {"json": SCHEMA.schema()}}),
    "sglang": ({"top_p": 1.0, "max_completion_tokens": 512, "top_k": 10000, "min_p": 0.0, "repetition_penalty": 1.0},
               {"regex": GRAMMAR.regex()}, {"response_format": OPENAI_FORMAT}),
    "llamacpp": ({"top_p": 1.0, "max_tokens": 512, "top_k": 10000, "typical_p": 0.995, "min_p": 0.0,
                  "repeat_penalty": 1.0}, {"grammar": GRAMMAR.gbnf()}, {"json_schema": SCHEMA.schema()}),
    "llama_cpp_python": ({"top_p": 1.0, "max_tokens": 512, "top_k": 10000, "min_p": 0.0, "repeat_penalty": 1.0},
                         {"grammar": GRAMMAR.gbnf()},
                         {"response_format": {"type": "json_object", "schema": SCHEMA.schema()}}),
    "ollama": ({"top_p": 1.0, "max_tokens": 512}, {}, {"response_format": OPENAI_FORMAT}),
    "tgi": ({"max_tokens": 512}, {"response_format": {"type": "regex", "value": GRAMMAR.regex()}},
            {"response_format": {"type": "json", "value": SCHEMA.schema()}}),
    "plain": ({"top_p": 1.0, "max_completion_tokens": 512}, {},
              {"response_format": {"type": "json_schema", "json_schema": {**OPENAI_FORMAT["json_schema"],
                                                                          "strict": True}}}),
}
LOST = {"vllm": ["typical_p"], "sglang": ["typical_p"], "llamacpp": [], "llama_cpp_python": ["typical_p"],
        "ollama": ["top_k", "typical_p", "min_p", "repetition_penalty", "constrained decoding"],
        "tgi": ["top_k", "typical_p"], "plain": ["top_k", "typical_p", "constrained decoding"]}


@pytest.mark.parametrize("server", list(CHAT_BODIES))
def test_each_server_gets_its_own_chat_request(server, tmp_path):
    sampling, for_grammar, for_schema = CHAT_BODIES[server]
    with LoopbackOpenAI(ScriptedDialogues(LABELS)) as loopback:
        cfg = make_cfg(tmp_path, loopback.v1, f"llm.server={server}", "prompt.system=You write TV dialogues.")
        completions, lost = ask(cfg, [None, GRAMMAR, SCHEMA])
    assert all(c.finish_reason == "stop" and c.text.startswith("Here is the dialogue") for c in completions)
    common = {"model": "loopback/chat-model", "seed": 11, "temperature": 0.7, "stop": ["\n\n\n"],  # no llm.stop
              "messages": [{"role": "system", "content": "You write TV dialogues."},
                           {"role": "user", "content": "Write a dialogue expressing joy."}]}
    free, with_grammar, with_schema = loopback.requests
    assert free == {**common, **sampling}
    assert with_grammar == {**common, **sampling, **for_grammar}
    assert with_schema == {**common, **sampling, **for_schema}
    assert [item.split("=")[0].split(" (")[0] for item in lost] == LOST[server]


def test_hosted_openai_strictness_plain_passes_and_another_dialect_is_named(tmp_path, caplog):
    with LoopbackOpenAI(ScriptedDialogues(LABELS), strict=True) as loopback:
        completions, _ = ask(make_cfg(tmp_path, loopback.v1, "llm.server=plain"), [None, SCHEMA])
        assert [c.text[:4] for c in completions] == ["Here", "Here"]  # no field OpenAI does not know was sent
        with pytest.raises(GenerationError) as caught:
            generate(make_cfg(tmp_path, loopback.v1, "llm.server=vllm", "n_dialogues=2", "llm.concurrency=1"))
        assert len(loopback.requests) == 3  # refused at once: a 400 is never retried
    message = str(caught.value)
    assert "field 'min_p' (HTTP 400)" in message and "Unrecognized request argument supplied: min_p" in message
    assert "llm.server=vllm" in message and "plain sends only OpenAI's own fields" in message


@pytest.mark.parametrize("status, body, field", [
    # vLLM: pydantic's errors in an OpenAI-style 400
    (400, {"object": "error", "message": "[{'type': 'less_than_equal', 'loc': ('body', 'top_p'), 'msg': 'Input "
                                         "should be less than or equal to 1'}]", "type": "BadRequestError",
           "code": 400}, "top_p"),
    # FastAPI's own 422
    (422, {"detail": [{"type": "int_parsing", "loc": ["body", "top_k"], "msg": "Input should be a valid integer"}]},
     "top_k"),
    # llama_cpp.server: a validation error becomes HTTP 500 internal_server_error
    (500, {"error": {"message": "[{'type': 'float_parsing', 'loc': ('body', 'repeat_penalty'), 'msg': 'Input should "
                                "be a valid number'}]", "type": "internal_server_error", "param": None, "code": None}},
     "repeat_penalty"),
    # TGI: a backticked parameter in a 422
    (422, {"error": "Input validation error: `top_p` must be > 0.0 and < 1.0", "error_type": "validation"}, "top_p"),
])
def test_a_refused_parameter_stops_the_run_naming_it(tmp_path, status, body, field):
    with LoopbackOpenAI(ScriptedDialogues(LABELS), faults=[(status, body)] * 5) as loopback:
        with pytest.raises(FatalRequestError, match=rf"rejected the request field '{field}' \(HTTP {status}\).*"
                                                    rf"llm\.server=llama_cpp_python"):
            ask(make_cfg(tmp_path, loopback.v1, "llm.server=llama_cpp_python"), [None])
        assert len(loopback.requests) == 1


def test_chat_route_yields_exactly_the_valid_dialogues_despite_faults(tmp_path):
    n, attempts = 8, 3
    script = ScriptedDialogues(LABELS)
    faults = [429, 503, "html", "invalid_json", "foo", (500, {"error": {"message": "out of memory",
                                                                         "type": "internal_server_error"}})]
    with LoopbackOpenAI(script, faults=faults) as loopback:
        result = generate(make_cfg(tmp_path, loopback.v1, f"n_dialogues={n}", f"max_attempts={attempts}",
                                   "llm.concurrency=2"))
    assert result["generation"]["retried_faults"] == {"MalformedAnswerError": 3, "TransientError": 3}
    records = read_jsonl(out_dir(tmp_path) / "requests.jsonl")
    assert len(records) == expected_requests(n, attempts, balanced=False)
    dialogues = read_jsonl(out_dir(tmp_path) / "dialogues.jsonl")
    assert {d["meta"]["dialogue"]: d["meta"]["attempt"] for d in dialogues} == expected_slots(n, attempts, False)


def test_the_route_is_recorded_and_part_of_the_identity_and_a_rerun_resumes(tmp_path):
    system = "prompt.system=You write TV dialogues."
    with LoopbackOpenAI(ScriptedDialogues(LABELS)) as loopback:
        card = generate(make_cfg(tmp_path, loopback.v1, "n_dialogues=4", "llm.server=ollama", system))
        first = len(loopback.requests)
        assert first == expected_requests(4, 3, balanced=False)
        generate(make_cfg(tmp_path, loopback.v1, "n_dialogues=4", "llm.server=ollama", system))
        assert len(loopback.requests) == first  # nothing asked again
        with pytest.raises(GenerationError, match="other settings"):  # the completions route is another setup
            generate(make_cfg(tmp_path, loopback.v1, "n_dialogues=4", "llm.server=vllm", "llm.route=completions"))
        assert len(loopback.requests) == first
    records = read_jsonl(out_dir(tmp_path) / "requests.jsonl")
    assert {r["route"] for r in records} == {"chat"}
    assert all(r["prompt"][0] == {"role": "system", "content": "You write TV dialogues."} for r in records)
    assert all(r["prompt"][1]["role"] == "user" and "(1) neutral" in r["prompt"][1]["content"] for r in records)
    run, refused = read_jsonl(out_dir(tmp_path) / "runs.jsonl")  # the rerun had nothing to do: no line
    assert refused["route"] == "completions" and "other settings" in refused["error"]
    assert run["route"] == "chat" and run["setup"]["route"] == "chat" and "chat_template" not in run["setup"]
    assert run["provenance"]["route"] == "chat" and run["provenance"]["server"] == "ollama"
    assert any(item.startswith("top_k=10000 (Ollama's /v1 has no top_k") for item in run["not_honoured"])
    assert card["generator"]["provenance"]["route"] == "chat"
    assert "via the `openai` backend (ollama, route chat)" in (out_dir(tmp_path) / "README.md").read_text()
    assert any("Ollama" in item for item in card["generator"]["not_honoured"])
    # The prompt and the route are in the fingerprint.
    record = records[0]
    same = dict(backend="openai", model=record["model"], template_hash=record["template_hash"],
                parameters=run["setup"]["parameters"], seed=record["seed"], grammar=None)
    assert fingerprint(prompt=record["prompt"], route="chat", **same) == record["fingerprint"]
    assert fingerprint(prompt=record["prompt"], route="completions", **same) != record["fingerprint"]


def test_completions_route_fingerprints_are_those_of_old_stores():
    """Stores written before routes existed stay resumable: no route key on the completions route."""
    same = dict(backend="openai", model="m", template_hash="t", prompt="USER: hi ASSISTANT:",
                parameters={"temperature": 0.7}, seed=3, grammar=None)
    assert fingerprint(route="completions", **same) == fingerprint(**same) == canonical_hash(same)


def test_a_server_without_a_grammar_field_records_it_as_not_honoured(tmp_path):
    with LoopbackOpenAI(ScriptedDialogues(LABELS)) as loopback:
        card = generate(make_cfg(tmp_path, loopback.v1, "llm.server=plain", "sampling=paper_constrained",
                                 "n_dialogues=2", "max_attempts=1"))
    assert all("structured_outputs" not in body and "response_format" not in body for body in loopback.requests)
    lost = card["generator"]["not_honoured"]
    assert "constrained decoding (the line grammar): hosted OpenAI (llm.server=plain) has no field for it on " \
           "/v1/chat/completions" in lost
    assert json.dumps(lost) in json.dumps(read_jsonl(out_dir(tmp_path) / "runs.jsonl")[-1]["not_honoured"])


def test_hosted_openai_strict_schema_drops_only_string_lengths():
    """Strict mode refuses minLength/maxLength: the dialogue schema reaches hosted OpenAI without them and with
    everything else (enums, turn bounds, required fields, no extra properties) as built."""
    schema = dialogue_schema(("Joey", "Ross"), LABELS, 3, 12, 160)
    sent = dialect("plain", "chat").constraint_fields(schema)["response_format"]["json_schema"]
    turn = schema.schema()["properties"]["dialogue"]["items"]
    assert sent["strict"] is True and "minLength" in json.dumps(turn)
    expected = schema.schema()
    expected["properties"]["dialogue"]["items"]["properties"]["text"] = {"type": "string"}
    assert sent["schema"] == expected
    assert dialect("vllm", "chat").constraint_fields(schema) == {"structured_outputs": {"json": schema.schema()}}
