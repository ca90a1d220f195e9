"""A stdio MCP server whose program the sandbox of its policy does not show (level high: only
the system directories and the policy's roots) fails to start with a hint that says so, not
"run the command by hand" (by hand it runs: it is the sandbox that hides it)."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.cli.test_cli import plait

WORKFLOW = """\
version: 1
name: hidden
mcp_servers:
  s:
    command: {command}
    policy: boxed
policies:
  boxed: {{level: high, filesystem: {{read: [data]}}}}
steps:
  a: {{tool: s.t}}
"""


@pytest.mark.bwrap
def test_a_server_the_sandbox_hides_says_to_add_its_directories(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    program = tmp_path / "tools" / "server"
    program.parent.mkdir()
    program.write_text("#!/bin/sh\nexit 0\n")
    program.chmod(0o755)
    (tmp_path / "wf.yaml").write_text(WORKFLOW.format(command=program))
    out = plait("mcp", "tools", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    assert "failed during start-up" in out.stderr
    assert f"failed to execute {program}: No such file or directory" in out.stderr
    assert ("hint: under a policy of level high or critical the server sees only the system "
            "directories and the policy's roots: add the directories of its program") \
        in out.stderr
    assert "run the command by hand" not in out.stderr
