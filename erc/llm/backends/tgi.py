"""TGI backend: the native ``/generate`` route through ``huggingface_hub.AsyncInferenceClient``.

Only ``/generate`` accepts all of Table II (TGI's OpenAI-compatible routes drop top_k and
typical_p). ``details=True`` returns the finish reason, the generated token count and the seed.
The older ``text-generation`` client is deprecated by its authors and pins huggingface-hub<1.0,
which transformers 5 cannot share, so it is not used.
"""

from __future__ import annotations

import json
from contextvars import ContextVar
from typing import Any

import httpx2  # huggingface_hub's HTTP library: its transport errors reach us unwrapped
from huggingface_hub import AsyncInferenceClient
from huggingface_hub.errors import (
    GenerationError,
    HfHubHTTPError,
    IncompleteGenerationError,
    InferenceTimeoutError,
    OverloadedError,
    TextGenerationError,
    ValidationError,
)
from huggingface_hub.utils._http import async_hf_request_event_hook  # raises OfflineModeIsEnabled for any URL

from erc.llm.backends.base import (
    Backend,
    Completion,
    FatalRequestError,
    MalformedAnswerError,
    TransientError,
    rejected_field,
    retry_after_seconds,
)
from erc.llm.grammar import Constraint, DialogueGrammar
from erc.llm.sampling import tgi_parameters


def _parameter_named(message: str) -> str:
    """TGI's validation messages quote the parameter in backticks: "`top_p` must be ..."."""
    field = rejected_field(message)
    return f"parameter {field!r}" if field else "a request parameter"


def _grammar(constraint: Constraint) -> dict[str, Any]:
    """TGI's ``grammar`` parameter: a regex for the line grammar, a JSON schema as itself."""
    if isinstance(constraint, DialogueGrammar):
        return {"type": "regex", "value": constraint.regex()}
    return {"type": "json", "value": constraint.schema()}


# TGI counts a request's prompt tokens in the ``x-prompt-tokens`` header of its answer (the body has them only as the
# whole prefill token list, ``decoder_input_details``, which doubled the client's CPU per request). The hub client
# returns the body alone, so a response hook puts the header where the awaiting request reads it: a context
# variable, which each request's task sees for itself.
_PROMPT_TOKENS: ContextVar[int | None] = ContextVar("tgi_prompt_tokens", default=None)


async def _read_prompt_tokens(response: httpx2.Response) -> None:
    value = response.headers.get("x-prompt-tokens", "")
    _PROMPT_TOKENS.set(int(value) if value.isdigit() else None)


class ConfiguredTokenClient(AsyncInferenceClient):
    """An ``AsyncInferenceClient`` that sends ``token`` (``llm.token``) and no other credential, and that
    ``HF_HUB_OFFLINE=1`` does not stop (it is there for the Hub; ``llm.url`` is the user's server).

    Without a token the hub client sends the user's own Hugging Face token (``HF_TOKEN``, ``hf auth
    login``) to whatever URL it is given, and huggingface_hub 2.x refuses ``token=False``. So every
    request of this client's HTTP session passes a hook that removes an ``Authorization`` header other
    than ``Bearer <token>``. It only removes, never adds: httpx drops the header on a redirect to
    another host, and the hook does not put it back.
    """

    def __init__(self, *, token: str | None, **kwargs: Any) -> None:
        super().__init__(token=token, **kwargs)
        self._authorization = f"Bearer {token}" if token else None

    async def _only_configured_token(self, request: httpx2.Request) -> None:
        if request.headers.get("authorization") != self._authorization:
            request.headers.pop("authorization", None)

    async def _get_async_client(self) -> httpx2.AsyncClient:
        fresh = self._async_client is None
        session = await super()._get_async_client()
        if fresh:  # without the hub's offline guard: HF_HUB_OFFLINE keeps the Hub away, not the user's own server
            hooks = [hook for hook in session.event_hooks["request"] if hook is not async_hf_request_event_hook]
            session.event_hooks = {**session.event_hooks, "request": [*hooks, self._only_configured_token],
                                   "response": [*session.event_hooks.get("response", []), _read_prompt_tokens]}
        return session


