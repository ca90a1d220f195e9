"""Durations in workflow files: ``500ms``, ``30s``, ``5m``, ``1h`` (or a number of seconds)."""

from __future__ import annotations

import math
import re
from typing import Annotated, Any

from pydantic import BeforeValidator, WithJsonSchema

from engine.jsontext import shown, typed

_UNITS = {"ms": 0.001, "s": 1.0, "m": 60.0, "h": 3600.0}
DURATION_PATTERN = r"^\s*(\d+(?:\.\d+)?)\s*(ms|s|m|h)\s*$"
_DURATION_RE = re.compile(DURATION_PATTERN)
_NUMBER_RE = re.compile(r"^\s*\d+(?:\.\d+)?\s*$")


def parse_duration(value: Any) -> float:
    """Seconds from ``'500ms' | '30s' | '5m' | '1h'`` or a non-negative number of seconds."""
    if isinstance(value, bool):
        raise ValueError("expected a duration such as 500ms, 30s, 5m or 1h, got boolean "
                         f"{shown(value)}")
    if isinstance(value, int | float):
        if not math.isfinite(value):  # YAML .nan, .inf: NaN < 0 is false
            raise ValueError(f"a duration must be a finite number of seconds, got {value}")
        if value < 0:
            raise ValueError("a duration cannot be negative")
        return float(value)
    if isinstance(value, str):
        match = _DURATION_RE.match(value)
        if match:
            return float(match.group(1)) * _UNITS[match.group(2)]
    number = isinstance(value, str) and _NUMBER_RE.match(value)
    raise ValueError("expected a duration such as 500ms, 30s, 5m or 1h, got "
                     f"{typed(value)}"
                     + (f" (seconds are written {value.strip()}s, or as a number without "
                        "quotes)" if number else ""))


def _schema(bound: str, what: str) -> WithJsonSchema:
    """The JSON Schema of a duration field: a duration text, or a number with `bound` 0."""
    return WithJsonSchema({
        "anyOf": [
            {"type": "string", "pattern": DURATION_PATTERN.replace(r"\s*", "")},
            {"type": "number", bound: 0},
        ],
        "description": f"{what}: 500ms, 30s, 5m, 1h, or a number of seconds.",
        "examples": ["500ms", "30s", "5m", "1h"],
    })


Duration = Annotated[float, BeforeValidator(parse_duration), _schema("minimum", "A duration")]


def parse_timeout(value: Any) -> float:
    """A duration that bounds something: more than zero (a zero timeout would end every
    attempt as it starts)."""
    seconds = parse_duration(value)
    if seconds <= 0:
        raise ValueError(f"a timeout must be more than zero, got {value!r} (leave the key "
                         "out for no timeout)")
    return seconds


Timeout = Annotated[float, BeforeValidator(parse_timeout),
                    _schema("exclusiveMinimum", "A duration more than zero")]
