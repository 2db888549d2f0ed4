"""A loopback HTTP server speaking TGI's documented protocol, for tests and bench/generation.py.

TGI itself cannot run here (no GPU, no weights), so this server answers ``POST /generate`` and
``GET /info`` like TGI's router does: the same request JSON, the same validation (``top_p`` and
``typical_p`` in (0, 1) exclusive, ``top_k > 0``, at most 4 stop sequences, 422 with
``error_type: validation``), ``details`` with finish reason, token count and seed echo, and
scripted faults (429 overloaded, 503, slow answers, malformed 200 answers, a server that never
answers). It runs aiohttp on 127.0.0.1, port 0, in a background thread, so clients talk to it over a
real socket. Every request body is recorded.
"""

from __future__ import annotations

import asyncio
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Any

from aiohttp import web

# answer(inputs, parameters) -> (generated_text, finish_reason)
Answer = Callable[[str, dict[str, Any]], tuple[str, str]]

# Answers with status 200 that are not TGI's JSON: what a proxy, a misrouted URL or a broken server sends.
MALFORMED = {
    "invalid_json": ("application/json", '{"generated_text": "Joey: Hi (1)", "details": {'),
    "html": ("text/html", "<!DOCTYPE html><html><head><title>Sign in</title></head><body>Please log in to "
                          "continue to the cluster portal.</body></html>"),
    "foo": ("application/json", '{"foo": 1}'),
}

INFO = {"model_id": "loopback/vicuna-13b-v1.5", "model_sha": "0123abcd", "model_dtype": "torch.float16",
        "model_device_type": "cuda", "max_concurrent_requests": 128, "max_best_of": 2, "max_stop_sequences": 4,
        "max_input_tokens": 2048, "max_total_tokens": 4096, "version": "3.3.7", "sha": "loopback"}


def _validation_error(parameters: dict[str, Any], max_stop: int) -> str | None:
    """The first TGI validation error of ``parameters`` (router/src/validation.rs), or None."""
    checks = [
        ("temperature", lambda v: v > 0, "`temperature` must be strictly positive"),
        ("repetition_penalty", lambda v: v > 0, "`repetition_penalty` must be strictly positive"),
        ("top_p", lambda v: 0 < v < 1, "`top_p` must be > 0.0 and < 1.0"),
        ("typical_p", lambda v: 0 < v < 1, "`typical_p` must be > 0.0 and < 1.0"),
        ("top_k", lambda v: v > 0, "`top_k` must be strictly positive"),
        ("max_new_tokens", lambda v: v > 0, "`max_new_tokens` must be strictly positive"),
        ("seed", lambda v: v >= 0, "`seed` must be a non-negative integer"),
    ]
    for name, ok, message in checks:
        if parameters.get(name) is not None and not ok(parameters[name]):
            return message
    if len(parameters.get("stop") or []) > max_stop:
        return f"`stop` supports up to {max_stop} stop sequences. Given: {len(parameters['stop'])}"
    return None


