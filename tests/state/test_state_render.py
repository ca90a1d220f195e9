from __future__ import annotations

from engine.state import RunRecord, StepRecord
from engine.state.render import format_run, format_runs_table

RUN = RunRecord(
    run_id="1m86z287ycweer1", workflow_name="digest", workflow_path="/w/digest.yaml",
    spec_hash="sha256:abc", inputs={"folder": "./data"}, status="failed",
    started_at=1_700_000_000.0, finished_at=1_700_000_002.5, outputs=None,
    error={"type": "StepError", "message": "step 'flag' failed", "step": "flag"},
    usage={"input_tokens": 120, "output_tokens": 40}, cost=0.0123,
    resumed_from="1m86z200000000a", meta={"weaker_sandbox": True})


def test_runs_table_lines_up_columns() -> None:
    other = RunRecord(run_id="1m86z287ycweer2", workflow_name="a-much-longer-name",
                      workflow_path="x.yaml", spec_hash="s", inputs={}, status="running",
                      started_at=1_700_000_100.0)
    child = RunRecord(run_id="1m86z287ycweer3", workflow_name="sub", workflow_path="s.yaml",
                      spec_hash="s", inputs={}, status="succeeded", started_at=1_700_000_001.0,
                      finished_at=1_700_000_001.5, parent_run_id=RUN.run_id,
                      meta={"parent_step": ["each", 2]})
    text = format_runs_table([RUN, other, child])
    lines = text.splitlines()
    assert lines[0].split() == ["RUN", "ID", "STATUS", "WORKFLOW", "STARTED", "(UTC)",
                                "DURATION", "COST", "CALLED", "BY"]
    assert lines[1].split() == ["1m86z287ycweer1", "failed", "digest", "2023-11-14",
                                "22:13:20", "2.50", "s", "$0.0123"]
    assert lines[2].split()[-2:] == ["unfinished", "-"]
    assert lines[3].endswith("  1m86z287ycweer1 step each[2]")
    assert lines[3].index("1m86z287ycweer1 step") == lines[0].index("CALLED BY")
    # the status column starts at the same offset in every line
    assert len({line.index(word) for line, word in
                zip(lines, ["STATUS", "failed", "running", "succeeded"], strict=True)}) == 1
    assert format_runs_table([]) == "no runs recorded yet\n"


def test_run_detail_shows_steps_errors_usage_and_audit() -> None:
    steps = [
        StepRecord(RUN.run_id, "read", "succeeded", attempts=1, started_at=1_700_000_000.0,
                   finished_at=1_700_000_000.25, items=3,
                   audit=[{"tool": "files.read_file", "decision": "allow"}]),
        StepRecord(RUN.run_id, "flag", "failed", attempts=3, started_at=1_700_000_000.3,
                   finished_at=1_700_000_002.4, usage={"input_tokens": 120}, cost=0.0123,
                   error={"kind": "timeout", "message": "took longer than 2s"},
                   events=[{"attempt": 1, "retry_in": 0.5}]),
        StepRecord(RUN.run_id, "report", "skipped"),
    ]
    text = format_run(RUN, steps)
    assert "run 1m86z287ycweer1  failed" in text
    assert "resumed    from 1m86z200000000a" in text
    assert "error      StepError: step 'flag' failed" in text
    assert "usage      input_tokens=120, output_tokens=40  cost $0.0123" in text
    assert "  read  succeeded  250 ms  1 attempt, 3 items" in text
    assert '      audit   {"decision": "allow", "tool": "files.read_file"}' in text
    assert "  flag  failed  2.10 s  3 attempts" in text
    assert "      error   timeout: took longer than 2s" in text
    assert '      event   {"attempt": 1, "retry_in": 0.5}' in text
    assert "  report  skipped  not started  0 attempts" in text
    assert "\x1b[" not in text  # plain text, no colour codes


def test_a_died_run_says_how_to_resume_it_from_another_database() -> None:
    died = RunRecord(run_id="1m86z287ycweer3", workflow_name="digest",
                     workflow_path="/w/digest.yaml", spec_hash="s", inputs={},
                     status="running", started_at=1_700_000_000.0,
                     meta={"owner": {"pid": 1, "host": "a-host-that-is-not-this-one"}})
    assert "continue it with `plait resume 1m86z287ycweer3`)" in format_run(died, [])
    text = format_run(died, [], locate=" --state /srv/runs.db")
    assert "continue it with `plait resume 1m86z287ycweer3 --state /srv/runs.db`)" in text
