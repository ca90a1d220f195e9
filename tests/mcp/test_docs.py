"""Every YAML example in the MCP docs is valid against the spec models."""

from __future__ import annotations

import re

import pytest
import yaml
from pydantic import TypeAdapter

from engine.spec.models import MCPServerSpec, PolicySpec, Step
from tests.mcp.conftest import ROOT

DOCS = [ROOT / "docs" / "mcp.md", *sorted((ROOT / "docs" / "mcp-servers").glob("*.md"))]
BLOCK = re.compile(r"```yaml\n(.*?)```", re.S)


def blocks() -> list[tuple[str, str]]:
    out = []
    for doc in DOCS:
        for i, text in enumerate(BLOCK.findall(doc.read_text())):
            out.append((f"{doc.name}#{i}", text))
    return out


@pytest.mark.parametrize(("where", "text"), blocks(), ids=[w for w, _ in blocks()])
def test_yaml_example_is_valid(where: str, text: str) -> None:
    doc = yaml.safe_load(text)
    assert isinstance(doc, dict), where
    checked = 0
    for spec in (doc.get("mcp_servers") or {}).values():
        MCPServerSpec.model_validate(spec)
        checked += 1
    for policy in (doc.get("policies") or {}).values():
        PolicySpec.model_validate(policy)
        checked += 1
    for step in (doc.get("steps") or {}).values():
        TypeAdapter(Step).validate_python(step)
        checked += 1
    assert checked, f"{where} holds nothing checkable"


def test_every_bundled_server_has_a_page() -> None:
    assert {p.stem for p in DOCS[1:]} == {"files", "web", "data"}