def _response(err: Exception) -> Any:
    """The HTTP answer behind a hub client error (TextGenerationError subclasses carry it on their cause)."""
    return getattr(err, "response", None) or getattr(err.__cause__, "response", None)


def _retry_after(err: Exception) -> float | None:
    """The wait the server asked for (``Retry-After`` on a 429 or 503), or None."""
    response = _response(err)
    return retry_after_seconds(getattr(response, "status_code", None), getattr(response, "headers", None))


class TGIBackend(Backend):
    kind = "tgi"
    route = "generate"

    def __init__(self, cfg: Any, sampling) -> None:
        super().__init__(cfg, sampling)
        if not self.urls:
            raise FatalRequestError("llm.url is empty: give the TGI server URL, e.g. llm.url=http://HOST:8080")
        self.params, self.lost = tgi_parameters(sampling)
        self.clients = [ConfiguredTokenClient(model=url.rstrip("/"), provider="hf-inference", timeout=cfg.timeout_s,
                                              token=cfg.token or None) for url in self.slots]

    async def start(self) -> dict[str, Any]:
        try:
            info = await self.clients[0].get_endpoint_info()
        except httpx2.ConnectError as err:
            raise self.connection_failed(self.urls[0], err) from err
        except (HfHubHTTPError, httpx2.TransportError, InferenceTimeoutError) as err:
            raise TransientError(f"cannot read {self.urls[0]}/info: {err}") from err
        self.answered.add(self.urls[0].rstrip("/"))
        return {"model": info.get("model_id") or self.urls[0], "model_sha": info.get("model_sha"),
                "server": "text-generation-inference", "server_version": info.get("version"),
                "max_stop_sequences": info.get("max_stop_sequences"), "urls": self.urls}

    def request_parameters(self) -> dict[str, Any]:
        return dict(self.params)

    async def complete(self, prompt: str, seed: int, constraint: Constraint | None) -> Completion:
        slot = self.pick_slot()
        url, client = self.slots[slot].rstrip("/"), self.clients[slot]
        extra = {"grammar": _grammar(constraint)} if constraint is not None else {}
        try:
            _PROMPT_TOKENS.set(None)
            out = await client.text_generation(
                prompt, details=True, model=f"{url}/generate", seed=seed, **self.params, **extra)
        except json.JSONDecodeError as err:  # status 200, body not JSON (an HTML page, a cut answer)
            raise MalformedAnswerError(url, err.doc) from err
        except ValidationError as err:
            raise FatalRequestError(f"{url} rejected {_parameter_named(str(err))}: {err}") from err
        except httpx2.ConnectError as err:
            raise self.connection_failed(url, err) from err
        except (OverloadedError, GenerationError, IncompleteGenerationError, InferenceTimeoutError,
                httpx2.TransportError) as err:
            raise TransientError(f"{url}: {type(err).__name__}: {err}", _retry_after(err),
                                 getattr(_response(err), "status_code", None)) from err
        except (HfHubHTTPError, TextGenerationError) as err:
            response = _response(err)
            status = getattr(response, "status_code", None)
            if status is None or status == 429 or status >= 500:
                raise TransientError(f"{url}: HTTP {status}: {err}", _retry_after(err), status) from err
            raise FatalRequestError(f"{url} answered HTTP {status} ({_parameter_named(str(err))}): {err}") from err
        details = out.details
        if not isinstance(out.generated_text, str) or details is None or details.finish_reason is None:
            # JSON, but not TGI's (the hub client keeps unknown fields as attributes)
            raise MalformedAnswerError(url, json.dumps({k: v for k, v in vars(out).items() if v is not None},
                                                       default=str))
        self.answered.add(url)
        return Completion(text=out.generated_text, finish_reason=str(details.finish_reason),
                          generated_tokens=details.generated_tokens, seed=details.seed, replica=url,
                          prompt_tokens=_PROMPT_TOKENS.get())

    async def close(self) -> None:
        for client in self.clients:
            await client.close()
