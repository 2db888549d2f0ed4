"""Tokens and money: what every request cost, as the server counted it.

Researchers on hosted APIs plan in tokens and money. Each record of a task's ``requests.jsonl`` keeps the prompt and
completion tokens its server reported (OpenAI-compatible ``usage``, TGI's ``details`` with the prompt's prefill
tokens, llama.cpp's counts), rejected attempts included, since they are billed too; :func:`usage_totals` sums a
store. With ``<key>.price.input_per_mtok`` and ``output_per_mtok`` (dollars per million tokens, e.g. from the API's
price list) :class:`Prices` turns tokens into the cost so far and a projection for the slots left, shown on the
progress bar and written to ``runs.jsonl`` and the data card.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from erc.errors import ConfigError


@dataclass(frozen=True)
class Prices:
    """Dollars per million prompt (input) and completion (output) tokens; None: no price given."""

    input_per_mtok: float | None = None
    output_per_mtok: float | None = None

    @classmethod
    def from_config(cls, llm: Any, key: str = "llm") -> Prices:
        """``<key>.price`` (absent or null: no prices), checked: each a number >= 0 or null."""
        node = llm.get("price") if llm is not None else None
        if node is None:
            return cls()
        values = []
        for name in ("input_per_mtok", "output_per_mtok"):
            value = node.get(name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or value < 0):
                raise ConfigError(f"{key}.price.{name} must be dollars per million tokens (a number >= 0) or null, "
                                  f"got {value!r}")
            values.append(None if value is None else float(value))
        return cls(*values)

    @property
    def given(self) -> bool:
        return self.input_per_mtok is not None or self.output_per_mtok is not None

    def cost(self, prompt_tokens: int, completion_tokens: int) -> float | None:
        """Dollars for these tokens (a side without a price counts 0); None without any price."""
        if not self.given:
            return None
        return (prompt_tokens * (self.input_per_mtok or 0.0) + completion_tokens * (self.output_per_mtok or 0.0)) / 1e6

    def to_dict(self) -> dict[str, float | None]:
        return {"input_per_mtok": self.input_per_mtok, "output_per_mtok": self.output_per_mtok}


def usage_totals(records: Iterable[dict[str, Any]], prices: Prices | None = None) -> dict[str, Any]:
    """The tokens of every request in ``records`` (a store's), with the requests whose server reported none, and
    their cost at ``prices``."""
    requests = prompt = completion = unreported = 0
    for record in records:
        requests += 1
        p, c = record.get("prompt_tokens"), record.get("generated_tokens")
        unreported += p is None or c is None
        prompt += p or 0
        completion += c or 0
    totals: dict[str, Any] = {"requests": requests, "prompt_tokens": prompt, "completion_tokens": completion,
                              "total_tokens": prompt + completion, "requests_without_usage": unreported}
    if prices is not None and prices.given:
        cost = prices.cost(prompt, completion)
        totals.update(prices=prices.to_dict(), cost_usd=None if cost is None else round(cost, 6))
    return totals
