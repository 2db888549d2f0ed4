"""OpenAI-compatible backend: vLLM, SGLang, llama.cpp ``llama-server``, ``llama_cpp.server``, Ollama, TGI's
Messages API and hosted OpenAI, through the ``openai`` client.

``llm.route=completions`` (the paper's default) sends ``/v1/completions`` the prompt rendered with the client-side
chat template, so the prompt is the same text whichever server runs it. ``llm.route=chat`` sends
``/v1/chat/completions`` chat messages and the server applies the model's own template (``llm.chat_template`` and
``llm.stop`` are not used there). Parameters outside the OpenAI schema (top_k, typical_p, min_p, repetition
penalty, grammars, schemas) go in ``extra_body``, spelled as ``llm.server``'s dialect says
(:mod:`erc.llm.dialects`).
"""

from __future__ import annotations

import json
import logging
from typing import Any

import httpx2  # the openai client's HTTP library: its connection errors are the cause of APIConnectionError
import openai

from erc.llm.backends.base import (
    Backend,
    Completion,
    FatalRequestError,
    MalformedAnswerError,
    Prompt,
    TransientError,
    rejected_field,
    retry_after_seconds,
)
from erc.llm.chat_templates import chat_messages
from erc.llm.dialects import SERVERS, dialect
from erc.llm.grammar import Constraint, DialogueGrammar

log = logging.getLogger(__name__)


def _refused(err: openai.APIConnectionError) -> bool:
    """Whether the client could not connect at all (refused, host not found), rather than timed out or was cut."""
    return not isinstance(err, openai.APITimeoutError) and isinstance(err.__cause__, httpx2.ConnectError)


