"""docs/spec-reference.md, generated from the JSON Schema (a test keeps the file in sync)."""

from __future__ import annotations

import json
from typing import Any

from engine.spec.schema import workflow_schema

_ORDER = ["WorkflowSpec", "InputSpec", "TriggersSpec", "ScheduleSpec", "ProviderSpec",
          "RateLimitSpec", "PriceSpec", "MCPServerSpec", "ToolFilterSpec", "ToolMetadataSpec",
          "PolicySpec", "FilesystemSpec", "RuleSpec", "DefaultsSpec", "RetrySpec", "LLMStep",
          "MessageSpec", "ToolStep", "RunStep", "WorkflowStep", "ResourceStep", "MCPPromptStep",
          "TestCaseSpec", "AssertionSpec"]


def _type(schema: dict[str, Any]) -> str:
    if "$ref" in schema:
        name = schema["$ref"].rsplit("/", 1)[-1]
        return f"[{name}](#{name.lower()})"
    if "anyOf" in schema or "oneOf" in schema:
        options = [_type(s) for s in schema.get("anyOf", schema.get("oneOf", []))]
        return " \\| ".join(dict.fromkeys(options))
    if "enum" in schema:
        return " \\| ".join(f"`{v}`" for v in schema["enum"])
    if "const" in schema:
        return f"`{schema['const']}`"
    kind = schema.get("type", "any")
    if kind == "array":
        return f"list of {_type(schema.get('items', {}))}"
    if kind == "object":
        extra = schema.get("additionalProperties") or next(
            iter(schema.get("patternProperties", {}).values()), None)
        return f"map of {_type(extra)}" if isinstance(extra, dict) else "mapping"
    if schema.get("pattern") and "ms|s|m|h" in schema["pattern"]:
        return "duration"
    return str(kind)


def _default(prop: dict[str, Any]) -> str:
    if "default" not in prop:
        return ""
    return f"`{json.dumps(prop['default'])}`"


def _section(name: str, schema: dict[str, Any]) -> list[str]:
    lines = [f"## {name}", ""]
    if schema.get("description"):
        lines += [schema["description"].strip(), ""]
    required = set(schema.get("required", []))
    lines += ["| key | type | default | description |", "|---|---|---|---|"]
    for key, prop in schema.get("properties", {}).items():
        desc = (prop.get("description") or "").replace("\n", " ").replace("|", "\\|")
        mark = " (required)" if key in required else ""
        lines.append(f"| `{key}`{mark} | {_type(prop)} | {_default(prop)} | {desc} |")
    return [*lines, ""]


def spec_reference() -> str:
    schema = workflow_schema()
    defs = schema.get("$defs", {})
    out = ["# Workflow file reference (version 1)", "",
           "Generated from `schemas/workflow.schema.json` by `python -m engine.spec.docgen`; "
           "a test fails when it drifts. Unknown keys are errors everywhere. A step has exactly "
           "one of `llm`, `tool`, `run`, `workflow`, `resource`, `mcp_prompt`; every step also "
           "takes the common keys `description`, `needs`, `if`, `foreach`, `max_parallel`, "
           "`retry`, `timeout`, `policy`, `continue_on_error`.", ""]
    out += _section("WorkflowSpec", schema)
    for name in _ORDER[1:]:
        if name in defs:
            out += _section(name, defs[name])
    return "\n".join(out).rstrip() + "\n"


if __name__ == "__main__":
    print(spec_reference(), end="")
