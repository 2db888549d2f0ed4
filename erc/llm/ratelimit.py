"""How many requests a task keeps in flight, adapted to what the server tolerates.

A hosted API answers 429 (or 503) when a client goes over its rate limit; retrying each such request on its own
after its backoff only earns more 429s, and ``llm.concurrency`` workers all sending at once start with a burst the
limit refuses. :class:`AdaptiveLimiter` gates every request a task sends:

- **the window** of requests in flight starts at 2 and doubles every 0.1 s until the first 429 or 503 (slow start by
  the clock, not by round trips: a local server answering in seconds gets its ``concurrency`` within half a second,
  and the burst that meets an unknown rate limit is a few requests, not ``concurrency``), then grows by one per round
  trip, shrinks by a quarter on a 429 or 503 (once
  per round trip: the other answers of the same burst tell nothing new) and never exceeds ``<key>.concurrency``:
  additive increase, multiplicative decrease, as TCP does on a congested link;
- **the pace**: a window alone cannot hold a fast API to a rate (with answers in 50 ms, one request in flight is
  already 20 per second), so a 429 also sets a pace: the rate the server accepted over the last second (or
  ``Retry-After`` seconds; a later 429 cuts the pace by a tenth at most), which then rises by 0.3 % per answer to
  probe for more, until the next 429. The first 429 also stops
  every new request until its ``Retry-After`` has passed: the burst that met the limit is still counted against
  the client, so any request sent sooner would be refused too; later ones delay only the refused request. Measured
  in ``bench/rate_limit.py``;
- **published limits**: ``<key>.max_requests_per_minute`` spaces the requests evenly, and
  ``<key>.max_tokens_per_minute`` holds new requests while the prompt and completion tokens of the last 60 seconds
  reach it.

The window shows on the progress bar (``window=``); its smallest value and the pace reached are in ``runs.jsonl``.
"""

from __future__ import annotations

import asyncio
import contextlib
import math
import time
from collections import deque
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from erc.errors import ConfigError
from erc.llm.backends.base import TransientError

# The window at the start, and how fast it doubles until the first 429 (see the module docstring).
START = 2
DOUBLING_S = 0.1
WINDOW_S = 60.0


@dataclass
class Permit:
    """One request's place in the window; the caller sets ``tokens`` once it is answered."""

    epoch: int
    tokens: int = 0


def per_minute(llm: Any, name: str, key: str = "llm") -> float | None:
    """``<key>.<name>`` (a per-minute limit), checked: a number > 0 or null (no limit)."""
    value = llm.get(name) if llm is not None else None
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
        raise ConfigError(f"{key}.{name} must be a number > 0 (the API's published limit) or null (none), "
                          f"got {value!r}")
    return float(value)


