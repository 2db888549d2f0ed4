"""Units of the generator: configs, Table II per backend, seeds, prompts, grammar, store, dedup, split."""

from __future__ import annotations

import dataclasses
import json
import re

import pytest
from hydra import compose, initialize_config_dir

import erc  # noqa: F401
from erc.data.dedup import deduplicate
from erc.data.schema import DataError, Dialogue, Utterance
from erc.errors import ConfigError
from erc.generation.prompts import plan_dialogue, render_user_prompt
from erc.generation.split import assign_split, assign_splits, check_ratios, dialogues_needed, position
from erc.llm.dialects import DIALECTS
from erc.llm.grammar import DialogueGrammar, JsonSchema
from erc.llm.sampling import Sampling, derive_seed, llama_cpp_parameters, openai_parameters, tgi_parameters
from erc.llm.store import RequestStore, read_records
from erc.llm.templates import label_options, load_template
from erc.paths import CONFIG_DIR

MELD = ["neutral", "joy", "surprise", "anger", "sadness", "disgust", "fear"]


def compose_generate(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=list(overrides), return_hydra_config=True)


def test_defaults_local_constrained_and_out_dir():
    cfg = compose_generate("paths.data_dir=/data", "paths.synthetic_dir=/data/synthetic")
    assert cfg.task_name == "generate" and cfg.llm.backend == "local"
    assert cfg.sampling.name == "embedded" and cfg.sampling.constrained is True  # the embedded default
    assert cfg.sampling.grammar.no_label_counting is True
    assert cfg.out_dir == "/data/synthetic/meld_nat"
    cfg = compose_generate("paths.synthetic_dir=/data/synthetic", "llm=tgi", "prompt=balanced", "benchmark=emorynlp")
    assert cfg.sampling.constrained is False  # the paper sampled freely
    assert cfg.out_dir == "/data/synthetic/emorynlp_bal"
    assert compose_generate("sampling=paper").sampling.constrained is False  # explicit choice wins


def test_table_ii_per_backend():
    cfg = compose_generate("llm=tgi")
    s = Sampling.from_config(cfg.sampling, list(cfg.llm.stop))
    tgi, lost = tgi_parameters(s)
    assert "top_p" not in tgi and tgi["typical_p"] == 0.995 and tgi["top_k"] == 10000 and tgi["temperature"] == 0.7
    assert lost == []
    standard, extra, lost = openai_parameters(s, "vllm")
    assert standard["top_p"] == 1.0 and extra == {"top_k": 10000, "min_p": 0.0, "repetition_penalty": 1.0}
    assert any("typical_p" in item for item in lost)
    standard, extra, lost = openai_parameters(s, "llamacpp")
    assert extra == {"top_k": 10000, "typical_p": 0.995, "min_p": 0.0, "repeat_penalty": 1.0} and lost == []
    _, extra, lost = openai_parameters(s, "plain")
    assert extra == {} and any("top_k" in item for item in lost)
    local = llama_cpp_parameters(s)
    assert local["min_p"] == 0.0 and local["top_k"] == 10000 and local["top_p"] == 1.0 and local["typical_p"] == 0.995


def test_derived_seeds_are_reproducible_and_distinct():
    seeds = {derive_seed(1234, d, a) for d in range(200) for a in range(3)}
    assert len(seeds) == 600 and all(0 <= s < 2**31 for s in seeds)
    assert derive_seed(1234, 5, 1) == derive_seed(1234, 5, 1) != derive_seed(1235, 5, 1)


