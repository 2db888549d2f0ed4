"""Client-side chat templates: how a user prompt (and an optional system message) becomes the text sent on the
text routes (TGI ``/generate``, ``/v1/completions``, the embedded model).

``llm.chat_template`` is one of:

- a string with ``{prompt}`` (the paper's Vicuna v1.1 string), or ``none`` (the prompt as is), rendered by
  :func:`erc.generation.prompts.apply_chat_template`, byte for byte as before;
- ``auto``: the model's own Jinja template, read from ``llm.tokenizer`` (a hub id or a local folder) and rendered
  by transformers' ``apply_chat_template``, so any instruct model gets its template without hand-typing;
- ``gguf`` (``llm=local`` only): the template stored in the GGUF file (:class:`erc.llm.backends.local`).

**BOS.** The Llama and Mistral templates begin with the BOS text (``<|begin_of_text|>``, ``<s>``), and TGI, vLLM
and llama.cpp tokenize a text prompt with the tokenizer's special tokens, adding a BOS of their own: the model
would see two. So the text sent drops the leading BOS text whenever the tokenizer that will read it adds BOS
itself (:func:`without_bos`); a template without BOS (Qwen) or a tokenizer that adds none is sent as rendered.
"""

from __future__ import annotations

import functools
import hashlib
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from erc.errors import ConfigError
from erc.llm.templates import apply_chat_template

log = logging.getLogger(__name__)

AUTO = "auto"
GGUF = "gguf"
NONE = "none"


def chat_messages(user_prompt: str, system: str | None = None) -> list[dict[str, str]]:
    """The conversation every template renders: an optional system message, then the user prompt."""
    system_message = [{"role": "system", "content": system}] if system is not None else []
    return [*system_message, {"role": "user", "content": user_prompt}]


def without_bos(text: str, bos_text: str | None, tokenizer_adds_bos: bool) -> str:
    """``text`` without its leading BOS text when the tokenizer that reads it adds a BOS itself (else two)."""
    if tokenizer_adds_bos and bos_text and text.startswith(bos_text):
        return text[len(bos_text):]
    return text


def adds_bos(encode, bos_id: int | None) -> bool:
    """Whether a tokenizer puts ``bos_id`` in front of a text on its own: ``encode(with_special_tokens)`` gives
    the ids of one fixed probe text with and without the tokenizer's special tokens."""
    if bos_id is None:
        return False
    with_special, plain = encode(True), encode(False)
    return with_special[:1] == [bos_id] and plain[:1] != [bos_id]


@dataclass(frozen=True)
class ModelTemplate:
    """The chat template of a Hugging Face tokenizer (``llm.tokenizer``), rendered with the tokenizer's own
    special tokens. ``adds_bos``: whether this tokenizer adds a BOS when a server tokenizes a text prompt."""

    tokenizer_name: str
    template: str
    bos_text: str | None
    adds_bos: bool
    tokenizer: Any = field(repr=False, compare=False)

    @property
    def template_hash(self) -> str:
        return hashlib.sha256(self.template.encode()).hexdigest()[:16]

    def render(self, messages: list[dict[str, str]]) -> str:
        """The text the template gives for ``messages`` with the assistant's turn opened, as the model expects."""
        from jinja2 import TemplateError

        try:
            return self.tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
        except TemplateError as err:
            roles = "+".join(m["role"] for m in messages)
            raise ConfigError(f"the chat template of llm.tokenizer={self.tokenizer_name} refuses a {roles} "
                              f"conversation: {err}") from None

    def text_prompt(self, user_prompt: str, system: str | None = None) -> str:
        """What is sent to a server that tokenizes with this tokenizer: rendered, the doubled BOS dropped."""
        return without_bos(self.render(chat_messages(user_prompt, system)), self.bos_text, self.adds_bos)


LOAD_HINT = ("it needs the Hugging Face hub (a model id such as meta-llama/Llama-3.1-8B-Instruct: only its tokenizer "
             "files are downloaded, once, into the HF cache; a gated model such as Llama needs its licence accepted "
             "and HF_TOKEN; with HF_HUB_OFFLINE=1 only the cache is read) or a local folder holding the model's "
             "tokenizer files (tokenizer_config.json, tokenizer.json)")


