"""Drawing the graph: Mermaid, DOT and JSON, with kinds, statuses and awkward ids."""

from __future__ import annotations

import json
import re

from syrupy.assertion import SnapshotAssertion

from engine.graph import build, render_dot, render_json, render_mermaid

DEPS = {
    "ls": {},
    "read-files": {"foreach": ["ls"]},
    "summary": {"prompt": ["read-files"], "needs": ["ls"]},
    "investigate": {"if": ["summary"]},
    "archive": {"needs": ["summary"]},
}
KINDS = {"ls": "tool", "read-files": "tool", "summary": "llm", "investigate": "llm",
         "archive": "run"}
STATUSES = {"ls": "succeeded", "read-files": "succeeded", "summary": "running",
            "investigate": "failed", "archive": "pending"}


def graph():  # type: ignore[no-untyped-def]
    g, problems = build(DEPS)
    assert problems == []
    return g


def test_mermaid_snapshot(snapshot: SnapshotAssertion) -> None:
    assert render_mermaid(graph(), KINDS, STATUSES) == snapshot


def test_dot_snapshot(snapshot: SnapshotAssertion) -> None:
    assert render_dot(graph(), KINDS, STATUSES) == snapshot


def test_json_snapshot(snapshot: SnapshotAssertion) -> None:
    assert render_json(graph(), KINDS) == snapshot


def test_mermaid_structure() -> None:
    text = render_mermaid(graph(), KINDS, STATUSES)
    lines = text.splitlines()
    assert lines[0] == "flowchart TD"
    nodes = dict(re.findall(r'^\s+(n\d+)\["([^"]*)"\]$', text, re.M))
    labels = {label.split("<br/>")[0]: short for short, label in nodes.items()}
    assert set(labels) == set(DEPS)
    assert "read-files<br/><small>tool</small>" in nodes.values()
    edges = set(re.findall(r"^\s+(n\d+) --> (n\d+)$", text, re.M))
    assert (labels["ls"], labels["read-files"]) in edges
    assert len(edges) == 5
    assert re.search(rf"class {labels['summary']} st_running$", text, re.M)
    assert "classDef st_failed" in text


def test_mermaid_without_kinds_or_statuses() -> None:
    text = render_mermaid(graph())
    assert "<small>" not in text and "classDef" not in text


def test_mermaid_escapes_hostile_ids() -> None:
    g, _ = build({'a"b': {}, "c<d>#&|`\\": {"needs": ['a"b']}})
    text = render_mermaid(g, {'a"b': 'x"y'})
    labels = re.findall(r'\["([^"]*)"\]', text)
    assert len(labels) == 2  # no quote escaped the label
    assert "a#quot;b<br/><small>x#quot;y</small>" in labels
    assert "c#lt;d#gt;#35;#amp;#124;#96;#92;" in labels


def _dot_strings(text: str) -> list[str]:
    """Every double-quoted DOT string, unescaped."""
    return [re.sub(r"\\(.)", r"\1", s) for s in re.findall(r'"((?:[^"\\]|\\.)*)"', text)]


def test_dot_structure_and_escaping() -> None:
    g, _ = build({'a"b\\': {}, "x-y": {"needs": ['a"b\\']}})
    text = render_dot(g, {"x-y": "run"}, {"x-y": "failed"})
    assert text.startswith("digraph plait {") and text.rstrip().endswith("}")
    strings = _dot_strings(text)
    assert 'a"b\\' in strings and "x-y" in strings
    assert re.search(r'^\s+"a\\"b\\\\" -> "x-y";$', text, re.M)
    assert 'label="x-y\\nrun"' in text
    assert 'fillcolor="#ffebee"' in text


def test_unknown_status_gets_a_plain_style() -> None:
    g, _ = build({"a": {}})
    assert "classDef st_made_up_" in render_mermaid(g, statuses={"a": "made up!"})
    assert 'fillcolor="#ffffff"' in render_dot(g, statuses={"a": "made up!"})


def test_json_content() -> None:
    data = json.loads(render_json(graph(), KINDS))
    assert data["layers"] == [["ls"], ["read-files"], ["summary"], ["archive", "investigate"]]
    assert data["critical_path"] == ["ls", "read-files", "summary", "archive"]
    assert {"id": "summary", "kind": "llm", "layer": 2} in data["nodes"]
    assert {"from": "ls", "to": "summary", "fields": ["needs"]} in data["edges"]
    assert len(data["edges"]) == 5


def test_json_of_a_cyclic_graph_still_renders() -> None:
    g, problems = build({"a": {"needs": ["b"]}, "b": {"needs": ["a"]}})
    assert problems
    data = json.loads(render_json(g))
    assert data["layers"] == [] and data["critical_path"] == []
    assert [n["layer"] for n in data["nodes"]] == [None, None]
    assert "n0 --> n1" in render_mermaid(g)
