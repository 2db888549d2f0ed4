"""The one async interface every LLM backend implements, and the errors that drive retries."""

from __future__ import annotations

import itertools
import math
from abc import ABC, abstractmethod
from dataclasses import dataclass
from typing import Any

from erc.generation.grammar import DialogueGrammar
from erc.generation.prompts import apply_chat_template
from erc.generation.sampling import Sampling


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

    @property
    def truncated(self) -> bool:
        return self.finish_reason == "length"


# httpcore's connection pool (under both the hub and the openai client) scans every connection
# on every request: one client with 128 requests in flight spends most of its CPU there. One HTTP
# client per SHARD_SIZE in-flight requests keeps the scan short (see bench/generation.py).
SHARD_SIZE = 16


class TransientError(Exception):
    """Timeouts, connection errors, 429 and 5xx: retried with exponential backoff and jitter."""


class MalformedAnswerError(TransientError):
    """A status-200 answer that is not the protocol's JSON (a login page from a proxy, a truncated
    body, another API's JSON): retried like any transient fault, since a proxy hiccup or an
    overloaded server's half answer usually passes, and reported after the last retry."""

    def __init__(self, server: str, returned: object) -> None:
        shown = returned if isinstance(returned, str) else repr(returned)
        super().__init__(f"{server} answered with something that is not a completion (first 200 characters: "
                         f"{shown[:200]!r}); check llm.url points at the server itself, not a proxy or login page")


class FatalRequestError(Exception):
    """A request the server will never accept (e.g. a 4xx validation answer): stops the run."""


class Backend(ABC):
    """An LLM that completes a rendered prompt with a given seed (and optional grammar)."""

    kind: str = ""
    speaks_gbnf: bool = False  # grammars reach the model as GBNF (llama.cpp) rather than a regex
    # A request can be abandoned mid-flight (an HTTP call), so llm.request_deadline_s applies.
    interruptible: bool = True

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
        route. It is stored with each request and hashed into its fingerprint."""
        if system is not None:
            raise FatalRequestError("a {prompt} chat template has no place for a system message (prompt.system)")
        return apply_chat_template(self.cfg.chat_template, user_prompt)

    @abstractmethod
    def request_parameters(self) -> dict[str, Any]:
        """The sampling fields as sent (without seed and grammar), for fingerprints and records."""

    @abstractmethod
    async def complete(self, prompt: Prompt, seed: int, grammar: DialogueGrammar | None) -> Completion:
        """Generate once. Raises :class:`TransientError` or :class:`FatalRequestError`."""

    async def close(self) -> None:
        """Release connections or the embedded model."""