def test_prompts_fill_speakers_numbered_labels_and_balanced_target():
    cfg = compose_generate("prompt=balanced")
    template = load_template(cfg.prompt.template)
    gen = cfg.benchmark.generation
    specs = [plan_dialogue(i, seed=1, mode="balanced", labels=MELD, speaker_pool=list(gen.speaker_pool),
                           speakers_per_dialogue=list(gen.speakers_per_dialogue)) for i in range(70)]
    assert [s.target for s in specs[:8]] == [*MELD, "neutral"]
    assert all(list(s.target for s in specs).count(label) == 10 for label in MELD)  # equal per label
    assert all(2 <= len(s.speakers) <= 4 and set(s.speakers) <= set(gen.speaker_pool) for s in specs)
    prompt = render_user_prompt(template, specs[6], participants=gen.participants, labels=MELD)
    names = list(specs[6].speakers)
    assert f"{', '.join(names[:-1])} and {names[-1]} from the TV show Friends" in prompt
    assert "at least one utterance expressing fear." in prompt and "(7) fear" in prompt
    assert "(7) fear" not in prompt.split("expressing")[0]  # the target is named, not numbered
    assert label_options(MELD[:2]) == "(1) neutral, (2) joy"
    assert not prompt.startswith("#")  # template comments never reach the model
    # The speakers of dialogue i do not depend on how many dialogues are planned.
    assert plan_dialogue(6, seed=1, mode="natural", labels=MELD, speaker_pool=list(gen.speaker_pool),
                         speakers_per_dialogue=[2, 4]).speakers == specs[6].speakers


def test_grammar_regex_admits_only_dialogue_lines():
    grammar = DialogueGrammar(("Joey", "Rachel"), 7, 2, 4, 40)
    regex = re.compile(grammar.regex())
    assert regex.fullmatch("Joey: Hi there. (2)\nRachel: Oh no! (7)\n")
    assert not regex.fullmatch("Joey: Hi there. (8)\nRachel: Oh no! (7)\n")  # label out of range
    assert not regex.fullmatch("Ross: Hi there. (2)\nRachel: Oh no! (7)\n")  # unknown speaker
    assert not regex.fullmatch("Joey: Hi there. (2)\n")  # too few turns
    assert not regex.fullmatch("Joey: Hi. Rachel: Hey (1)\nRachel: Oh no! (7)\n")  # a second turn in a line
    gbnf = grammar.gbnf()
    assert 'speaker ::= "Joey" | "Rachel"' in gbnf and "root ::= line{2,4}" in gbnf


def test_grammar_without_label_counting_unrolls_turns():
    gbnf = DialogueGrammar(("Joey", "Rachel"), 3, 1, 2, 40, no_label_counting=True).gbnf()
    rules = dict(line.split(" ::= ") for line in gbnf.strip().splitlines())
    assert rules["root"] == "t0-0"
    assert '"2)\\n" t2-2' not in rules["t1-1"] and '"1)\\n" t2-1' in rules["t1-1"]  # no 1 -> 2
    assert rules["t1-3"].startswith('"" | ')  # may stop after min_turns
    assert rules["t2-1"] == '""'  # must stop at max_turns


def test_grammars_parse_in_llama_cpp():
    llama_cpp = pytest.importorskip("llama_cpp")
    from erc.llm.backends import FatalRequestError
    from erc.llm.backends.local import bundled_model_path, check_gbnf

    llama = llama_cpp.Llama(model_path=str(bundled_model_path()), n_ctx=64, verbose=False)
    for no_counting in (False, True):
        check_gbnf(llama, DialogueGrammar(("Male", "Female"), 6, 3, 8, 120, no_counting).gbnf())
    with pytest.raises(FatalRequestError, match="cannot parse"):
        check_gbnf(llama, "root ::= t0_0\nt0_0 ::= \"a\"\n")  # "_" is not allowed in GBNF names
    llama.close()


def test_store_drops_and_repairs_a_torn_last_line(tmp_path, caplog):
    path = tmp_path / "requests.jsonl"
    store = RequestStore(path)
    store.append({"fingerprint": "a", "text": "x"})
    store.append({"fingerprint": "b", "text": "y"})
    store.close()
    with open(path, "a") as handle:
        handle.write('{"fingerprint": "c", "te')  # killed mid-write
    assert [r["fingerprint"] for r in read_records(path)] == ["a", "b"]
    assert "torn record" in caplog.text
    store = RequestStore(path)  # repairs, then appends on a clean line
    store.append({"fingerprint": "c", "text": "z"})
    store.close()
    assert [json.loads(line)["fingerprint"] for line in path.read_text().splitlines()] == ["a", "b", "c"]


def test_store_rejects_a_corrupt_line_in_the_middle(tmp_path):
    path = tmp_path / "requests.jsonl"
    path.write_text('{"fingerprint": "a"}\nnot json\n{"fingerprint": "b"}\n')
    with pytest.raises(DataError, match=r"requests\.jsonl: line 2"):
        read_records(path)