@functools.cache
def model_template(tokenizer_name: str | None) -> ModelTemplate:
    """Load ``llm.tokenizer`` once per process (the check before any request and every prompt share it)."""
    if not tokenizer_name:
        raise ConfigError("llm.chat_template=auto needs llm.tokenizer: the model's hub id or a local folder with its "
                          "tokenizer files (or pick a preset that sets both, e.g. model=llama-3.1-8b; see "
                          "docs/generation.md#chat-templates-and-model-presets)")
    from transformers import AutoTokenizer

    folder = Path(tokenizer_name).expanduser()
    if not folder.is_dir() and tokenizer_name.startswith(("/", "./", "../", "~")):
        raise ConfigError(f"llm.tokenizer={tokenizer_name}: no such folder; {LOAD_HINT}")
    try:
        tokenizer = AutoTokenizer.from_pretrained(str(folder) if folder.is_dir() else tokenizer_name)
    except (OSError, ValueError) as err:
        raise ConfigError(f"llm.tokenizer={tokenizer_name} cannot be loaded ({type(err).__name__}: "
                          f"{str(err).splitlines()[0] if str(err) else ''}); {LOAD_HINT}") from None
    template = tokenizer.chat_template
    if not isinstance(template, str) or not template.strip():
        raise ConfigError(f"llm.tokenizer={tokenizer_name} has no chat template (no \"chat_template\" in "
                          f"tokenizer_config.json, no chat_template.jinja): give a tokenizer that has one, or set "
                          f"llm.chat_template to a string with {{prompt}}")
    if "strftime_now" in template:
        log.warning("the chat template of llm.tokenizer=%s writes today's date into the prompt (strftime_now): "
                    "prompts, and so request fingerprints, change from one day to the next, and a rerun on another "
                    "day asks every dialogue again", tokenizer_name)
    bos_id = tokenizer.bos_token_id
    return ModelTemplate(tokenizer_name, template, tokenizer.bos_token,
                         adds_bos(lambda special: tokenizer("a", add_special_tokens=special)["input_ids"], bos_id),
                         tokenizer)


def text_prompt(llm_cfg: Any, user_prompt: str, system: str | None = None) -> str:
    """The text sent on a text route for ``llm.chat_template`` (``auto`` or a ``{prompt}`` string / ``none``)."""
    template = llm_cfg.chat_template
    if template == AUTO:
        return model_template(llm_cfg.get("tokenizer")).text_prompt(user_prompt, system)
    if system is not None:
        raise ConfigError(f"prompt.system is set but llm.chat_template={_shown(template)} has no place for a system "
                          f"message: use llm.chat_template=auto with llm.tokenizer (the model's own template), or "
                          f"prompt.system=null")
    return apply_chat_template(template, user_prompt)


def check_chat_template(cfg: Any) -> None:
    """Before any request: ``llm.chat_template`` can render this run's prompts. ``auto`` loads ``llm.tokenizer``
    (once: the run reuses it) and renders a probe conversation with ``prompt.system``; a string must hold
    ``{prompt}``. The chat route sends messages and renders nothing on the client, so it is not checked."""
    llm = cfg.llm
    if llm.get("route") == "chat":
        return
    template, system = llm.chat_template, cfg.prompt.get("system")
    if template == GGUF:
        if llm.backend != "local":
            raise ConfigError(f"llm.chat_template=gguf reads the template of a GGUF file: only llm=local has one "
                              f"(llm={llm.backend}); use auto with llm.tokenizer, or a string with {{prompt}}")
        return  # read from the GGUF when the model is loaded
    if not isinstance(template, str) or (template not in (AUTO, NONE) and "{prompt}" not in template):
        raise ConfigError(f"llm.chat_template must be auto (with llm.tokenizer), a string with {{prompt}}, or none"
                          f"{' (or gguf for llm=local)' if llm.backend != 'local' else ', or gguf'}; got "
                          f"{_shown(template)}")
    text_prompt(llm, "Hi", system)


def chat_template_setup(llm_cfg: Any) -> dict[str, Any]:
    """The chat template's part of a run's setup (its hash refuses mixing two setups in one ``requests.jsonl``).
    A string, ``none`` or ``gguf`` is recorded as before (so existing sets keep their setup hash); ``auto`` adds the
    tokenizer's name and the hash of its template text, so two models' templates are two setups."""
    template = llm_cfg.chat_template
    if template != AUTO or llm_cfg.get("route") == "chat":
        return {"chat_template": template}
    model = model_template(llm_cfg.get("tokenizer"))
    return {"chat_template": AUTO, "tokenizer": model.tokenizer_name, "chat_template_hash": model.template_hash}


def _shown(template: object) -> str:
    """A long template string shortened for a message."""
    return repr(template[:50] + "..." if isinstance(template, str) and len(template) > 53 else template)