class OpenAIBackend(Backend):
    kind = "openai"

    def __init__(self, cfg: Any, sampling) -> None:
        super().__init__(cfg, sampling)
        if not self.urls:
            raise FatalRequestError("llm.url is empty: give the server's /v1 URL, e.g. llm.url=http://HOST:8000/v1")
        self.server = str(cfg.server)
        self.route = str(cfg.get("route", "completions"))
        self.dialect = dialect(self.server, self.route)
        self.speaks_gbnf = self.dialect.gbnf
        self.standard, self.extra, self.lost = self.dialect.parameters(sampling)
        # Retries are ours (uniform across backends), so the client's own are off. The key goes to llm.url
        # only; without one (null or ""), "EMPTY", the placeholder vLLM documents, rather than the client's
        # fallbacks ($OPENAI_API_KEY for None, an error for "").
        self.clients = [openai.AsyncOpenAI(base_url=url, api_key=cfg.api_key or "EMPTY", max_retries=0,
                                           timeout=cfg.timeout_s) for url in self.slots]
        self.model: str | None = cfg.model

    async def start(self) -> dict[str, Any]:
        where = {"server": self.server, "route": self.route, "urls": self.urls}
        if self.model is not None:  # some servers have no /v1/models; the first request will tell
            return {"model": self.model, **where}
        try:
            models = [m.id async for m in self.clients[0].models.list()]
        except openai.APIConnectionError as err:
            if _refused(err):
                raise self.connection_failed(self.urls[0], err.__cause__) from err
            raise TransientError(f"cannot list models at {self.urls[0]}/models: {err}") from err
        except openai.APIStatusError as err:
            raise TransientError(f"cannot list models at {self.urls[0]}/models: {err}") from err
        self.answered.add(self.urls[0].rstrip("/"))
        if not models:
            raise FatalRequestError(f"{self.urls[0]}/models lists no model; set llm.model")
        self.model = models[0]
        return {"model": self.model, "served_models": models, **where}

    def prompt(self, user_prompt: str, system: str | None = None) -> Prompt:
        """Chat messages on the chat route (the server renders them with the model's template); the text of the
        client-side template on the completions route."""
        if self.route != "chat":
            return super().prompt(user_prompt, system)
        return chat_messages(user_prompt, system)

    @property
    def path(self) -> str:
        return "/v1/chat/completions" if self.route == "chat" else "/v1/completions"

    def request_parameters(self) -> dict[str, Any]:
        return {**self.standard, **self.extra}

    def _constraint_fields(self, constraint: Constraint) -> dict[str, Any]:
        """``constraint`` as the server's request fields. A kind the server has no field for is sent without it
        and recorded once as not honoured (``self.lost`` is the list ``runs.jsonl`` records at the end of the run)."""
        fields = self.dialect.constraint_fields(constraint)
        if fields is not None:
            return fields
        kind = "constrained decoding (the line grammar)" if isinstance(constraint, DialogueGrammar) else \
            "the JSON schema"
        item = f"{kind}: {self.dialect.name} (llm.server={self.server}) has no field for it on {self.path}"
        if item not in self.lost:
            self.lost.append(item)
            log.warning("openai backend cannot honour %s; recorded in the data card", item)
        return {}

    async def complete(self, prompt: Prompt, seed: int, constraint: Constraint | None) -> Completion:
        slot = self.pick_slot()
        url, client = self.slots[slot], self.clients[slot]
        extra = {**self.extra, **(self._constraint_fields(constraint) if constraint is not None else {})}
        try:
            if self.route == "chat":
                out = await client.chat.completions.create(
                    model=self.model, messages=prompt, seed=seed, extra_body=extra or None, **self.standard)
            else:
                out = await client.completions.create(
                    model=self.model, prompt=prompt, seed=seed, extra_body=extra or None, **self.standard)
        except json.JSONDecodeError as err:  # status 200, body not JSON
            raise MalformedAnswerError(url, err.doc) from err
        except (openai.APITimeoutError, openai.APIConnectionError) as err:
            if _refused(err):
                raise self.connection_failed(url, err.__cause__) from err
            raise TransientError(f"{url}: {type(err).__name__}: {err}") from err
        except openai.APIStatusError as err:
            raise self._status_error(url, err) from err
        if isinstance(out, str):  # status 200 with a non-JSON content type (an HTML page): the client gives text
            raise MalformedAnswerError(url, out)
        text = _choice_text(out, self.route)
        if text is None:
            raise MalformedAnswerError(url, out.model_dump_json(exclude_none=True))
        choice = out.choices[0]
        finish = "refusal" if self.route == "chat" and choice.message.refusal and not choice.message.content \
            else str(choice.finish_reason)
        usage = out.usage
        self.answered.add(url.rstrip("/"))
        return Completion(text=text, finish_reason=finish, generated_tokens=usage.completion_tokens if usage else None,
                          seed=seed, replica=url, prompt_tokens=usage.prompt_tokens if usage else None)

    def _status_error(self, url: str, err: openai.APIStatusError) -> Exception:
        """Retry 408, 409, 429 and 5xx; any other status, and a 5xx that is a request validation error
        (``llama_cpp.server`` answers 500 to a body its pydantic model refuses), stops the run, naming the field
        when the answer names one and the ``llm.server`` that spelled it."""
        body = json.dumps(err.body, default=str) if err.body is not None else err.message
        field = rejected_field(body)
        validation = field is not None and "'loc'" in body
        if (err.status_code in (408, 409, 429) or err.status_code >= 500) and not validation:
            return TransientError(f"{url}: HTTP {err.status_code}: {err.message}",
                                  retry_after_seconds(err.status_code, err.response.headers), err.status_code)
        if field is None:
            return FatalRequestError(f"{url} rejected the request (HTTP {err.status_code}): {err.message}")
        return FatalRequestError(
            f"{url} rejected the request field {field!r} (HTTP {err.status_code}): {err.message[:300]}. llm.server="
            f"{self.server} spells requests for {self.dialect.name} on {self.path}; if {url} is another "
            f"server, set llm.server to the one it is ({', '.join(SERVERS)}; plain sends only OpenAI's own fields)")

    async def close(self) -> None:
        for client in self.clients:
            await client.close()


def _choice_text(out: Any, route: str) -> str | None:
    """The generated text of the first choice, or None when the answer is not a completion (another API's JSON).
    A chat answer whose message is a refusal (OpenAI's structured outputs) has the text ""."""
    choices = getattr(out, "choices", None)
    if not choices:
        return None
    if route != "chat":
        return choices[0].text if isinstance(choices[0].text, str) else None
    message = getattr(choices[0], "message", None)
    if message is None:
        return None
    if isinstance(message.content, str):
        return message.content
    return "" if isinstance(getattr(message, "refusal", None), str) else None
