"""An input's declared type and whether it is required, as a workflow's `inputs:` say them;
read by the checks of sub-workflow calls, test cases and schedules."""

from __future__ import annotations

from typing import Any


def input_required(spec: Any) -> bool:
    """An input with `required: true`, or without a default (and not `required: false`)."""
    if not isinstance(spec, dict):
        return True
    required = spec.get("required")
    return bool(required) if required is not None else spec.get("default") is None


_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,), "integer": (int,), "number": (int, float), "boolean": (bool,),
    "object": (dict,), "array": (list,),
}


def type_ok(kind: Any, value: Any) -> bool:
    """`value` is of the input type `kind` (JSON's types: a boolean is no number)."""
    types_ = _TYPES.get(kind) if isinstance(kind, str) else None
    if types_ is None:
        return True  # the schema reports an unknown type
    if isinstance(value, bool) and kind != "boolean":
        return False
    return isinstance(value, types_)
