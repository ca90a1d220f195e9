from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]

#: a workflow with every step status: succeeded, failed (continue_on_error), skipped, and an
#: output that tries to inject markup into reports
WORKFLOW = """\
version: 1
name: mixed
providers:
  p: {kind: echo, model: echo-1}
policies:
  open: {level: low}
defaults: {policy: open}
steps:
  fetch:
    run: printf '%s' '<script>console.error("xss")</script><img src=x onerror=alert(1)> & "q"'
  think:
    llm: p
    prompt: "about ${{ steps.fetch.output.stdout }}"
  never:
    if: ${{ false }}
    llm: p
    prompt: unused
  broken:
    needs: [think]
    run: 'echo "went wrong" >&2; exit 4'
    continue_on_error: true
  after:
    needs: [broken]
    llm: p
    prompt: done
"""


def plait(*args: str, cwd: Path, env: dict[str, str] | None = None,
          ) -> subprocess.CompletedProcess[str]:
    full = {k: v for k, v in os.environ.items()
            if k not in ("GITHUB_ACTIONS", "GITHUB_STEP_SUMMARY")}
    full.update({"PYTHONPATH": str(ROOT), **(env or {})})
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, text=True, timeout=60, env=full, check=False)
