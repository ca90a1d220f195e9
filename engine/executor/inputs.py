"""Run inputs: typed, converted from command-line strings, checked before anything starts."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from typing import Any

from engine.errors import InputError
from engine.spec.models import InputSpec
from engine.spec.suggest import did_you_mean

_TRUE = {"true", "yes", "1", "on"}
_FALSE = {"false", "no", "0", "off"}


def convert(name: str, spec: InputSpec, value: Any, *, from_text: bool) -> Any:
    """Convert one value to the input's type (strings from the command line are parsed)."""
    kind = spec.type
    if from_text and isinstance(value, str):
        value = _parse_text(name, kind, value)
    ok = {
        "string": isinstance(value, str),
        "integer": isinstance(value, int) and not isinstance(value, bool),
        "number": isinstance(value, int | float) and not isinstance(value, bool),
        "boolean": isinstance(value, bool),
        "object": isinstance(value, dict),
        "array": isinstance(value, list),
    }[kind]
    if not ok:
        raise InputError(f"input {name!r} must be of type {kind}, got {type(value).__name__} "
                         f"{_short(value)}", input=name)
    if spec.enum is not None and value not in spec.enum:
        raise InputError(f"input {name!r} must be one of {spec.enum}, got {_short(value)}",
                         input=name)
    check_storable(name, value)
    return value


def check_storable(name: str, value: Any, *, default: bool = False) -> None:
    """Refuse NaN and ±Infinity anywhere in `value` (JSON has no such numbers), and text that
    is not valid Unicode (a lone surrogate: what undecodable bytes on the command line, or a
    JSON escape such as \\udcff, become): neither the run record nor a --json result could
    hold them. Iterative: a deep value cannot overflow the stack here."""
    todo: list[tuple[Any, str]] = [(value, "")]
    while todo:
        item, where = todo.pop()
        if isinstance(item, str):
            if not item.isascii():
                _check_text(name, item, where, default)
        elif isinstance(item, float):
            if not math.isfinite(item):
                at = f" at {name}{where}" if where else ""
                what = "the default of input" if default else "input"
                raise InputError(f"{what} {name!r} holds the number {item}{at}, which JSON "
                                 "cannot represent", input=name,
                                 hint="change the default in the workflow to a finite number"
                                 if default else "pass a finite number; NaN, Infinity and "
                                 "numbers beyond about 1.8e308 have no JSON form")
        elif isinstance(item, dict):
            todo.extend((v, f"{where}[{k!r}]") for k, v in item.items())
            todo.extend((k, f"{where} (a key)") for k in item if isinstance(k, str))
        elif isinstance(item, list | tuple):
            todo.extend((v, f"{where}[{i}]") for i, v in enumerate(item))


def _check_text(name: str, text: str, where: str, default: bool) -> None:
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        at = f" at {name}{where}" if where else ""
        what = "the default of input" if default else "input"
        raise InputError(f"{what} {name!r} holds text that is not valid UTF-8{at} (character "
                         f"{exc.start}: {text[exc.start]!r})", input=name,
                         hint="fix the default in the workflow" if default else
                         "pass the value as UTF-8 text (check the terminal's or the file's "
                         "encoding)") from None


_TEXT_HINTS = {"integer": "pass a whole number, e.g. -i NAME=3",
               "number": "pass a number, e.g. -i NAME=2.5",
               "boolean": "pass true or false (yes/no and 1/0 work too)",
               "object": "pass JSON for objects and arrays",
               "array": "pass JSON for objects and arrays"}


def _parse_text(name: str, kind: str, text: str) -> Any:
    try:
        if kind == "integer":
            return int(text)
        if kind == "number":
            return float(text) if any(c in text for c in ".eE") else int(text)
        if kind == "boolean":
            low = text.strip().lower()
            if low in _TRUE:
                return True
            if low in _FALSE:
                return False
            raise ValueError(text)
        if kind in ("object", "array"):
            return json.loads(text)
    except RecursionError:
        raise InputError(f"input {name!r} is nested too deeply to read", input=name,
                         hint="pass a value with fewer levels of nesting") from None
    except ValueError:
        raise InputError(f"input {name!r} must be of type {kind}, got {text!r}",
                         input=name, hint=_TEXT_HINTS.get(kind)) from None
    return text


def resolve_inputs(declared: Mapping[str, InputSpec], given: Mapping[str, Any], *,
                   from_text: frozenset[str] = frozenset()) -> dict[str, Any]:
    """The full inputs of a run: given values converted, defaults filled, all checked.
    Names in `from_text` came from the command line as strings."""
    unknown = [k for k in given if k not in declared]
    if unknown:
        name = unknown[0]
        raise InputError(f"unknown input {name!r}", input=name,
                         hint=did_you_mean(name, declared, what="input"))
    out: dict[str, Any] = {}
    missing = []
    for name, spec in declared.items():
        if name in given:
            out[name] = convert(name, spec, given[name], from_text=name in from_text)
        elif spec.default is not None:
            check_storable(name, spec.default, default=True)
            out[name] = spec.default
        elif spec.is_required:
            missing.append(name)
        else:
            out[name] = None
    if missing:
        raise InputError(f"missing required input{'s' if len(missing) > 1 else ''}: "
                         f"{', '.join(missing)}", hint="pass -i NAME=VALUE or --inputs FILE.json",
                         missing=", ".join(missing))
    return out


def _short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."