class LoopbackTGI:
    """``with LoopbackTGI(answer) as server: ... server.url ...``.

    ``latency_s``: fixed delay before every answer. ``faults``: served to the next requests, one each,
    in order: a status code (429, 503), ``(status, body)`` (that JSON error answer), ``"slow"`` (sleep ``slow_s``
    first), a :data:`MALFORMED` kind (status 200 with that body), ``"429:<after>"`` or ``"503:<after>"`` (that status
    with ``Retry-After: <after>``, seconds or an HTTP date) or ``"silent"`` (accept the request and never
    answer). ``rate_limit``: requests per second, as a rate-limited API enforces it: a request arriving when that
    many were accepted in the last second is answered 429 with ``Retry-After: 1`` (counted in ``rate_limited``).
    ``silent=True``
    makes every request silent; while ``paused`` is set, requests wait (a test holds a client
    mid-request). TGI's OpenAI-compatible ``POST /v1/completions`` is served too, with the same
    answers and faults.
    """

    def __init__(self, answer: Answer, *, latency_s: float = 0.0,
                 faults: list[int | str | tuple[int, dict]] | None = None,
                 slow_s: float = 5.0, info: dict[str, Any] | None = None, silent: bool = False,
                 rate_limit: int | None = None) -> None:
        self.answer = answer
        self.latency_s = latency_s
        self.faults: deque[int | str | tuple[int, dict]] = deque(faults or [])
        self.slow_s = slow_s
        self.silent = silent
        self.paused = threading.Event()
        self.info = dict(INFO, **(info or {}))
        self.requests: list[dict[str, Any]] = []  # every /generate body, faults included
        self.times: list[float] = []  # when each of them arrived (time.monotonic())
        self.answered: list[dict[str, Any]] = []  # bodies answered with 200
        self.rate_limit = rate_limit
        self.accepted_at: deque[float] = deque()  # the last second's accepted requests (rate_limit)
        self.rate_limited = 0
        self.accepted_times: list[float] = []  # when each request within rate_limit arrived
        # The token counts the answers reported (TGI: the prompt's only with decoder_input_details), summed.
        self.usage = {"prompt_tokens": 0, "completion_tokens": 0}
        self._lock = threading.Lock()
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def _info(self, request: web.Request) -> web.Response:
        return web.json_response(self.info)

    async def _fault(self, body: dict[str, Any]) -> web.Response | None:
        """Record ``body`` and serve the next scripted fault, if any (None: answer normally)."""
        with self._lock:
            self.requests.append(body)
            self.times.append(time.monotonic())
            fault = self.faults.popleft() if self.faults else None
            if fault is None and self.rate_limit is not None:
                now = self.times[-1]
                while self.accepted_at and self.accepted_at[0] <= now - 1.0:
                    self.accepted_at.popleft()
                if len(self.accepted_at) >= self.rate_limit:
                    self.rate_limited += 1
                    fault = "429:1"
                else:
                    self.accepted_at.append(now)
                    self.accepted_times.append(now)
        while self.paused.is_set():
            await asyncio.sleep(0.01)
        if fault == "silent" or self.silent:
            await asyncio.Event().wait()  # never set: cancelled when the server stops
        if isinstance(fault, tuple):  # (status, JSON body): a server's own error answer
            return web.json_response(fault[1], status=fault[0])
        if fault == "slow":
            await asyncio.sleep(self.slow_s)
        elif fault in MALFORMED:
            content_type, text = MALFORMED[fault]
            return web.Response(status=200, text=text, content_type=content_type)
        elif fault == 429:
            return web.json_response({"error": "Model is overloaded", "error_type": "overloaded"}, status=429)
        elif isinstance(fault, str) and fault.startswith(("429:", "503:")):   # with Retry-After: <the rest>
            status, _, after = fault.partition(":")
            return web.json_response({"error": "Rate limit reached", "error_type": "overloaded"}, status=int(status),
                                     headers={"Retry-After": after})
        elif fault is not None:
            return web.Response(status=int(fault), text="Service Unavailable")
        return None

    async def _generate(self, request: web.Request) -> web.Response:
        body = await request.json()
        faulted = await self._fault(body)
        if faulted is not None:
            return faulted
        parameters = body.get("parameters") or {}
        error = _validation_error(parameters, self.info["max_stop_sequences"])
        if error:
            return web.json_response({"error": f"Input validation error: {error}", "error_type": "validation"},
                                     status=422)
        if self.latency_s:
            await asyncio.sleep(self.latency_s)
        text, finish_reason = self.answer(body["inputs"], parameters)
        with self._lock:
            self.answered.append(body)
        prompt_tokens = len(body["inputs"].split()) + 1  # + BOS
        with self._lock:
            self.usage["prompt_tokens"] += prompt_tokens
            self.usage["completion_tokens"] += len(text.split())
        details = {"finish_reason": finish_reason, "generated_tokens": len(text.split()),
                   "seed": parameters.get("seed"), "prefill": [], "tokens": []}
        # TGI's usage headers (router/src/server.rs): the prompt's and the answer's token counts
        return web.json_response({"generated_text": text, "details": details},
                                 headers={"x-prompt-tokens": str(prompt_tokens),
                                          "x-generated-tokens": str(len(text.split()))})

    async def _completions(self, request: web.Request) -> web.Response:
        """TGI's OpenAI-compatible route: ``prompt``, ``max_tokens``, ``seed`` in; ``choices`` out."""
        body = await request.json()
        faulted = await self._fault(body)
        if faulted is not None:
            return faulted
        text, finish_reason = self.answer(body["prompt"], {"seed": body.get("seed")})
        with self._lock:
            self.answered.append(body)
        return web.json_response({
            "id": "cmpl-loopback", "object": "text_completion", "created": 0, "model": self.info["model_id"],
            "choices": [{"index": 0, "text": text, "finish_reason": "length" if finish_reason == "length" else "stop",
                         "logprobs": None}],
            "usage": {"prompt_tokens": 1, "completion_tokens": len(text.split()), "total_tokens": 1}})

    def _add_routes(self, app: web.Application) -> None:
        app.router.add_get("/info", self._info)
        app.router.add_post("/generate", self._generate)
        app.router.add_post("/v1/completions", self._completions)

    async def _start(self) -> None:
        app = web.Application()
        self._add_routes(app)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)  # silent handlers: cancelled
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]

    def start(self) -> LoopbackTGI:
        self._thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        return self

    def stop(self) -> None:
        if self._runner is not None:
            asyncio.run_coroutine_threadsafe(self._runner.cleanup(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)

    def __enter__(self) -> LoopbackTGI:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ScriptedDialogues:
    """Deterministic TGI answers for a dyadic benchmark, chosen by the request's seed, so a test
    knows exactly which requests must yield a dialogue. ``seed % 5``: 0, 1 -> a valid dialogue
    (containing the balanced target when the prompt asks for one); 2 -> a valid dialogue that
    never contains the target; 3 -> prose without a dialogue; 4 -> a dialogue cut by the token
    limit (``finish_reason=length``)."""

    def __init__(self, labels: list[str], speakers: tuple[str, str] = ("Male", "Female"), turns: int = 4) -> None:
        self.labels = labels
        self.speakers = speakers
        self.turns = turns

    @staticmethod
    def kind(seed: int) -> str:
        return ("valid", "valid", "valid_without_target", "prose", "truncated")[seed % 5]

    def target_of(self, inputs: str) -> str | None:
        for label in self.labels:
            if f"expressing {label}." in inputs:
                return label
        return None

    def turns_for(self, seed: int, target: str | None) -> list[tuple[str, str, str]]:
        """The (speaker, text, label) turns a valid answer for ``seed`` contains."""
        import random

        rng = random.Random(seed)
        syllables = ["ba", "ko", "ri", "tu", "me", "sa", "lo", "ni", "pe", "da", "fu", "gi", "zo", "ve", "hu"]
        allowed = [label for label in self.labels if label != target] if self.kind(seed) != "valid" else self.labels
        filler = self.labels[0] if target != self.labels[0] else self.labels[1]
        turns = []
        for t in range(self.turns):
            words = [rng.choice(syllables) + rng.choice(syllables) + rng.choice(syllables) for _ in range(6)]
            label = filler if t % 2 else rng.choice(allowed)  # a fixed label every other line: no counting
            turns.append((self.speakers[t % 2], " ".join(words).capitalize() + ".", label))
        if target is not None and self.kind(seed) == "valid":
            turns[1] = (turns[1][0], turns[1][1], target)
        return turns

    def __call__(self, inputs: str, parameters: dict[str, Any]) -> tuple[str, str]:
        seed = int(parameters["seed"])
        kind = self.kind(seed)
        if kind == "prose":
            return "I am sorry, but I cannot write a dialogue about that topic.", "eos_token"
        lines = [f"{s}: {text} ({self.labels.index(label) + 1})"
                 for s, text, label in self.turns_for(seed, self.target_of(inputs))]
        if kind == "truncated":
            return "Here is the dialogue:\n" + "\n".join(lines)[:-9], "length"
        return "Here is the dialogue:\n\n" + "\n".join(lines) + "\n\nI hope you like it!", "eos_token"
