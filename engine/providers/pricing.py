"""USD cost of a call from token usage: a built-in table the workflow's `pricing` extends.

Prices are USD per million tokens (input, output, cached input), as published by the vendors
when this table was written; a workflow can override or add any model under `pricing:`.
A model is looked up by exact name, then by the longest known prefix (dated snapshots such
as ``gpt-4.1-mini-2025-04-14`` price like ``gpt-4.1-mini``). Unknown models cost None.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from engine.providers.types import Usage


@dataclass(frozen=True, slots=True)
class Price:
    input: float
    output: float
    cached_input: float | None = None

    def cost(self, usage: Usage) -> float:
        cached = min(usage.cached_input_tokens, usage.input_tokens)
        cached_price = self.input if self.cached_input is None else self.cached_input
        total = ((usage.input_tokens - cached) * self.input + cached * cached_price
                 + usage.output_tokens * self.output)
        return total / 1_000_000


BUILTIN_PRICES: Mapping[str, Price] = {
    "gpt-4.1": Price(2.0, 8.0, 0.5),
    "gpt-4.1-mini": Price(0.4, 1.6, 0.1),
    "gpt-4.1-nano": Price(0.1, 0.4, 0.025),
    "gpt-4o": Price(2.5, 10.0, 1.25),
    "gpt-4o-mini": Price(0.15, 0.6, 0.075),
    "gpt-5": Price(1.25, 10.0, 0.125),
    "gpt-5-mini": Price(0.25, 2.0, 0.025),
    "gpt-5-nano": Price(0.05, 0.4, 0.005),
    "o3": Price(2.0, 8.0, 0.5),
    "o4-mini": Price(1.1, 4.4, 0.275),
    "claude-opus-4": Price(15.0, 75.0, 1.5),
    "claude-sonnet-4": Price(3.0, 15.0, 0.3),
    "claude-sonnet-4-5": Price(3.0, 15.0, 0.3),
    "claude-haiku-4-5": Price(1.0, 5.0, 0.1),
    "claude-3-5-haiku": Price(0.8, 4.0, 0.08),
    "gemini-2.5-pro": Price(1.25, 10.0, 0.31),
    "gemini-2.5-flash": Price(0.3, 2.5, 0.075),
    "gemini-2.5-flash-lite": Price(0.1, 0.4, 0.025),
    "gemini-2.0-flash": Price(0.1, 0.4, 0.025),
    "echo": Price(0.0, 0.0, 0.0),
}


def add_cost(total: float | None, cost: float | None) -> float | None:
    """`total` plus `cost`, where None is an unknown cost: left out of the sum (a total of
    nothing but unknown costs stays None, not 0)."""
    if cost is None:
        return total
    return cost if total is None else total + cost


class PriceTable:
    def __init__(self, extra: Mapping[str, Any] | None = None) -> None:
        self._prices: dict[str, Price] = dict(BUILTIN_PRICES)
        for model, spec in (extra or {}).items():
            self._prices[model] = _as_price(spec)
        self._by_length = sorted(self._prices, key=len, reverse=True)

    def price(self, model: str) -> Price | None:
        found = self._prices.get(model)
        if found is not None:
            return found
        for known in self._by_length:
            if model.startswith(known):
                return self._prices[known]
        return None

    def cost(self, model: str, usage: Usage) -> float | None:
        price = self.price(model)
        return None if price is None else price.cost(usage)


def _as_price(spec: Any) -> Price:
    if isinstance(spec, Price):
        return spec
    if isinstance(spec, Mapping):
        return Price(float(spec["input"]), float(spec["output"]),
                     None if spec.get("cached_input") is None else float(spec["cached_input"]))
    return Price(float(spec.input), float(spec.output),
                 None if spec.cached_input is None else float(spec.cached_input))
