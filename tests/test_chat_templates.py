"""Client-side chat templates (``llm.chat_template=auto`` with ``llm.tokenizer``) and the model presets of
``conf/model/``: each preset renders exactly the text its model expects (``../shared/docs/reference-chat-servers.md``
§3), the text sent drops the BOS the server's tokenizer adds again, and the errors name the key to fix.

No hub is reachable here, so each model's tokenizer is a tiny real one built in ``tmp_path`` around the model's
published template (``tests/fixtures/chat_templates/``), with its BOS/EOS tokens and whether it adds BOS."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from omegaconf import OmegaConf

import erc  # noqa: F401
from erc.data.labels import label_set
from erc.errors import ConfigError
from erc.generation import run_requests
from erc.generation.prompts import plan_dialogue, render_user_prompt
from erc.llm.chat_templates import (
    chat_messages,
    chat_template_setup,
    check_chat_template,
    model_template,
    text_prompt,
)
from erc.llm.templates import apply_chat_template, load_template
from erc.pipeline import generate

from helpers.config import compose_config
from helpers.loopback_tgi import LoopbackTGI, ScriptedDialogues

TEMPLATES = Path(__file__).parent / "fixtures" / "chat_templates"
SYSTEM = "S"

# The tokenizer facts of each preset's model: BOS and EOS text, whether the tokenizer adds BOS to a text.
TOKENIZERS = {
    "llama-3.1-8b": {"bos": "<|begin_of_text|>", "eos": "<|eot_id|>", "adds_bos": True},
    "qwen-2.5-7b": {"bos": None, "eos": "<|im_end|>", "adds_bos": False},
    "mistral-7b-v0.3": {"bos": "<s>", "eos": "</s>", "adds_bos": True},
}

# reference-chat-servers.md §3, for [{"role": "user", "content": "Hi"}] and, with a system message "S", as stated there.
LLAMA_HEAD = ("<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: December 2023\n"
              "Today Date: 26 Jul 2024\n\n")
LLAMA_TAIL = ("<|eot_id|><|start_header_id|>user<|end_header_id|>\n\nHi<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n")
QWEN_TAIL = "<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
EXPECTED = {
    ("llama-3.1-8b", None): LLAMA_HEAD + LLAMA_TAIL,
    ("llama-3.1-8b", SYSTEM): LLAMA_HEAD + SYSTEM + LLAMA_TAIL,  # after the date block, before <|eot_id|>
    ("qwen-2.5-7b", None): "<|im_start|>system\nYou are Qwen, created by Alibaba Cloud. You are a helpful assistant."
                           + QWEN_TAIL,
    ("qwen-2.5-7b", SYSTEM): "<|im_start|>system\n" + SYSTEM + QWEN_TAIL,  # replaces the default one
    ("mistral-7b-v0.3", None): "<s>[INST] Hi[/INST]",
    ("mistral-7b-v0.3", SYSTEM): "<s>[INST] S\n\nHi[/INST]",  # in front of the last user message
}
VICUNA_HI = ("A chat between a curious user and an artificial intelligence assistant. The assistant gives helpful, "
             "detailed, and polite answers to the user's questions. USER: Hi ASSISTANT:")


def tokenizer_folder(root: Path, preset: str, *, adds_bos: bool | None = None, template: str | None = None) -> Path:
    """A real tokenizer folder (tokenizer.json, tokenizer_config.json, chat_template.jinja) for ``preset``'s model:
    a word-level vocabulary with the model's special tokens, a post-processor that adds BOS when the model's
    does, and the model's chat template (``template`` replaces it; "" leaves it out)."""
    from tokenizers import Tokenizer, models, pre_tokenizers, processors
    from transformers import PreTrainedTokenizerFast

    facts = TOKENIZERS[preset]
    bos, eos = facts["bos"], facts["eos"]
    vocab = {"[UNK]": 0, **{token: i for i, token in enumerate([t for t in (bos, eos) if t], start=1)}}
    backend = Tokenizer(models.WordLevel(vocab, unk_token="[UNK]"))
    backend.pre_tokenizer = pre_tokenizers.Whitespace()
    if facts["adds_bos"] if adds_bos is None else adds_bos:
        backend.post_processor = processors.TemplateProcessing(single=f"{bos} $A", special_tokens=[(bos, vocab[bos])])
    tokenizer = PreTrainedTokenizerFast(tokenizer_object=backend, bos_token=bos, eos_token=eos, unk_token="[UNK]")
    text = (TEMPLATES / f"{preset}.jinja").read_text(encoding="utf-8") if template is None else template
    if text:
        tokenizer.chat_template = text
    folder = root / f"tokenizer-{preset}-{adds_bos}-{len(text)}"
    tokenizer.save_pretrained(folder)
    return folder


def compose_generate(*overrides: str):
    return compose_config("generate", overrides)


def without_leading(text: str, bos: str | None) -> str:
    return text[len(bos):] if bos and text.startswith(bos) else text


