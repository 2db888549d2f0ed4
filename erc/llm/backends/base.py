"""The one async interface every LLM backend implements, and the errors that drive retries."""

from __future__ import annotations

import itertools
import math
import re
from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any

from erc.llm.chat_templates import text_prompt
from erc.llm.grammar import Constraint
from erc.llm.sampling import Sampling

# The text of a prompt (text routes) or its chat messages ``[{"role": ..., "content": ...}]`` (chat route).
Prompt = str | list[dict[str, str]]


@dataclass
class Completion:
    """One finished request. ``finish_reason`` is the server's word; ``truncated`` is the meaning
    that matters (the token limit cut the output)."""

    text: str
    finish_reason: str
    generated_tokens: int | None
    seed: int | None
    replica: str
    prompt_tokens: int | None = None   # as the server counted them (what an API bills); None: not reported

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


# httpcore's connection pool (under both the hub and the openai client) scans every connection
# on every request: one client with 128 requests in flight spends most of its CPU there. One HTTP
# client per SHARD_SIZE in-flight requests keeps the scan short (see bench/generation.py).
SHARD_SIZE = 16


class TransientError(Exception):
    """Timeouts, connection errors, 429 and 5xx: retried with exponential backoff and jitter, or after
    ``retry_after`` seconds when the server said how long to wait (``Retry-After`` on a 429 or 503)."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None) -> None:
        super().__init__(message)
        self.retry_after = retry_after
        self.status = status

    @property
    def rate_limited(self) -> bool:
        """The server refused for load or rate (429, 503): the client should send less (erc/llm/ratelimit.py)."""
        return self.status in RETRY_AFTER_STATUSES or self.retry_after is not None


# The statuses whose Retry-After asks the client to wait: rate limited (429), overloaded or down (503).
RETRY_AFTER_STATUSES = (429, 503)


def retry_after_seconds(status: int | None, headers: Mapping[str, str] | None) -> float | None:
    """The wait a 429 or 503 answer asks for in its ``Retry-After`` header (RFC 9110: seconds, or an HTTP date),
    in seconds from now; None for another status, no header, or one that cannot be read."""
    if status not in RETRY_AFTER_STATUSES or not headers:
        return None
    value = str(headers.get("retry-after") or headers.get("Retry-After") or "").strip()
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return max(0.0, (when - datetime.now(UTC)).total_seconds())


class MalformedAnswerError(TransientError):
    """A status-200 answer that is not the protocol's JSON (a login page from a proxy, a truncated
    body, another API's JSON): retried like any transient fault, since a proxy hiccup or an
    overloaded server's half answer usually passes, and reported after the last retry."""

    def __init__(self, server: str, returned: object) -> None:
        shown = returned if isinstance(returned, str) else repr(returned)
        super().__init__(f"{server} answered with something that is not a completion (first 200 characters: "
                         f"{shown[:200]!r}); check llm.url points at the server itself, not a proxy or login page")


class EmptyAnswerError(TransientError):
    """A status-200 answer from a server whose text is empty (or blank): an overloaded or restarting server's answer
    more often than the model's, so retried like a malformed answer rather than stored as an attempt that held no
    dialogue, and reported after the last retry."""

    def __init__(self, server: str, finish_reason: str) -> None:
        super().__init__(f"{server} answered with an empty text (finish_reason={finish_reason}); its log may say why")


class FatalRequestError(Exception):
    """A request the server will never accept (e.g. a 4xx validation answer): stops the run."""


class UnreachableError(FatalRequestError):
    """A connection refused (or a host not found) at a URL that has not answered in this run: no server listens
    there (not started, or a wrong URL), which minutes of retries would not change. Once the URL has answered, a
    refused connection is a server restarting and is retried (see :meth:`Backend.connection_failed`)."""


# How servers name a field they refuse: TGI quotes it in backticks ("`top_p` must be ..."), hosted OpenAI says
# "Unrecognized request argument supplied: top_k", pydantic (vLLM, SGLang, llama_cpp.server) gives its location,
# "'loc': ('body', 'top_k')" (a Python repr inside the message) or "loc": ["body", "top_k"] (FastAPI's JSON).
_REJECTED_FIELD = (re.compile(r"Unrecognized request argument supplied: (\w+)"),
                   re.compile(r"""['"]loc['"]:\s*[\[(]\s*['"]body['"],\s*['"](\w+)['"]"""),
                   re.compile(r"`(\w+)`"))


