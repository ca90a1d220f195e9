"""Compact JSON text, with the json module's C encoder built once.

``json.dumps`` and ``JSONEncoder.encode`` build a new C encoder on every call, which costs more
than encoding a small value; run records and trace lines encode thousands of small values.
"""

from __future__ import annotations

import json
import json.encoder
import math
import re
from collections.abc import Callable, Sequence
from typing import Any


def compact_encoder(default: Callable[[Any], Any], *,
                    allow_nan: bool = True) -> Callable[[Any], str]:
    """An encoder of compact JSON (``,`` and ``:`` separators, non-ASCII as is, NaN allowed
    unless `allow_nan` is False (then a ValueError), no cycle check: a cycle raises
    RecursionError). `default` converts what JSON cannot hold (or raises TypeError)."""
    make = getattr(json.encoder, "c_make_encoder", None)
    if make is None:  # no C accelerator (e.g. PyPy)
        return json.JSONEncoder(ensure_ascii=False, separators=(",", ":"), default=default,
                                check_circular=False, allow_nan=allow_nan).encode
    c_encode = make(None, default, json.encoder.encode_basestring, None, ":", ",",
                    False, False, allow_nan)

    def encode(value: Any) -> str:
        return "".join(c_encode(value, 0))

    return encode


class DuplicateKey(ValueError):
    """A JSON object names a key twice (see loads_strict)."""


def _no_duplicates(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        if key in out:
            raise DuplicateKey(f"duplicate key {key!r} (JSON would keep only its last value)")
        out[key] = value
    return out


def loads_strict(text: str) -> Any:
    """JSON text a user wrote (inputs): a key given twice in one object is a DuplicateKey (a
    ValueError), not silently the last value."""
    return json.loads(text, object_pairs_hook=_no_duplicates)


def finite(value: Any) -> Any:
    """`value` with every NaN or infinite float as the string strict JSON readers take for
    it ("NaN", "Infinity", "-Infinity"), in dicts, lists and tuples too."""
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if math.isnan(value) else "Infinity" if value > 0 else "-Infinity"
    if isinstance(value, dict):
        return {k: finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [finite(v) for v in value]
    return value


def json_type(value: Any) -> str:
    """The JSON (and YAML) name of `value`'s type, as a workflow's `type:` words it: string,
    integer, number, boolean, array, object or null. A value no JSON holds (a Python set, a
    date) is named as such."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, int):
        return "integer"
    if isinstance(value, float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, dict):
        return "object"
    return f"Python {type(value).__name__} (not a JSON value)"


def json_equal(a: Any, b: Any) -> bool:
    """Equal as JSON Schema's `enum` compares: numbers by value (1 is 1.0), but a boolean is
    never a number (Python's == holds True equal to 1, and [true] to [1]), in arrays and
    objects too."""
    if isinstance(a, bool) or isinstance(b, bool):
        return type(a) is type(b) and a == b
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(map(json_equal, a, b))
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(json_equal(v, b[k]) for k, v in a.items())
    return bool(a == b)


def one_of(value: Any, choices: Sequence[Any]) -> bool:
    """Is `value` among an enum's `choices` (compared as `json_equal` does)?"""
    return any(json_equal(value, choice) for choice in choices)


def shown_choices(values: Sequence[Any], most: int | None = None) -> str:
    """The values an enum allows, as a message lists them (each as `shown` writes it, cut to
    40 characters); past `most` of them, only how many more there are."""
    text = ", ".join(shown(v, 40) for v in values[:most])
    more = len(values) - most if most is not None else 0
    return text + (f" (and {more} more)" if more > 0 else "")


#: a lone surrogate: JSON's "\ud800" (a model's or a tool's reply) or an expression's "\udcff"
#: decodes to one, and it has no UTF-8 form
_SURROGATE = re.compile("[\ud800-\udfff]")


def as_text(value: Any) -> str:
    """A rendered value where a process or a server takes a string (an argv word, an env
    value, stdin, an MCP prompt argument): as it is written inside a string by an
    expression (engine.expr's to_text), JSON for a list or a mapping (`jq` reads it; str()
    wrote Python's `{'a': True}`), else str()."""
    if isinstance(value, str):
        return value
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, ensure_ascii=False, default=str)
    return str(value)


def escape_surrogates(text: str) -> str:
    """`text` with each lone surrogate written as its JSON escape (`\\ud800`), so that it can
    be written as UTF-8 (to SQLite, a file, stdout): in JSON text the same value, since JSON
    text holds one raw only inside a string."""
    if text.isascii() or not _SURROGATE.search(text):  # isascii is O(1): the usual case
        return text
    return _SURROGATE.sub(lambda m: f"\\u{ord(m[0]):04x}", text)


#: what json.dumps(ensure_ascii=False) leaves raw that a terminal may obey: DEL and the C1
#: controls (U+009B is an 8-bit CSI, as ESC [ is)
_C1 = re.compile("[\x7f-\x9f]")


def shown(value: Any, limit: int = 60) -> str:
    """`value` as JSON text for a message (`"3"`, `true`, `null`, `{"a": 1}`), cut to about
    `limit` characters; every control character escaped (a message goes to a terminal, and
    may show a value from a run record, an input or a server)."""
    try:
        text = json.dumps(finite(value), ensure_ascii=False, default=repr)
    except (ValueError, RecursionError):  # a cycle, or nested too deeply
        text = repr(value)
    text = _C1.sub(lambda m: f"\\u{ord(m[0]):04x}", text)
    return text if len(text) <= limit else text[:limit - 3] + "..."


def typed(value: Any, limit: int = 60) -> str:
    """`value` with its type, as a message says what it got: `string "3"`, `boolean true`,
    `array [1]`; null only once (not `null null`)."""
    return "null" if value is None else f"{json_type(value)} {shown(value, limit)}"
