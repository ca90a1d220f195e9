"""JSON encoding for record columns that never crashes on an odd value.

Values that JSON cannot hold are converted, in this order: pydantic models (``model_dump``),
dataclasses, mappings, sets/tuples/lists, bytes (UTF-8, else ``{"$bytes_b64": ...}``),
paths, dates and times (ISO 8601), enums (their value); anything else becomes the string
``"<unserialisable TypeName: repr>"`` (repr cut at 200 characters). Non-string dict keys
become strings, a reference cycle becomes ``"<cycle>"``.
"""

from __future__ import annotations

import base64
import dataclasses
import datetime as _dt
import enum
import json
from collections.abc import Mapping
from pathlib import PurePath
from typing import Any

from engine.jsontext import compact_encoder, escape_surrogates


def _refuse(value: Any) -> Any:
    raise TypeError(f"{type(value).__name__} is not JSON serialisable")


_encode = compact_encoder(_refuse)  # a TypeError sends the value through _sanitise
_string = json.encoder.encode_basestring  # what _encode does with a str, without the join
_MAX_DEPTH = 200


def dumps(value: Any) -> str | None:
    """Encode ``value`` as JSON text; ``None`` stays SQL NULL. A lone surrogate is written as
    the JSON escape it came from (``\\ud800``): SQLite cannot store it raw (it has no UTF-8
    form), and the value reads back the same."""
    if value is None:
        return None
    if type(value) is str:  # a step's usual output: a reply text
        text = _string(value)
    else:
        try:
            text = _encode(value)
        except (TypeError, ValueError, RecursionError):
            text = _encode(_sanitise(value, set(), 0))
    # ASCII, the usual case, holds none (isascii is O(1)): no call on a step's hot path
    return text if text.isascii() else escape_surrogates(text)


def loads(text: str | None) -> Any:
    return None if text is None else json.loads(text)


def _sanitise(value: Any, seen: set[int], depth: int) -> Any:
    if value is None or isinstance(value, str | bool | int | float):
        return value
    if depth > _MAX_DEPTH:
        return "<too deep>"
    marker = id(value)
    if marker in seen:
        return "<cycle>"
    seen.add(marker)
    try:
        return _convert(value, seen, depth + 1)
    finally:
        seen.discard(marker)


def _convert(value: Any, seen: set[int], depth: int) -> Any:
    if isinstance(value, Mapping):
        return {_key(k): _sanitise(v, seen, depth) for k, v in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        items = sorted(value, key=repr) if isinstance(value, set | frozenset) else value
        return [_sanitise(v, seen, depth) for v in items]
    if isinstance(value, bytes | bytearray | memoryview):
        raw = bytes(value)
        try:
            return raw.decode("utf-8")
        except UnicodeDecodeError:
            return {"$bytes_b64": base64.b64encode(raw).decode("ascii")}
    if isinstance(value, enum.Enum):
        return _sanitise(value.value, seen, depth)
    if isinstance(value, PurePath):
        return str(value)
    if isinstance(value, _dt.datetime | _dt.date | _dt.time):
        return value.isoformat()
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return _sanitise(dataclasses.asdict(value), seen, depth)
    dump = getattr(value, "model_dump", None)
    if callable(dump):
        try:
            return _sanitise(dump(mode="json"), seen, depth)
        except Exception:  # a broken model_dump must not crash the record write
            pass
    return _unserialisable(value)


def _key(key: Any) -> str:
    return key if isinstance(key, str) else str(key)


def _unserialisable(value: Any) -> str:
    try:
        text = repr(value)
    except Exception:
        text = "?"
    if len(text) > 200:
        text = text[:197] + "..."
    return f"<unserialisable {type(value).__name__}: {text}>"
