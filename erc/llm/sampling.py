"""Sampling: the paper's Table II as each backend's request fields, plus derived per-request seeds.

Every backend spells the parameters differently and silently changes some of them: TGI rejects
``top_p >= 1`` (omitted means 1.0), vLLM has no ``typical_p``, llama.cpp's defaults are not neutral
(``min_p`` 0.05, ``top_k`` 40). So each mapping sends every parameter it can, explicitly, and
returns what it could not honour; that list goes into ``runs.jsonl`` and the data card. The
OpenAI-compatible servers' spellings are their dialects (:mod:`erc.llm.dialects`).
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from typing import Any

from erc.llm.dialects import dialect

log = logging.getLogger(__name__)

# The paper's Table II: what a data card compares a run's sampling against.
TABLE_II = {"temperature": 0.7, "top_p": 1.0, "top_k": 10000, "repetition_penalty": 1.0, "typical_p": 0.995}

# Seeds fit every backend: llama.cpp takes uint32, TGI u64, vLLM and OpenAI int.
SEED_RANGE = 2**31


@dataclass(frozen=True)
class Sampling:
    """The sampling parameters of a run (``conf/sampling``)."""

    temperature: float
    top_p: float
    top_k: int
    repetition_penalty: float
    typical_p: float
    min_p: float
    max_new_tokens: int
    stop: tuple[str, ...]
    constrained: bool

    @property
    def greedy(self) -> bool:
        """A temperature of 0 means greedy decoding on every backend (the judge's choice; generation samples)."""
        return self.temperature == 0

    @classmethod
    def from_config(cls, cfg: Any, extra_stop: list[str]) -> Sampling:
        """``extra_stop``: the chat template's own stop strings (``llm.stop``)."""
        stop = tuple(dict.fromkeys([*cfg.stop, *extra_stop]))
        return cls(float(cfg.temperature), float(cfg.top_p), int(cfg.top_k), float(cfg.repetition_penalty),
                   float(cfg.typical_p), float(cfg.min_p), int(cfg.max_new_tokens), stop, bool(cfg.constrained))


def deviations_from_table_ii(sampling_cfg: Any) -> dict[str, dict[str, float]]:
    """``{parameter: {"paper": value, "used": value}}`` for every Table II value changed."""
    return {name: {"paper": paper, "used": float(sampling_cfg[name])}
            for name, paper in TABLE_II.items() if float(sampling_cfg[name]) != paper}


def derive_seed(base_seed: int, dialogue: int, attempt: int) -> int:
    """The seed of one request. A single fixed seed with a repeated prompt returns the same
    dialogue every time, so each (dialogue, attempt) gets its own seed, reproducibly."""
    digest = hashlib.sha256(f"{base_seed}:{dialogue}:{attempt}".encode()).digest()
    return int.from_bytes(digest[:8], "big") % SEED_RANGE


def tgi_parameters(s: Sampling) -> tuple[dict[str, Any], list[str]]:
    """TGI ``/generate`` parameters. TGI validates top_p and typical_p in (0, 1) exclusive, and
    omitting either means 1.0, which is exactly the paper's top_p. A temperature of 0 is greedy decoding:
    ``do_sample`` false and no sampling field at all, since TGI rejects ``temperature: 0`` and samples
    whenever a temperature, top_k, top_p or typical_p is given."""
    if s.greedy:
        return {"do_sample": False, "repetition_penalty": s.repetition_penalty, "max_new_tokens": s.max_new_tokens,
                "stop": list(s.stop)}, []
    params: dict[str, Any] = {"do_sample": True, "temperature": s.temperature, "top_k": s.top_k,
                              "repetition_penalty": s.repetition_penalty, "max_new_tokens": s.max_new_tokens,
                              "stop": list(s.stop)}
    if s.top_p < 1.0:
        params["top_p"] = s.top_p
    if s.typical_p < 1.0:
        params["typical_p"] = s.typical_p
    lost = [f"min_p={s.min_p} (TGI has no min_p)"] if s.min_p > 0 else []
    return params, lost


def openai_parameters(s: Sampling, server: str, route: str = "completions") -> tuple[dict[str, Any], dict[str, Any],
                                                                                  list[str]]:
    """``(standard fields, extra_body, not honoured)`` for ``server`` on ``/v1/<route>``, as its dialect spells
    them (:mod:`erc.llm.dialects`)."""
    return dialect(server, route).parameters(s)


def llama_cpp_parameters(s: Sampling) -> dict[str, Any]:
    """Keyword arguments of ``llama_cpp.Llama.create_completion``: all sent, because its defaults
    (top_k 40, top_p 0.95, min_p 0.05, temperature 0.8) are not the paper's. llama.cpp decodes greedily at
    temperature 0."""
    return {"temperature": s.temperature, "top_p": s.top_p, "top_k": s.top_k, "min_p": s.min_p,
            "typical_p": s.typical_p, "repeat_penalty": s.repetition_penalty, "max_tokens": s.max_new_tokens,
            "stop": list(s.stop)}


def warn_lost(backend: str, lost: list[str]) -> None:
    """Warn once per run about each parameter the backend cannot honour."""
    for item in lost:
        log.warning("%s backend cannot honour %s; recorded in the data card", backend, item)
