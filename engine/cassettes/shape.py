"""The shape of one recorded interaction, checked when a cassette is read, so a hand-edited or
damaged cassette is a CassetteError naming the interaction and the field, never a Python error
in the middle of a step (or a reply silently replayed as empty).

``problem(item)`` is None for a well-formed interaction, else "`field` what is wrong", e.g.
"`response.usage.input_tokens` is 'many', not an integer". It checks what the replay reads
(format.response_from, chunk_from, tool_result_from, error_from); other keys are left alone.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any


class _Bad(Exception):
    def __init__(self, field: str, what: str) -> None:
        super().__init__(field, what)
        self.field = field
        self.what = what


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


#: a key that is absent (None is a value: `retry_after: null`)
_MISSING = object()


def _need(ok: bool, field: str, value: Any, expected: str) -> None:
    if not ok:
        what = "is missing" if value is _MISSING else f"is {_show(value)}, not {expected}"
        raise _Bad(field, what)


def _mapping(data: dict[str, Any], key: str, field: str, *,
             required: bool = False) -> dict[str, Any] | None:
    value = data.get(key, _MISSING)
    if value is _MISSING and not required:
        return None
    _need(isinstance(value, dict), field, value, "a mapping")
    return value  # type: ignore[no-any-return]


def _list(data: dict[str, Any], key: str, field: str) -> list[Any]:
    value = data.get(key, _MISSING)
    if value is _MISSING or value is None:
        return []
    _need(isinstance(value, list), field, value, "a list")
    return value  # type: ignore[no-any-return]


def _scalar(data: dict[str, Any], key: str, field: str, kind: str, *,
            required: bool = False, nullable: bool = True) -> None:
    value = data.get(key, _MISSING)
    if value is _MISSING and not required:
        return
    if value is None and nullable and not required:
        return
    checks: dict[str, tuple[Callable[[Any], bool], str]] = {
        "str": (lambda v: isinstance(v, str), "a string"),
        "int": (lambda v: isinstance(v, int) and not isinstance(v, bool) and v >= 0,
                "a whole number (0 or more)"),
        "number": (lambda v: isinstance(v, int | float) and not isinstance(v, bool),
                   "a number"),
        "bool": (lambda v: isinstance(v, bool), "true or false"),
    }
    test, expected = checks[kind]
    _need(test(value), field, value, expected)


def _usage(data: dict[str, Any], field: str) -> None:
    usage = _mapping(data, "usage", f"{field}.usage")
    for key in ("input_tokens", "output_tokens", "cached_input_tokens"):
        if usage is not None:
            _scalar(usage, key, f"{field}.usage.{key}", "int")


def _llm_response(data: dict[str, Any]) -> None:
    response = _mapping(data, "response", "response", required=True)
    assert response is not None
    _scalar(response, "text", "response.text", "str", required=True)
    for i, call in enumerate(_list(response, "tool_calls", "response.tool_calls")):
        where = f"response.tool_calls[{i}]"
        _need(isinstance(call, dict), where, call, "a mapping")
        _scalar(call, "id", f"{where}.id", "str", required=True)
        _scalar(call, "name", f"{where}.name", "str", required=True)
        _mapping(call, "arguments", f"{where}.arguments")
    _usage(response, "response")
    for key in ("finish_reason", "model", "raw_id"):
        _scalar(response, key, f"response.{key}", "str")


def _chunks(data: dict[str, Any]) -> None:
    _need("chunks" in data, "chunks", _MISSING, "a list")
    for i, chunk in enumerate(_list(data, "chunks", "chunks")):
        where = f"chunks[{i}]"
        _need(isinstance(chunk, dict), where, chunk, "a mapping")
        _scalar(chunk, "text", f"{where}.text", "str")
        call = _mapping(chunk, "tool_call", f"{where}.tool_call")
        if call is not None:
            _scalar(call, "index", f"{where}.tool_call.index", "int", required=True)
            for key in ("id", "name", "arguments"):
                _scalar(call, key, f"{where}.tool_call.{key}", "str")
        _usage(chunk, where)
        for key in ("finish_reason", "model", "raw_id"):
            _scalar(chunk, key, f"{where}.{key}", "str")


def _tool_response(data: dict[str, Any]) -> None:
    response = _mapping(data, "response", "response", required=True)
    assert response is not None
    _scalar(response, "text", "response.text", "str", required=True)
    for key in ("images", "resources", "content"):
        _list(response, key, f"response.{key}")
    _scalar(response, "is_error", "response.is_error", "bool")
    _scalar(response, "duration_s", "response.duration_s", "number")


def _tool_list(data: dict[str, Any]) -> None:
    response = _mapping(data, "response", "response", required=True)
    assert response is not None
    for i, tool in enumerate(_list(response, "tools", "response.tools")):
        where = f"response.tools[{i}]"
        _need(isinstance(tool, dict), where, tool, "a mapping")
        _scalar(tool, "name", f"{where}.name", "str", required=True)
        _scalar(tool, "description", f"{where}.description", "str")
        _mapping(tool, "input_schema", f"{where}.input_schema")


def _error(data: dict[str, Any]) -> None:
    error = _mapping(data, "error", "error", required=True)
    assert error is not None
    _scalar(error, "type", "error.type", "str")
    _scalar(error, "message", "error.message", "str", required=True)
    _scalar(error, "hint", "error.hint", "str")
    _scalar(error, "retry_after", "error.retry_after", "number")
    _scalar(error, "retryable", "error.retryable", "bool")
    _mapping(error, "context", "error.context")


_REPLIES: dict[str, Callable[[dict[str, Any]], None]] = {
    "llm": _llm_response, "llm_stream": _chunks, "tool": _tool_response,
    "tool_list": _tool_list,
}


def problem(item: dict[str, Any]) -> str | None:
    """What is wrong with this interaction (kind and request already checked), or None."""
    try:
        _scalar(item, "step", "step", "str")
        _scalar(item, "item", "item", "int")
        if "error" in item:
            _error(item)
        elif item["kind"] in ("resource", "prompt"):  # any plain data, replayed as recorded
            _need("response" in item, "response", _MISSING, "")
        else:
            _REPLIES[item["kind"]](item)
    except _Bad as bad:
        return f"`{bad.field}` {bad.what}"
    return None
