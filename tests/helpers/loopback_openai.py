"""A loopback OpenAI-compatible server (``/v1/chat/completions``, ``/v1/completions``, ``/v1/models``) for tests.

No vLLM, SGLang or hosted API can run here, so this server answers their documented protocol over a real socket:
OpenAI's request and answer JSON, every request body recorded, the scripted answers and faults of
:class:`loopback_tgi.LoopbackTGI` (429, 503, slow, malformed 200 answers, error bodies), and ``strict=True`` for
hosted OpenAI's behaviour: HTTP 400 ``invalid_request_error`` "Unrecognized request argument supplied: <field>"
for any field outside its API (other servers ignore unknown fields).
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp import web

from helpers.loopback_tgi import LoopbackTGI

# The request fields of OpenAI's API (openai-python's create() parameters).
CHAT_FIELDS = {"messages", "model", "audio", "frequency_penalty", "function_call", "functions", "logit_bias",
               "logprobs", "max_completion_tokens", "max_tokens", "metadata", "modalities", "n",
               "parallel_tool_calls", "prediction", "presence_penalty", "reasoning_effort", "response_format", "seed",
               "service_tier", "stop", "store", "stream", "stream_options", "temperature", "tool_choice", "tools",
               "top_logprobs", "top_p", "user"}
COMPLETION_FIELDS = {"model", "prompt", "best_of", "echo", "frequency_penalty", "logit_bias", "logprobs",
                     "max_tokens", "n", "presence_penalty", "seed", "stop", "stream", "stream_options", "suffix",
                     "temperature", "top_p", "user"}


def user_text(messages: list[dict[str, Any]]) -> str:
    """What the scripted answer reads of a chat request: its messages' contents, one per line."""
    return "\n".join(str(m.get("content")) for m in messages)


class LoopbackOpenAI(LoopbackTGI):
    """``with LoopbackOpenAI(answer) as server: ... server.url ...`` (the base URL, ``llm.url`` is
    ``server.url + "/v1"``). ``answer(text, {"seed": ...})`` gives ``(text, finish_reason)``; on the chat route the
    text is :func:`user_text` of the messages. ``finish_reason`` "length" stays "length", any other becomes "stop".
    """

    def __init__(self, answer, *, strict: bool = False, model: str = "loopback/chat-model", **kwargs: Any) -> None:
        super().__init__(answer, **kwargs)
        self.strict = strict
        self.model = model

    @property
    def v1(self) -> str:
        return f"{self.url}/v1"

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": self.model, "object": "model", "created": 0,
                                                              "owned_by": "loopback"}]})

    def _unknown_field(self, body: dict[str, Any], known: set[str]) -> web.Response | None:
        unknown = sorted(set(body) - known) if self.strict else []
        if not unknown:
            return None
        return web.json_response({"error": {"message": f"Unrecognized request argument supplied: {unknown[0]}",
                                            "type": "invalid_request_error", "param": None, "code": None}},
                                 status=400)

    async def _answer(self, request: web.Request, chat: bool) -> web.Response:
        body = await request.json()
        faulted = await self._fault(body) or self._unknown_field(body, CHAT_FIELDS if chat else COMPLETION_FIELDS)
        if faulted is not None:
            return faulted
        text, finish_reason = self.answer(user_text(body["messages"]) if chat else body["prompt"],
                                          {"seed": body.get("seed")})
        with self._lock:
            self.answered.append(body)
        finish = "length" if finish_reason == "length" else "stop"
        prompt_tokens = len(json.dumps(body["messages"]).split()) if chat else len(body["prompt"].split())
        with self._lock:
            self.usage["prompt_tokens"] += prompt_tokens
            self.usage["completion_tokens"] += len(text.split())
        choice: dict[str, Any] = {"index": 0, "finish_reason": finish, "logprobs": None}
        if chat:
            choice["message"] = {"role": "assistant", "content": text}
        else:
            choice["text"] = text
        return web.json_response({
            "id": "loopback", "object": "chat.completion" if chat else "text_completion", "created": 0,
            "model": body.get("model") or self.model, "choices": [choice],
            "usage": {"prompt_tokens": prompt_tokens, "completion_tokens": len(text.split()),
                      "total_tokens": prompt_tokens + len(text.split())}})

    async def _chat(self, request: web.Request) -> web.Response:
        return await self._answer(request, chat=True)

    async def _completions(self, request: web.Request) -> web.Response:
        return await self._answer(request, chat=False)

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_post("/v1/completions", self._completions)
