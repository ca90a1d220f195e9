"""`required: true` beside a `default:` is refused: `plait run` used the default and never asked
for the input, while `plait mcp serve` demanded it, so one file meant two things."""

from __future__ import annotations

import pytest

from engine.errors import SpecError
from engine.spec.loader import load_text

BASE = "version: 1\nname: wf\ninputs:\n  topic: {INPUT}\nsteps:\n  a: {run: 'true'}\n"


def _issues(spec: str) -> list[str]:
    try:
        load_text(BASE.replace("{INPUT}", spec), "wf.yaml")
    except SpecError as exc:
        return [issue.format() for issue in exc.issues]
    return []


def test_required_true_with_a_default_is_a_located_spec_error() -> None:
    issues = _issues("{type: string, required: true, default: cats}")
    assert issues == [
        "wf.yaml:4:35: input 'topic' is `required: true` but has a default, which would never "
        "be used at 'inputs.topic.required' (remove `default:` to make callers give it, or "
        "`required: true` to fall back on the default)"]


@pytest.mark.parametrize("spec", [
    "{type: string, required: true}",
    "{type: string, required: false, default: cats}",
    "{type: string, required: false}",
    "{type: string, default: cats}",
    "{type: string}",
])
def test_consistent_inputs_pass(spec: str) -> None:
    assert _issues(spec) == []
