"""A run below its policy's sandbox level (--allow-weaker-sandbox) says so on its trace, as
docs/security.md promises: `plait.sandbox.weaker` on the run span."""

from __future__ import annotations

import json
from pathlib import Path

from tests.tracing.test_exporters import plait

WORKFLOW = """\
version: 1
name: guarded
policies:
  strict: {level: high}
steps:
  first:
    run: "true"
    policy: strict
"""


def test_a_weaker_sandbox_is_on_the_run_span(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    out = plait("run", "wf.yaml", "--no-record", "--allow-weaker-sandbox", "--trace-file",
                "t.jsonl", cwd=tmp_path, env={"PLAIT_BWRAP": str(tmp_path / "no-bwrap")})
    assert out.returncode == 0, out.stderr
    spans = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    (run,) = [s for s in spans if s["name"] == "plait.run"]
    weaker = run["attributes"]["plait.sandbox.weaker"]
    assert len(weaker) == 1 and weaker[0].startswith("strict: ")
    # a run at its level has no such attribute
    (tmp_path / "wf.yaml").write_text(WORKFLOW.replace("high", "low"))
    out = plait("run", "wf.yaml", "--no-record", "--trace-file", "t.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    spans = [json.loads(line) for line in (tmp_path / "t.jsonl").read_text().splitlines()]
    (run,) = [s for s in spans if s["name"] == "plait.run"]
    assert "plait.sandbox.weaker" not in run["attributes"]
