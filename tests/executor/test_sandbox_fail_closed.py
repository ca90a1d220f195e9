"""A policy level this machine cannot enforce stops the run before any step starts; running
below it needs --allow-weaker-sandbox and is written to the run record."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = """\
version: 1
name: guarded
policies:
  strict: {level: high}
steps:
  first:
    run: "touch ran"
    policy: strict
"""


def plait(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "PLAIT_BWRAP": str(cwd / "no-such-bwrap")}
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=env, check=False)


def test_missing_bwrap_refuses_before_anything_runs(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out = plait("run", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stderr
    assert "bubblewrap" in out.stderr and "--allow-weaker-sandbox" in out.stderr
    assert not (tmp_path / "ran").exists()


def test_allow_weaker_sandbox_runs_and_records_it(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out = plait("run", "wf.yaml", "--allow-weaker-sandbox", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    run_id = json.loads(out.stdout)["run_id"]
    assert (tmp_path / "ran").exists()
    shown = plait("runs", "show", run_id, "--json", "--workflow", "wf.yaml", cwd=tmp_path)
    meta = json.loads(shown.stdout)["meta"]
    assert meta["weaker_sandbox"] and "strict" in meta["weaker_sandbox"][0]
