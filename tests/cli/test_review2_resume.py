"""`plait resume` and `plait runs show` around a run that was resumed or finished."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli.test_cli import plait

FAILS = """\
version: 1
name: moving
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  one: {run: "echo one"}
  two: {run: "test -e ok", needs: [one]}
"""


def test_a_resume_from_a_moved_file_records_its_new_place(tmp_path: Path) -> None:
    """`plait resume RUN_ID --file NEW` ran the run from NEW but left the old path in the
    record, so the next `plait resume RUN_ID` (the command the failed resume printed) said
    the file was gone again."""
    (tmp_path / "wf.yaml").write_text(FAILS)
    failed = plait("run", "wf.yaml", "--json", cwd=tmp_path)
    assert failed.returncode == 1, failed.stderr
    run_id = json.loads(failed.stdout)["run_id"]
    (tmp_path / "wf.yaml").rename(tmp_path / "new.yaml")
    state = str(tmp_path / ".plait" / "runs.db")

    again = plait("resume", run_id, "--file", "new.yaml", "--state", state, cwd=tmp_path)
    assert again.returncode == 1, again.stderr
    assert f"rerun only what did not succeed with: plait resume {run_id}" in again.stderr
    shown = plait("runs", "show", run_id, "--json", cwd=tmp_path)
    assert json.loads(shown.stdout)["workflow_path"] == str((tmp_path / "new.yaml").resolve())

    (tmp_path / "ok").touch()
    last = plait("resume", run_id, cwd=tmp_path)
    assert "is gone" not in last.stderr, last.stderr
    assert last.returncode == 0, last.stderr


def test_runs_show_of_a_succeeded_run_does_not_promise_a_resume(tmp_path: Path) -> None:
    """A foreach step that failed under continue_on_error keeps its finished items, and the
    run succeeds; `runs show` said `(a resume reuses them)` of a run no resume can take."""
    (tmp_path / "wf.yaml").write_text("""\
version: 1
name: items
policies:
  o: {level: low}
defaults:
  policy: o
steps:
  f:
    foreach: ${{ ['a', 'c', 'b'] }}
    max_parallel: 1
    run: "test ${{ item }} != b"
    continue_on_error: true
""")
    done = plait("run", "wf.yaml", "--json", cwd=tmp_path)
    assert done.returncode == 0, done.stderr
    run_id = json.loads(done.stdout)["run_id"]
    shown = plait("runs", "show", run_id, cwd=tmp_path)
    assert shown.returncode == 0, shown.stderr
    assert "items   2 finished items recorded\n" in shown.stdout + "\n", shown.stdout
    assert "a resume reuses" not in shown.stdout, shown.stdout
    refused = plait("resume", run_id, cwd=tmp_path)
    assert refused.returncode == 2 and "already succeeded" in refused.stderr, refused.stderr