def rejected_field(message: str) -> str | None:
    """The request field a server's error ``message`` (its body as text) names, or None."""
    for pattern in _REJECTED_FIELD:
        if found := pattern.search(message):
            return found.group(1)
    return None


class Backend(ABC):
    """An LLM that completes a prompt with a given seed (and optional output constraint)."""

    kind: str = ""
    route: str = ""  # the API route requests take, recorded with each request ("generate", "chat", ...)
    speaks_gbnf: bool = False  # grammars reach the model as GBNF (llama.cpp) rather than a regex
    # A request can be abandoned mid-flight (an HTTP call), so llm.request_deadline_s applies.
    interruptible: bool = True
    # Answers come from a server, so an empty one is a fault to retry (EmptyAnswerError); an embedded model's empty
    # answer is the model's own, which the same seed would give again.
    remote: bool = True
    # The config node of its settings as the user writes it (llm, judge.llm), for messages; set by make_backend.
    key: str = "llm"

    def __init__(self, cfg: Any, sampling: Sampling) -> None:
        self.cfg = cfg
        self.sampling = sampling
        urls = cfg.get("url")
        self.urls: list[str] = [urls] if isinstance(urls, str) else list(urls or [])
        # One HTTP client per slot; slots interleave the replicas (url0, url1, url0, url1, ...) so
        # that taking them in turn serves the replicas round-robin.
        shards = max(1, math.ceil(int(cfg.concurrency) / SHARD_SIZE))
        self.slots: list[str] = [url for _ in range(shards) for url in self.urls]
        self._next_slot = itertools.cycle(range(max(len(self.slots), 1)))
        # Parameters the backend cannot honour, for the data card.
        self.lost: list[str] = []
        # The URLs that have answered in this run: a refused connection there is a restart, retried.
        self.answered: set[str] = set()

    def connection_failed(self, url: str, err: BaseException) -> Exception:
        """What a failed connection to ``url`` is: a :class:`TransientError` once ``url`` has answered in this run,
        else an :class:`UnreachableError` saying to start the server or fix ``<key>.url``."""
        if url.rstrip("/") in self.answered:
            return TransientError(f"{url}: {type(err).__name__}: {err}")
        cause: BaseException | None = err
        while cause is not None and not isinstance(cause, ConnectionRefusedError):
            cause = cause.__cause__ or cause.__context__
        why = "connection refused" if cause is not None else f"{type(err).__name__}: {err}"
        return UnreachableError(f"cannot connect to {url} ({why}): no server answers there; start it, or fix "
                                f"{self.key}.url")

    def pick_slot(self) -> int:
        """The next client slot, round-robin (and so the next replica)."""
        return next(self._next_slot)

    @abstractmethod
    async def start(self) -> dict[str, Any]:
        """Connect, check the server and return provenance (model id, revision, server version).
        ``provenance["model"]`` names the model in every request fingerprint."""

    def prompt(self, user_prompt: str, system: str | None = None) -> Prompt:
        """What is sent to the model for ``user_prompt`` (and an optional system message): the rendered text on
        the text routes (TGI ``/generate``, ``/v1/completions``, the embedded model), chat messages on a chat
        route. It is stored with each request and hashed into its fingerprint. On a text route the server
        tokenizes the text with the model's tokenizer, so ``llm.chat_template=auto`` sends it without the
        template's leading BOS text when that tokenizer adds BOS itself (see :mod:`erc.llm.chat_templates`)."""
        return text_prompt(self.cfg, user_prompt, system)

    @abstractmethod
    def request_parameters(self) -> dict[str, Any]:
        """The sampling fields as sent (without seed and grammar), for fingerprints and records."""

    @abstractmethod
    async def complete(self, prompt: Prompt, seed: int, constraint: Constraint | None) -> Completion:
        """Generate once, the output held to ``constraint`` (the line grammar or a JSON schema) where the backend
        can. Raises :class:`TransientError` or :class:`FatalRequestError`."""

    async def close(self) -> None:  # noqa: B027 (optional: a backend with nothing to release keeps this)
        """Release connections or the embedded model."""
