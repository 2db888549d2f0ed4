"""Retrying one request: transient faults (timeouts, connection errors, 429, 5xx, malformed answers) are retried
with exponential backoff and jitter, within an optional deadline for all tries together; what cannot be retried
stops the task with an error naming the task's own keys (``llm.*`` for generation, ``judge.llm.*`` for the
judge)."""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from erc.errors import UserError
from erc.llm.backends.base import Backend, TransientError

log = logging.getLogger(__name__)

RESUME = "Nothing finished is lost: rerun the same command to resume."


class LLMRunError(UserError, RuntimeError):
    """A task's run stopped: its server unreachable after all retries, a request it will never accept, or a store
    made with other settings. Each task raises its own subclass (:class:`erc.generation.GenerationError`,
    :class:`erc.judge.JudgeError`)."""


@dataclass(frozen=True)
class RetryPolicy:
    """``<key>.max_retries``, ``backoff_s``, ``backoff_max_s`` and ``request_deadline_s`` (None: no deadline) as
    plain numbers; ``key`` names the task's config node in messages, ``error`` is the task's error class."""

    max_retries: int
    backoff_s: float
    backoff_max_s: float
    deadline_s: float | None = None
    key: str = "llm"
    error: type[LLMRunError] = LLMRunError

    @classmethod
    def from_config(cls, llm: Any, backend: Backend, key: str = "llm",
                    error: type[LLMRunError] = LLMRunError) -> RetryPolicy:
        """The deadline applies only to backends that can be interrupted mid-request (see
        :attr:`Backend.interruptible`)."""
        deadline = llm.get("request_deadline_s") if backend.interruptible else None
        return cls(int(llm.max_retries), float(llm.backoff_s), float(llm.backoff_max_s),
                   None if deadline is None else float(deadline), key, error)


async def with_retries(call: Callable[..., Awaitable[Any]], *args: Any, policy: RetryPolicy, what: str,
                       failures: Counter[str] | None = None) -> Any:
    """Await ``call(*args)``, retrying :class:`TransientError` (malformed answers included) with exponential
    backoff and jitter (half the delay fixed, half random, so replicas recovering together are not hit in
    lockstep), or, when the server said how long to wait (``Retry-After`` on a 429 or 503), after that long:
    retrying sooner only earns another 429 from a rate-limited API. ``policy.deadline_s`` bounds all tries and
    waits together: a server that accepts connections and never answers would otherwise hold a request for
    ``max_retries + 1`` client timeouts. Each retried fault is counted in ``failures`` by its type."""
    started = time.monotonic()
    deadline_key = f"{policy.key}.request_deadline_s"
    for retry in range(policy.max_retries + 1):
        left = None if policy.deadline_s is None else policy.deadline_s - (time.monotonic() - started)
        try:
            async with asyncio.timeout(left) as budget:
                return await call(*args)
        except TimeoutError:
            if not budget.expired():
                raise
            raise policy.error(f"{what}: no answer within {deadline_key}={policy.deadline_s:g} s ({retry + 1} "
                               f"tries): the server accepts requests but does not answer; check it, or raise "
                               f"{deadline_key} for a slow one. {RESUME}") from None
        except TransientError as err:
            if failures is not None:
                failures[type(err).__name__] += 1
            if retry == policy.max_retries:
                raise policy.error(f"{what}: gave up after {policy.max_retries} retries: {err}. {RESUME}") from err
            if err.retry_after is not None:  # the server said how long: at least that, jittered up to 10 % later
                delay = err.retry_after * random.uniform(1.0, 1.1)
            else:
                delay = min(policy.backoff_max_s, policy.backoff_s * 2**retry)
                delay = delay / 2 + random.uniform(0, delay / 2)
            if policy.deadline_s is not None and time.monotonic() - started + delay >= policy.deadline_s:
                raise policy.error(f"{what}: gave up after {retry + 1} tries within {deadline_key}="
                                   f"{policy.deadline_s:g} s: {err}. {RESUME}") from err
            log.warning("%s: %s; retry %d/%d in %.1fs%s", what, err, retry + 1, policy.max_retries, delay,
                        " (the server's Retry-After)" if err.retry_after is not None else "")
            await asyncio.sleep(delay)
    raise AssertionError("unreachable")