def dialogue(i: int, lines: list[str]) -> Dialogue:
    return Dialogue(f"d{i}", [Utterance("Joey", text, "joy") for text in lines], "meld", "", "nat")


def test_dedup_removes_exact_and_near_duplicates_keeping_the_first():
    base = ["We went to the park and fed the ducks all afternoon.", "The weather was lovely and nobody was late.",
            "Then it rained and everybody ran back to the coffee house."]
    dialogues = [
        dialogue(0, base),
        dialogue(1, [line.upper() for line in base]),  # same words: exact duplicate
        dialogue(2, [*base[:2], "Then it rained and everybody ran back to the coffee house!!", "Okay."]),
        dialogue(3, ["Completely different words about a trip to Vermont.", "Skiing sounds cold to me honestly."]),
    ]
    kept, removed = deduplicate(dialogues, threshold=0.7, num_perm=128, shingle_words=3)
    assert [d.id for d in kept] == ["d0", "d3"]
    assert removed == {"exact": 1, "near": 1}


def test_split_is_deterministic_by_id_and_follows_ratios():
    ratios = check_ratios({"train": 0.8, "dev": 0.1, "test": 0.1})
    splits = [assign_split(f"meld_bal_{i:06d}", ratios) for i in range(4000)]
    assert splits == [assign_split(f"meld_bal_{i:06d}", ratios) for i in range(4000)]
    assert 0.77 < splits.count("train") / 4000 < 0.83 and 0.08 < splits.count("test") / 4000 < 0.12
    with pytest.raises(ConfigError, match="split"):
        check_ratios({"train": 0.8, "dev": 0.3, "test": 0.1})


def test_each_dialect_spells_constraints_its_own_way():
    grammar = DialogueGrammar(("Joey", "Rachel"), 7, 2, 4, 40)
    schema = JsonSchema.of("dialogue", {"type": "object", "properties": {"x": {"type": "string"}}})
    regex, gbnf, body = grammar.regex(), grammar.gbnf(), schema.schema()
    openai_format = {"type": "json_schema", "json_schema": {"name": "dialogue", "schema": body}}
    want = {  # (server, route): (line grammar fields, JSON schema fields); None: no field, recorded as lost
        ("vllm", "completions"): ({"structured_outputs": {"regex": regex}}, {"structured_outputs": {"json": body}}),
        ("vllm", "chat"): ({"structured_outputs": {"regex": regex}}, {"structured_outputs": {"json": body}}),
        ("sglang", "chat"): ({"regex": regex}, {"response_format": openai_format}),
        ("llamacpp", "completions"): ({"grammar": gbnf}, {"json_schema": body}),
        ("llamacpp", "chat"): ({"grammar": gbnf}, {"json_schema": body}),
        ("llama_cpp_python", "completions"): ({"grammar": gbnf}, {"grammar": schema.gbnf()}),
        ("llama_cpp_python", "chat"): ({"grammar": gbnf},
                                       {"response_format": {"type": "json_object", "schema": body}}),
        ("ollama", "chat"): (None, {"response_format": openai_format}),
        ("tgi", "chat"): ({"response_format": {"type": "regex", "value": regex}},
                          {"response_format": {"type": "json", "value": body}}),
        ("plain", "completions"): (None, None),
        ("plain", "chat"): (None, {"response_format": {"type": "json_schema", "json_schema": {
            "name": "dialogue", "schema": body, "strict": True}}}),
    }
    assert set(want) == set(DIALECTS)
    for key, (for_grammar, for_schema) in want.items():
        assert (DIALECTS[key].constraint_fields(grammar), DIALECTS[key].constraint_fields(schema)) == \
            (for_grammar, for_schema), key
    assert {key for key, d in DIALECTS.items() if d.gbnf} == {
        ("llamacpp", "completions"), ("llamacpp", "chat"), ("llama_cpp_python", "completions"),
        ("llama_cpp_python", "chat")}


