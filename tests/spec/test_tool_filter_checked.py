"""A `tool:` step that names a tool its server's own `tools.allow` / `tools.deny` hides could
never run: `plait validate` says so at the step, in the words the run would use."""

from __future__ import annotations

import pytest

from engine.errors import SpecError
from engine.spec.loader import load_text

BASE = ("version: 1\nname: wf\nmcp_servers:\n  files:\n    command: plait-mcp-files\n"
        "    tools: {FILTER}\nsteps:\n  a:\n    tool: files.{TOOL}\n")


def _issues(tool_filter: str, tool: str) -> list[str]:
    text = BASE.replace("{FILTER}", tool_filter).replace("{TOOL}", tool)
    try:
        load_text(text, "wf.yaml")
    except SpecError as exc:
        return [issue.format() for issue in exc.issues]
    return []


def test_a_denied_tool_is_a_located_spec_error() -> None:
    assert _issues("{deny: [write_*]}", "write_file") == [
        "wf.yaml:9:11: tool 'files.write_file' is filtered out by the server's `tools.deny` "
        "pattern 'write_*' at 'steps.a.tool' (remove that pattern from `tools.deny`, or call "
        "another tool)"]


def test_a_tool_outside_allow_is_a_located_spec_error() -> None:
    issues = _issues("{allow: [read_file, list_*]}", "write_file")
    assert len(issues) == 1
    assert "tool 'files.write_file' is filtered out by the server's `tools.allow` (none of " \
           "['read_file', 'list_*'] matches it)" in issues[0]


@pytest.mark.parametrize(("tool_filter", "tool"), [
    ("{allow: [read_file, list_*]}", "list_directory"),
    ("{deny: [write_*]}", "read_file"),
    ("{}", "anything"),
    ("{allow: null}", "anything"),
])
def test_exposed_tools_pass(tool_filter: str, tool: str) -> None:
    assert _issues(tool_filter, tool) == []
