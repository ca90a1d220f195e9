"""The examples in docs/expressions.md are valid, compile, and mean what the text says."""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
import yaml

import engine
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


def test_the_tour_runs_as_written(tmp_path: Path) -> None:
    """Copied as it is (only the server command made runnable without an install), the tour
    lists, reads and summarises the files of its folder."""
    (tour,) = [b for b in BLOCKS if b.startswith("version: 1")]
    raw: dict[str, Any] = yaml.safe_load(tour)
    files = raw["mcp_servers"]["files"]
    assert files["command"] == "plait-mcp-files"
    files.update(command=sys.executable, args=["-m", "engine.mcp.servers.files", *files["args"]],
                 env={"PYTHONPATH": str(DOC.parents[1])})
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("alpha")
    (tmp_path / "data" / "b.md").write_text("beta")
    (tmp_path / "tour.yaml").write_text(yaml.safe_dump(raw))
    workflow = engine.load(tmp_path / "tour.yaml")
    result = anyio.run(lambda: workflow.run({}, record_state=False))
    assert result.status == "succeeded", result.error
    assert sorted(result.outputs["files"]) == ["a.txt", "b.md"]
    assert "Summarise these 2 files" in result.outputs["summary"]