def test_table_ii_on_the_chat_route_per_server():
    cfg = compose_generate("llm=openai", "llm.route=chat")
    s = Sampling.from_config(cfg.sampling, [])
    standard, extra, lost = openai_parameters(s, "vllm", "chat")
    assert standard == {"temperature": 0.7, "top_p": 1.0, "max_completion_tokens": 512, "stop": ["\n\n\n"]}
    assert extra == {"top_k": 10000, "min_p": 0.0, "repetition_penalty": 1.0} and lost == [
        "typical_p=0.995 (vLLM has no typical_p)"]
    _, extra, lost = openai_parameters(s, "llamacpp", "chat")
    assert extra == {"top_k": 10000, "typical_p": 0.995, "min_p": 0.0, "repeat_penalty": 1.0} and lost == []
    standard, extra, lost = openai_parameters(s, "llama_cpp_python", "chat")
    assert "max_tokens" in standard and extra == {"top_k": 10000, "min_p": 0.0, "repeat_penalty": 1.0}
    assert [item.split("=")[0] for item in lost] == ["typical_p"]
    standard, extra, lost = openai_parameters(s, "tgi", "chat")
    assert "top_p" not in standard and extra == {}  # TGI rejects top_p >= 1; omitted means 1.0
    assert [item.split("=")[0] for item in lost] == ["top_k", "typical_p"]  # repetition_penalty 1.0 is neutral
    assert "top_p" in openai_parameters(dataclasses.replace(s, top_p=0.9), "tgi", "chat")[0]
    _, extra, lost = openai_parameters(s, "ollama", "chat")  # its own defaults apply: every one is lost
    assert extra == {} and [item.split("=")[0] for item in lost] == ["top_k", "typical_p", "min_p",
                                                                     "repetition_penalty"]
    standard, extra, lost = openai_parameters(s, "plain", "chat")
    assert extra == {} and "max_completion_tokens" in standard and "max_tokens" not in standard


def test_temperature_0_is_greedy_on_every_backend():
    cfg = compose_generate("llm=tgi", "sampling.temperature=0")
    s = Sampling.from_config(cfg.sampling, list(cfg.llm.stop))
    assert s.greedy
    tgi, _ = tgi_parameters(s)  # TGI rejects temperature 0 and samples whenever a sampling field is given
    assert tgi["do_sample"] is False and not {"temperature", "top_k", "top_p", "typical_p"} & set(tgi)
    assert all(openai_parameters(s, server, route)[0]["temperature"] == 0 for server, route in DIALECTS)
    assert llama_cpp_parameters(s)["temperature"] == 0  # llama.cpp's greedy sampler at 0


@pytest.mark.parametrize("overrides, message", [
    (["llm.route=chat", "llm.server=vllms"], r"llm\.server must be one of vllm, sglang, .*got 'vllms'"),
    (["llm.route=messages"], r"llm\.route must be one of completions, chat, got 'messages'"),
    (["llm.server=ollama"], r"llm\.server=ollama is not supported on llm\.route=completions .*llm\.route=chat"),
    (["llm.server=tgi"], r"llm\.server=tgi is not supported on llm\.route=completions .*llm=tgi"),
])
def test_server_and_route_are_checked_before_any_request(overrides, message):
    from erc.generation.checks import check_generation_config

    with pytest.raises(ConfigError, match=message):
        check_generation_config(compose_generate("llm=openai", *overrides))


def test_small_set_repair_fills_every_split_moving_the_nearest_dialogue_of_the_largest():
    ratios = check_ratios({"train": 0.5, "dev": 0.25, "test": 0.25})
    ids = [f"iemocap_nat_{i:06d}" for i in range(6)]
    assert {assign_split(i, ratios) for i in ids} == {"train"}  # hashed, dev and test are empty
    splits = assign_splits(ids, ratios)
    assert sorted(splits.values()) == ["dev", "test", "train", "train", "train", "train"]
    by_position = sorted(ids, key=position)  # train is [0, .5): the two highest positions are nearest
    assert splits[by_position[-1]] == "dev" and splits[by_position[-2]] == "test"
    assert assign_splits(ids[:2], ratios) == {i: "train" for i in ids[:2]}  # fewer than 3: nothing to repair with
    assert dialogues_needed(ratios) == 3 and dialogues_needed({"train": 0.9, "dev": 0.1, "test": 0.0}) == 2
    many = [f"meld_bal_{i:06d}" for i in range(300)]
    assert assign_splits(many, ratios) == {i: assign_split(i, ratios) for i in many}  # large sets: pure hash