@pytest.mark.parametrize("system", [None, SYSTEM], ids=["user", "system+user"])
@pytest.mark.parametrize("preset", list(TOKENIZERS))
def test_each_preset_renders_the_text_its_model_expects(tmp_path, preset, system):
    cfg = compose_generate("llm=tgi", f"model={preset}", f"llm.tokenizer={tokenizer_folder(tmp_path, preset)}")
    rendered = model_template(cfg.llm.tokenizer).render(chat_messages("Hi", system))
    assert rendered == EXPECTED[preset, system]
    # TGI, vLLM and llama.cpp add the tokenizer's BOS to a text prompt: what is sent leaves the template's out.
    sent = text_prompt(cfg.llm, "Hi", system)
    assert sent == without_leading(EXPECTED[preset, system], TOKENIZERS[preset]["bos"])


@pytest.mark.parametrize("preset", [p for p, facts in TOKENIZERS.items() if facts["adds_bos"]])
def test_the_text_sent_tokenizes_to_one_bos_and_keeps_it_when_the_tokenizer_adds_none(tmp_path, preset):
    bos = TOKENIZERS[preset]["bos"]
    adding = model_template(str(tokenizer_folder(tmp_path, preset)))
    ids = adding.tokenizer(adding.text_prompt("Hi"))["input_ids"]  # tokenized as TGI/vLLM do: special tokens on
    assert ids.count(adding.tokenizer.bos_token_id) == 1 and ids[0] == adding.tokenizer.bos_token_id
    doubled = adding.tokenizer(adding.render(chat_messages("Hi")))["input_ids"]
    assert doubled[:2] == [adding.tokenizer.bos_token_id] * 2  # what sending the rendered text would give

    not_adding = model_template(str(tokenizer_folder(tmp_path, preset, adds_bos=False)))
    assert not_adding.text_prompt("Hi") == EXPECTED[preset, None]
    assert not_adding.text_prompt("Hi").startswith(bos)


def test_the_vicuna_preset_is_the_papers_string_byte_for_byte():
    default = compose_generate("llm=tgi")
    for backend in ("tgi", "openai", "local"):
        preset = compose_generate(f"llm={backend}", "model=vicuna-13b")
        assert preset.llm.chat_template == default.llm.chat_template
        assert list(preset.llm.stop) == ["</s>", "USER:"]
        assert text_prompt(preset.llm, "Hi") == VICUNA_HI == apply_chat_template(default.llm.chat_template, "Hi")
        # the setup records a {prompt} string as it always did: a paper-default store keeps its setup hash
        assert chat_template_setup(preset.llm) == {"chat_template": default.llm.chat_template}


@pytest.mark.parametrize("backend", ["tgi", "openai", "local"])
def test_presets_compose_with_every_backend(backend):
    plain = compose_generate(f"llm={backend}")
    assert plain.llm.tokenizer is None  # no preset by default: each backend keeps its own template
    for preset, facts in TOKENIZERS.items():
        cfg = compose_generate(f"llm={backend}", f"model={preset}")
        assert cfg.llm.backend == backend and cfg.llm.chat_template == "auto"
        assert cfg.llm.tokenizer == cfg.llm.model and "/" in cfg.llm.tokenizer  # the hub id, served under it by vLLM
        assert facts["eos"] in cfg.llm.stop
        assert cfg.sampling.name == plain.sampling.name  # a preset leaves sampling to the backend's choice


def test_two_models_templates_are_two_setups(tmp_path):
    setups = []
    for preset in TOKENIZERS:
        folder = tokenizer_folder(tmp_path, preset)
        setup = chat_template_setup(compose_generate("llm=tgi", f"model={preset}", f"llm.tokenizer={folder}").llm)
        assert setup["chat_template"] == "auto" and setup["tokenizer"] == str(folder)
        setups.append(setup["chat_template_hash"])
    assert len(set(setups)) == len(setups)


def test_generate_sends_tgi_the_llama_template_without_the_doubled_bos(tmp_path):
    """The real path: generate's config with model=llama-3.1-8b, the tgi backend, the loopback TGI server."""
    labels = label_set("iemocap")
    folder = tokenizer_folder(tmp_path, "llama-3.1-8b")
    with LoopbackTGI(ScriptedDialogues(labels)) as server:
        cfg = compose_generate("llm=tgi", "model=llama-3.1-8b", f"llm.tokenizer={folder}", f"llm.url={server.url}",
                               "benchmark=iemocap", "n_dialogues=2", "max_attempts=1", f"paths.data_dir={tmp_path}")
        run_requests(cfg)
        received = [body["inputs"] for body in server.answered]
    out = Path(cfg.out_dir)
    records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert sorted(r["prompt"] for r in records) == sorted(received) and len(records) == 2
    gen = cfg.benchmark.generation
    for record in records:
        spec = plan_dialogue(record["dialogue"], seed=int(cfg.seed), mode=cfg.prompt.mode, labels=labels,
                             speaker_pool=list(gen.speaker_pool), speakers_per_dialogue=list(gen.speakers_per_dialogue))
        user = render_user_prompt(load_template(cfg.prompt.template), spec, participants=gen.participants,
                                  labels=labels)
        assert record["prompt"] == EXPECTED["llama-3.1-8b", None][len("<|begin_of_text|>"):].replace("Hi", user)
    setup = json.loads((out / "runs.jsonl").read_text().splitlines()[-1])["setup"]
    assert setup["tokenizer"] == str(folder)
    assert setup["chat_template_hash"] == model_template(str(folder)).template_hash


