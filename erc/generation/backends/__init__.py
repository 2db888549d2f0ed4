"""LLM backends behind one async interface: ``tgi``, ``openai`` (any OpenAI-compatible server)
and ``local`` (embedded llama.cpp)."""

from __future__ import annotations

from typing import Any

from erc.generation.backends.base import (
    Backend,
    Completion,
    FatalRequestError,
    MalformedAnswerError,
    TransientError,
)
from erc.generation.sampling import Sampling

BACKENDS = ("tgi", "openai", "local")


def make_backend(llm_cfg: Any, sampling: Sampling) -> Backend:
    """The backend named by ``llm.backend``; client libraries are imported only when used."""
    kind = llm_cfg.backend
    if kind == "tgi":
        from erc.generation.backends.tgi import TGIBackend

        return TGIBackend(llm_cfg, sampling)
    if kind == "openai":
        from erc.generation.backends.openai_compat import OpenAIBackend

        return OpenAIBackend(llm_cfg, sampling)
    if kind == "local":
        from erc.generation.backends.local import LocalBackend

        return LocalBackend(llm_cfg, sampling)
    raise FatalRequestError(f"llm.backend must be one of {', '.join(BACKENDS)}, got {kind!r}")


__all__ = ["BACKENDS", "Backend", "Completion", "FatalRequestError", "MalformedAnswerError", "TransientError",
           "make_backend"]
