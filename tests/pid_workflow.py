"""A workflow whose one step asks a real MCP server subprocess for its pid: equal pids across
runs prove the runs shared one server process."""

from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def write_pid_workflow(path: Path, *, inputs: str = "") -> Path:
    """`inputs`: an extra `inputs:` block (YAML), e.g. to make batch rows valid."""
    server = ROOT / "tests" / "mcp" / "faulty_server.py"
    path.write_text(f"""\
version: 1
name: pids
{inputs}mcp_servers:
  s:
    command: {sys.executable}
    args: [{server}]
    env: {{PYTHONPATH: "{ROOT}"}}
    policy: open
policies:
  open: {{level: low}}
steps:
  pid:
    tool: s.pid
outputs:
  pid: ${{{{ steps.pid.output }}}}
""")
    return path