def check(*overrides: str, system: str | None = None) -> None:
    cfg = compose_generate(*overrides)
    check_chat_template(OmegaConf.merge(cfg, {"prompt": {"system": system}}) if system else cfg)


def test_auto_without_a_tokenizer_is_refused_before_any_request(tmp_path):
    with LoopbackTGI(ScriptedDialogues(label_set("iemocap"))) as server:
        cfg = compose_generate("llm=tgi", f"llm.url={server.url}", "llm.chat_template=auto", "benchmark=iemocap",
                               "n_dialogues=1", f"paths.data_dir={tmp_path}")
        with pytest.raises(ConfigError, match=r"llm\.chat_template=auto needs llm\.tokenizer"):
            generate(cfg)
        assert server.requests == []


def test_a_tokenizer_that_cannot_be_loaded_names_the_key_the_hub_and_a_folder(tmp_path, monkeypatch):
    with pytest.raises(ConfigError, match=r"llm\.tokenizer=\S+/missing: no such folder; it needs the Hugging Face hub"):
        check("llm=tgi", "model=qwen-2.5-7b", f"llm.tokenizer={tmp_path}/missing")
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)  # as HF_HUB_OFFLINE=1 does
    with pytest.raises(ConfigError) as err:
        check("llm=openai", "model=qwen-2.5-7b", "llm.tokenizer=erc-tests/no-such-model")
    message = str(err.value)
    assert message.startswith("llm.tokenizer=erc-tests/no-such-model cannot be loaded")
    assert "Hugging Face hub" in message and "local folder" in message and "HF_HUB_OFFLINE" in message


def test_a_tokenizer_without_a_chat_template_is_refused(tmp_path):
    folder = tokenizer_folder(tmp_path, "mistral-7b-v0.3", template="")
    with pytest.raises(ConfigError, match=r"llm\.tokenizer=\S+ has no chat template"):
        check("llm=local", "model=mistral-7b-v0.3", f"llm.tokenizer={folder}")


def test_a_template_that_refuses_the_conversation_and_a_system_message_without_a_place_are_config_errors(tmp_path):
    refusing = tokenizer_folder(tmp_path, "qwen-2.5-7b", template=(
        "{% if messages[0]['role'] == 'system' %}{{ raise_exception('System role not supported') }}{% endif %}"
        "{{ messages[-1]['content'] }}"))
    check("llm=tgi", "model=qwen-2.5-7b", f"llm.tokenizer={refusing}")  # no system message: fine
    with pytest.raises(ConfigError, match=r"llm\.tokenizer=\S+ refuses a system\+user conversation: System role"):
        check("llm=tgi", "model=qwen-2.5-7b", f"llm.tokenizer={refusing}", system=SYSTEM)
    with pytest.raises(ConfigError, match=r"prompt\.system is set but llm\.chat_template=.A chat between"):
        check("llm=tgi", "model=vicuna-13b", system=SYSTEM)
    with pytest.raises(ConfigError, match=r"llm\.chat_template=gguf reads the template of a GGUF file: only llm=local"):
        check("llm=tgi", "llm.chat_template=gguf")
    with pytest.raises(ConfigError, match=r"llm\.chat_template must be auto \(with llm\.tokenizer\), a string with"):
        check("llm=openai", "llm.chat_template='USER: hello'")


def test_the_embedded_backend_renders_auto_and_lets_llama_cpp_decide_the_bos(tmp_path):
    """llm=local with auto: the tokenizer's template, BOS dropped only when llama.cpp adds one (SmolLM2 does not)."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (part of `make install`)")
    from erc.llm.backends import make_backend
    from erc.llm.sampling import Sampling

    cfg = compose_generate("llm=local", "model=llama-3.1-8b", "llm.n_threads=1",
                           f"llm.tokenizer={tokenizer_folder(tmp_path, 'llama-3.1-8b')}")

    async def prompts() -> tuple[str, str]:
        backend = make_backend(cfg.llm, Sampling.from_config(cfg.sampling, list(cfg.llm.stop)))
        await backend.start()
        try:
            assert backend.llama.tokenize(b"a", add_bos=True)[:1] != [backend.llama.token_bos()]
            return backend.prompt("Hi"), backend.prompt("Hi", SYSTEM)
        finally:
            await backend.close()

    user, with_system = asyncio.run(prompts())
    assert user == EXPECTED["llama-3.1-8b", None]  # the HF tokenizer adds BOS, but llama.cpp reads this text
    assert with_system == EXPECTED["llama-3.1-8b", SYSTEM]