class AdaptiveLimiter:
    """See the module docstring. ``max_in_flight``: ``<key>.concurrency``."""

    def __init__(self, max_in_flight: int, requests_per_minute: float | None = None,
                 tokens_per_minute: float | None = None) -> None:
        self.max = max(1, int(max_in_flight))
        self.window = float(min(self.max, START))
        self.smallest = self.window
        self.slow_start = True
        self.started: float | None = None    # the first request's time: slow start's clock
        self.epoch = 0              # bumped by each decrease: a permit of an older epoch cannot decrease again
        self.in_flight = 0
        self.interval = 60.0 / requests_per_minute if requests_per_minute else 0.0   # the published limit's
        self.pace: float | None = None   # requests per second learned from 429s (None: none met yet)
        self.next_send = 0.0
        self.accepted: deque[float] = deque()   # when the requests of the last few seconds were answered
        self.tokens_per_minute = tokens_per_minute
        self.spent: deque[tuple[float, int]] = deque()   # (when, tokens) of the last WINDOW_S seconds
        self.spent_total = 0
        self.rate_limited = 0       # 429 and 503 answers seen
        self._changed = asyncio.Condition()

    @classmethod
    def from_config(cls, llm: Any, key: str = "llm") -> AdaptiveLimiter:
        return cls(int(llm.concurrency), per_minute(llm, "max_requests_per_minute", key),
                   per_minute(llm, "max_tokens_per_minute", key))

    def _wait_s(self, now: float) -> float:
        """Seconds until a request may be sent (0: now), the window aside."""
        waits = [self.next_send - now]
        if self.tokens_per_minute is not None:
            while self.spent and self.spent[0][0] <= now - WINDOW_S:
                self.spent_total -= self.spent.popleft()[1]
            if self.spent and self.spent_total >= self.tokens_per_minute:
                waits.append(self.spent[0][0] + WINDOW_S - now)
        return max(0.0, *waits)

    @contextlib.asynccontextmanager
    async def request(self) -> AsyncIterator[Permit]:
        """Hold one place in the window for one request (see the module docstring)."""
        async with self._changed:
            while True:
                now = time.monotonic()
                self._slow_start(now)
                if self.in_flight < int(self.window):
                    wait = self._wait_s(now)
                    if wait <= 0:
                        break
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), wait)
                elif self.slow_start and self.window < self.max:   # the clock widens the window
                    with contextlib.suppress(TimeoutError):
                        await asyncio.wait_for(self._changed.wait(), DOUBLING_S / 4)
                else:
                    await self._changed.wait()
            self.in_flight += 1
            interval = max(self.interval, 1.0 / self.pace if self.pace else 0.0)
            if interval:
                self.next_send = max(self.next_send, time.monotonic()) + interval
        permit = Permit(self.epoch)
        try:
            yield permit
        except TransientError as err:
            if err.rate_limited:
                self._congested(permit, err.retry_after)
            raise
        else:
            self._grow()
        finally:
            async with self._changed:
                self.in_flight -= 1
                if permit.tokens:
                    self.spent.append((time.monotonic(), permit.tokens))
                    self.spent_total += permit.tokens
                # wake only as many waiters as there are places (all of them would each check and sleep again)
                self._changed.notify(max(1, int(self.window) - self.in_flight))

    def _slow_start(self, now: float) -> None:
        """Until the first 429, the window doubles every :data:`DOUBLING_S` from the first request on."""
        if self.started is None:
            self.started = now
        if self.slow_start and self.window < self.max:
            doublings = (now - self.started) / DOUBLING_S
            self.window = float(self.max) if doublings >= math.log2(self.max) else min(
                float(self.max), START * 2 ** doublings)

    def _grow(self) -> None:
        if not self.slow_start:
            self.window = min(float(self.max), self.window + 1.0 / self.window)
        now = time.monotonic()
        self.accepted.append(now)
        while self.accepted and self.accepted[0] < now - 10.0:
            self.accepted.popleft()
        if self.pace is not None:
            self.pace *= 1.003

    def _congested(self, permit: Permit, retry_after: float | None) -> None:
        self.rate_limited += 1
        if permit.epoch != self.epoch:          # the same burst as a refusal already acted on
            return
        self.epoch += 1
        if self.slow_start:
            self._slow_start(time.monotonic())
            self.slow_start = False
        self.window = max(1.0, self.window * 0.75)
        self.smallest = min(self.smallest, self.window)
        span = max(1.0, retry_after or 0.0)
        now = time.monotonic()
        recent = sum(t >= now - span for t in self.accepted)
        if self.pace is None and retry_after is not None:
            self.next_send = max(self.next_send, now + retry_after)   # the first limit met: wait it out
        if recent:
            learned = recent / span    # a client slowed by its own machine accepts less: cut by a tenth at most
            self.pace = learned if self.pace is None else min(self.pace, max(learned, 0.9 * self.pace))

    def describe(self) -> str:
        """The window as the progress bar shows it: ``in use/allowed``."""
        return f"{self.in_flight}/{int(self.window)}"

    def summary(self) -> dict[str, Any]:
        """What ``runs.jsonl`` records: the 429/503 answers seen and the window's end and smallest values."""
        return {"rate_limited_answers": self.rate_limited, "window_end": int(self.window),
                "window_smallest": int(self.smallest),
                "pace_per_s": None if self.pace is None else round(self.pace, 2)}
