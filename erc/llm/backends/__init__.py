"""LLM backends behind one async interface (:class:`~erc.llm.backends.base.Backend`), each a plug-in named by
``_target_`` in its ``conf/llm/<name>.yaml``: ``tgi``, ``openai`` (any OpenAI-compatible server) and ``local``
(embedded llama.cpp). Adding one: docs/adding-a-backend.md."""

from __future__ import annotations

from typing import Any

from erc.llm.backends.base import (
    Backend,
    Completion,
    FatalRequestError,
    MalformedAnswerError,
    TransientError,
    UnreachableError,
)
from erc.llm.sampling import Sampling


def backend_class(llm_cfg: Any, key: str = "llm") -> type[Backend]:
    """The class ``<key>._target_`` names (imported only now: client libraries load when used). Raises
    :class:`erc.errors.ConfigError` naming the key when it names no :class:`Backend`."""
    from hydra.utils import get_class

    from erc.errors import ConfigError

    target = llm_cfg.get("_target_")
    if not target:
        raise ConfigError(f"{key}._target_ is missing: a backend's config (conf/llm/<name>.yaml) names its class, "
                          f"e.g. _target_: erc.llm.backends.tgi.TGIBackend")
    try:
        cls = get_class(str(target))
    except Exception as err:  # Hydra wraps import errors alike
        raise ConfigError(f"{key}._target_={target} cannot be imported: {err}") from None
    if not (isinstance(cls, type) and issubclass(cls, Backend)):
        raise ConfigError(f"{key}._target_={target} is not an erc.llm.backends.base.Backend")
    return cls


def make_backend(llm_cfg: Any, sampling: Sampling, key: str = "llm") -> Backend:
    """The backend of ``llm_cfg`` (its ``_target_``) with ``sampling``, naming ``key`` in its messages."""
    backend = backend_class(llm_cfg, key)(llm_cfg, sampling)
    backend.key = key
    return backend


__all__ = ["Backend", "Completion", "FatalRequestError", "MalformedAnswerError", "TransientError", "UnreachableError",
           "backend_class", "make_backend"]
