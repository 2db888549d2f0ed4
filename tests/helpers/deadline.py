"""A wall-clock limit for a block of pure-Python work that must end by itself (a search loop, a retry walk): when
the code under test loops forever, the test fails with a clear message instead of hanging the suite. SIGALRM
interrupts Python code between bytecodes, so no plugin or thread is needed (POSIX, main thread only: where pytest
runs tests)."""

from __future__ import annotations

import signal
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

import pytest


@contextmanager
def deadline(seconds: float, what: str) -> Iterator[None]:
    """Fail the test if the block runs longer than ``seconds`` (generous: a loaded CI machine is slow too)."""
    def expire(signum: int, frame: FrameType | None) -> None:
        pytest.fail(f"{what} did not finish within {seconds:g} s: it does not terminate", pytrace=False)

    previous = signal.signal(signal.SIGALRM, expire)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
