"""JSON Schema helpers for structured output: check a schema, parse and validate a reply,
and build a deterministic example object (used by the echo provider)."""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from engine.errors import BadRequest, OutputInvalid


def check_schema(schema: Mapping[str, Any], *, where: str = "output_schema") -> None:
    """Raise BadRequest when ``schema`` is not a valid JSON Schema (draft 2020-12)."""
    import jsonschema

    try:
        jsonschema.Draft202012Validator.check_schema(dict(schema))
    except jsonschema.SchemaError as exc:
        path = "/".join(str(p) for p in exc.absolute_path) or "(root)"
        raise BadRequest(
            f"{where} is not a valid JSON Schema: {exc.message} at {path}",
            hint="fix the schema; see https://json-schema.org/understanding-json-schema",
        ) from None


def validation_error(schema: Mapping[str, Any], value: Any) -> str | None:
    """The first validation error of ``value`` against ``schema`` as text, or None."""
    import jsonschema

    validator = jsonschema.Draft202012Validator(dict(schema))
    error = jsonschema.exceptions.best_match(validator.iter_errors(value))
    if error is None:
        return None
    path = "/".join(str(p) for p in error.absolute_path) or "(root)"
    return f"{error.message} at {path}"


def parse_json_reply(text: str) -> Any:
    """Parse a model's JSON reply, tolerating a surrounding ```json fence."""
    body = text.strip()
    if body.startswith("```"):
        body = body.split("\n", 1)[1] if "\n" in body else ""
        body = body.rsplit("```", 1)[0]
    try:
        return json.loads(body)
    except json.JSONDecodeError as exc:
        raise OutputInvalid(
            f"the reply is not valid JSON ({exc.msg} at line {exc.lineno} column {exc.colno}): "
            f"{text[:200]!r}") from None


def example_for(schema: Mapping[str, Any], *, text: str = "", depth: int = 0) -> Any:
    """A deterministic value matching common JSON Schemas (enum, const, types, required)."""
    if depth > 8:
        return None
    if "const" in schema:
        return schema["const"]
    if schema.get("enum"):
        return schema["enum"][0]
    if "default" in schema:
        return schema["default"]
    for key in ("anyOf", "oneOf", "allOf"):
        if schema.get(key):
            return example_for(schema[key][0], text=text, depth=depth + 1)
    kind = schema.get("type", "object" if "properties" in schema else "string")
    if isinstance(kind, list):
        kind = next((k for k in kind if k != "null"), "null")
    if kind == "object":
        props: Mapping[str, Any] = schema.get("properties", {})
        return {name: example_for(sub, text=text, depth=depth + 1) for name, sub in props.items()}
    if kind == "array":
        count = int(schema.get("minItems", 0))
        item = schema.get("items", {})
        return [example_for(item, text=text, depth=depth + 1) for _ in range(count)]
    return _scalar(kind, schema, text)


def _scalar(kind: str, schema: Mapping[str, Any], text: str) -> Any:
    if kind in ("integer", "number"):
        value = schema.get("minimum", schema.get("exclusiveMinimum", -1) + 1)
        return int(value) if kind == "integer" else float(value)
    if kind == "boolean":
        return False
    if kind == "null":
        return None
    value = text or "echo"
    min_len = int(schema.get("minLength", 0))
    max_len = schema.get("maxLength")
    value = value.ljust(min_len, ".")
    return value[: int(max_len)] if max_len is not None else value
