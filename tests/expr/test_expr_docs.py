"""The examples in docs/expressions.md are valid, compile, and mean what the text says."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest
import yaml

from engine.expr import compile_value
from engine.graph import build
from engine.spec.models import WorkflowSpec

DOC = Path(__file__).resolve().parents[2] / "docs" / "expressions.md"
BLOCKS = re.findall(r"```yaml\n(.*?)```", DOC.read_text(encoding="utf-8"), re.S)


def test_doc_has_examples() -> None:
    assert len(BLOCKS) >= 4


@pytest.mark.parametrize("block", BLOCKS)
def test_every_yaml_example_compiles(block: str) -> None:
    data = yaml.safe_load(block)
    compile_value(data)


def test_the_tour_workflow_is_valid_and_its_graph_is_sound() -> None:
    (tour,) = [b for b in BLOCKS if b.startswith("version: 1")]
    raw: dict[str, Any] = yaml.safe_load(tour)
    WorkflowSpec.model_validate(raw)
    deps = {}
    for step_id, step in raw["steps"].items():
        fields = {name: compile_value(value).refs for name, value in step.items()}
        fields["needs"] = frozenset(step.get("needs", []))
        deps[step_id] = fields
    graph, problems = build(deps)
    assert problems == []
    assert sorted(graph.edges) == [("ls", "read"), ("read", "summary"), ("summary", "flag")]
    outputs = compile_value(raw["outputs"])
    assert outputs.refs == {"summary", "ls"}
    ctx = {"steps": {"summary": {"output": "ok"},
                     "ls": {"output": {"entries": [{"name": "a"}, {"name": "b"}]}}}}
    assert outputs.render(ctx) == {"summary": "ok", "files": ["a", "b"]}
