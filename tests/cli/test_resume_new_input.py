"""`plait resume` after the workflow gained a required input. It said "missing required input:
extra (pass -i NAME=VALUE)" without it and "input 'extra' differs from run ...'s (leave them
out to reuse them)" with it: each message sent the user to the other. Now a new input is
given to the resume with -i; the run's finished steps (which ran without it) are kept."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import plait

V1 = """\
version: 1
name: grows
policies:
  open: {level: low}
defaults:
  policy: open
inputs:
  n: {type: integer}
steps:
  a: {run: "echo ran >> a.log"}
  b:
    needs: [a]
    run: exit 1
"""
V2 = V1.replace("  n: {type: integer}\n", "  n: {type: integer}\n  extra: {type: string}\n") \
       .replace("run: exit 1", "run: test '${{ inputs.extra }}' = go")


def test_a_resume_takes_a_new_required_input_given_with_i_and_asks_for_it_without(
        tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(V1)
    first = plait("run", "wf.yaml", "-i", "n=3", "--json", cwd=tmp_path)
    assert first.returncode == 1, first.stderr
    run_id = json.loads(first.stdout)["run_id"]
    (tmp_path / "wf.yaml").write_text(V2)

    asked = plait("resume", run_id, cwd=tmp_path)
    assert asked.returncode == 2, asked.stderr
    assert asked.stderr.strip() == (
        f"error: the workflow now requires input 'extra', which run {run_id} did not have "
        "(hint: give it to the resume: -i extra=VALUE (the run's other inputs are reused; its "
        "finished steps ran without it and are not run again))")

    resumed = plait("resume", run_id, "-i", "extra=go", "--json", cwd=tmp_path)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    assert (tmp_path / "a.log").read_text() == "ran\n"  # a finished: not run again
    shown = plait("runs", "show", run_id, "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["inputs"] == {"n": 3, "extra": "go"}  # recorded with it

