"""An `output_schema:` that is not valid JSON Schema is reported by `plait validate`, at the
faulty keyword, instead of failing the step once the run is under way (exit 1, other steps
may have run)."""

from __future__ import annotations

from engine.errors import SpecError
from engine.spec.loader import load_text

BASE = ("version: 1\nname: wf\nproviders:\n  p: {kind: echo}\nsteps:\n  a:\n    llm: p\n"
        "    prompt: hi\n    output_schema:\n{SCHEMA}")


def _issues(schema: str) -> list[str]:
    try:
        load_text(BASE.replace("{SCHEMA}", schema), "wf.yaml")
    except SpecError as exc:
        return [issue.format() for issue in exc.issues]
    return []


def test_an_invalid_output_schema_is_a_located_spec_error() -> None:
    issues = _issues("      type: object\n      properties:\n        risk: {type: objekt}\n")
    assert len(issues) == 1
    assert issues[0].startswith(
        "wf.yaml:12:22: output_schema is not a valid JSON Schema: 'objekt' is not valid under "
        "any of the given schemas at 'steps.a.output_schema.properties.risk.type'")


def test_a_valid_output_schema_passes() -> None:
    assert _issues("      type: object\n      required: [risk]\n"
                   "      properties: {risk: {enum: [low, high]}}\n") == []
