"""A stdio MCP server's stderr goes to the run's log directory, not the terminal."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_server_stderr_is_kept_with_the_run(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(f"""\
version: 1
name: logs
mcp_servers:
  noisy:
    command: {sys.executable}
    args: [{ROOT / "tests" / "mcp" / "faulty_server.py"}, --stderr, "warming up the noisy server"]
    env: {{PYTHONPATH: "{ROOT}"}}
    policy: open
policies:
  open: {{level: low}}
steps:
  who:
    tool: noisy.pid
""")
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    out = subprocess.run([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml", "--json"],
                         cwd=tmp_path, capture_output=True, text=True, timeout=60, env=env,
                         check=False)
    assert out.returncode == 0, out.stderr
    assert "warming up" not in out.stderr and "warming up" not in out.stdout
    run_id = json.loads(out.stdout)["run_id"]
    log = tmp_path / ".plait" / "logs" / run_id / "noisy.stderr.log"
    assert "warming up the noisy server" in log.read_text()
    shown = subprocess.run([sys.executable, "-m", "runners.cli.main", "runs", "show", run_id,
                            "--json", "--workflow", "wf.yaml"], cwd=tmp_path,
                           capture_output=True, text=True, timeout=60, env=env, check=True)
    assert json.loads(shown.stdout)["meta"]["logs"] == str(log.parent)
