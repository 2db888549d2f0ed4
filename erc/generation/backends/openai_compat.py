"""OpenAI-compatible backend: vLLM, SGLang, llama.cpp server, Ollama, TGI's Messages API.

Uses ``/v1/completions`` with the chat template rendered on the client, so the prompt is the same
text whichever server runs it. Parameters outside the OpenAI schema (top_k, typical_p, min_p,
repetition penalty, grammars) go in ``extra_body``, spelled for ``llm.server``.
"""

from __future__ import annotations

import json
from typing import Any

import openai

from erc.generation.backends.base import (
    Backend,
    Completion,
    FatalRequestError,
    MalformedAnswerError,
    TransientError,
)
from erc.generation.grammar import DialogueGrammar
from erc.generation.sampling import openai_parameters


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, cfg: Any, sampling) -> None:
        super().__init__(cfg, sampling)
        if not self.urls:
            raise FatalRequestError("llm.url is empty: give the server's /v1 URL, e.g. llm.url=http://HOST:8000/v1")
        self.server = cfg.server
        self.speaks_gbnf = self.server == "llamacpp"
        self.standard, self.extra, self.lost = openai_parameters(sampling, self.server)
        if sampling.constrained and self.server == "plain":
            self.lost.append("constrained decoding (llm.server=plain has no grammar field)")
        # Retries are ours (uniform across backends), so the client's own are off. The key goes to llm.url
        # only; without one (null or ""), "EMPTY", the placeholder vLLM documents, rather than the client's
        # fallbacks ($OPENAI_API_KEY for None, an error for "").
        self.clients = [openai.AsyncOpenAI(base_url=url, api_key=cfg.api_key or "EMPTY", max_retries=0,
                                           timeout=cfg.timeout_s) for url in self.slots]
        self.model: str | None = cfg.model

    async def start(self) -> dict[str, Any]:
        if self.model is not None:  # some servers have no /v1/models; the first request will tell
            return {"model": self.model, "server": self.server, "urls": self.urls}
        try:
            models = [m.id async for m in self.clients[0].models.list()]
        except (openai.APIConnectionError, openai.APIStatusError) as err:
            raise TransientError(f"cannot list models at {self.urls[0]}/models: {err}") from err
        if not models:
            raise FatalRequestError(f"{self.urls[0]}/models lists no model; set llm.model")
        self.model = models[0]
        return {"model": self.model, "server": self.server, "served_models": models, "urls": self.urls}

    def request_parameters(self) -> dict[str, Any]:
        return {**self.standard, **self.extra}

    def _grammar_field(self, grammar: DialogueGrammar) -> dict[str, Any]:
        if self.server == "llamacpp":
            return {"grammar": grammar.gbnf()}
        if self.server == "vllm":
            return {"structured_outputs": {"regex": grammar.regex()}}
        return {}

    async def complete(self, prompt: str, seed: int, grammar: DialogueGrammar | None) -> Completion:
        slot = self.pick_slot()
        url, client = self.slots[slot], self.clients[slot]
        extra = {**self.extra, **(self._grammar_field(grammar) if grammar else {})}
        try:
            out = await client.completions.create(
                model=self.model, prompt=prompt, seed=seed, extra_body=extra or None, **self.standard)
        except json.JSONDecodeError as err:  # status 200, body not JSON
            raise MalformedAnswerError(url, err.doc) from err
        except (openai.APITimeoutError, openai.APIConnectionError) as err:
            raise TransientError(f"{url}: {type(err).__name__}: {err}") from err
        except openai.APIStatusError as err:
            if err.status_code in (408, 409, 429) or err.status_code >= 500:
                raise TransientError(f"{url}: HTTP {err.status_code}: {err.message}") from err
            raise FatalRequestError(f"{url} rejected the request (HTTP {err.status_code}): {err.message}") from err
        if isinstance(out, str):  # status 200 with a non-JSON content type (an HTML page): the client gives text
            raise MalformedAnswerError(url, out)
        if not out.choices or not isinstance(out.choices[0].text, str):
            raise MalformedAnswerError(url, out.model_dump_json(exclude_none=True))
        choice = out.choices[0]
        tokens = out.usage.completion_tokens if out.usage is not None else None
        return Completion(text=choice.text, finish_reason=str(choice.finish_reason), generated_tokens=tokens,
                          seed=seed, replica=url)

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
