"""`plait batch` and `plait schedule` trace every run they start, into one tracing session
for the whole command (shut down once, Ctrl-C included), with the run's trace options."""

from __future__ import annotations

import datetime as dt
import json
import signal
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import anyio
import pytest
from click.testing import CliRunner

from runners.cli import schedule as schedule_cli
from runners.cli.batch_cmd import batch as batch_cli
from tests.cli.test_batch_edges import SLOW, interrupt_once
from tests.executor.test_crash_resume import plait as popen
from tests.tracing.test_exporters import _closed_port, plait

ROOT = Path(__file__).resolve().parents[2]
ECHO = """\
version: 1
name: rows
inputs:
  who: {type: string}
providers:
  p: {kind: echo, model: echo-1}
steps:
  hello:
    llm: p
    prompt: "hello ${{ inputs.who }}"
"""
PROBE = f"""\
version: 1
name: probed
inputs:
  n: {{type: integer}}
mcp_servers:
  probe:
    command: {json.dumps(sys.executable)}
    args: [-m, tests.tracing.meta_server]
    env: {{PYTHONPATH: {json.dumps(str(ROOT))}}}
    policy: open
policies:
  open: {{level: low}}
steps:
  look:
    tool: probe.meta
outputs:
  meta: ${{{{ steps.look.output }}}}
"""


def _spans(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def _runs(spans: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """run id -> its plait.run span."""
    return {s["attributes"]["plait.run.id"]: s for s in spans if s["name"] == "plait.run"}


def _trace(spans: list[dict[str, Any]], run: dict[str, Any]) -> list[str]:
    return sorted(s["name"] for s in spans
                  if s["context"]["trace_id"] == run["context"]["trace_id"])


def test_batch_traces_every_row_into_one_file(tmp_path: Path) -> None:
    secret = "s3cr3t-of-the-BATCH"
    (tmp_path / "wf.yaml").write_text(ECHO.replace("inputs:", "secrets: [MY_TOKEN]\ninputs:"))
    (tmp_path / "rows.jsonl").write_text('{"who": "a"}\n{"who": "b"}\n{"who": "c"}\n')
    out = plait("batch", "wf.yaml", "--inputs", "rows.jsonl", "--state", "runs.db",
                "--trace-file", "t.jsonl", "--trace-content", cwd=tmp_path,
                env={"MY_TOKEN": secret, "OTEL_RESOURCE_ATTRIBUTES": f"team.token={secret}"})
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert secret not in (tmp_path / "t.jsonl").read_text()
    spans = _spans(tmp_path / "t.jsonl")
    assert {s["resource"]["attributes"]["team.token"] for s in spans} == {"***"}
    runs = _runs(spans)
    assert set(runs) == {row["run_id"] for row in rows}  # one plait.run per row
    assert len({run["context"]["trace_id"] for run in runs.values()}) == 3
    for row in rows:
        run = runs[row["run_id"]]
        assert _trace(spans, run) == ["chat echo-1", "plait.run", "plait.step hello"]
        chat = next(s for s in spans if s["name"] == "chat echo-1"
                    and s["context"]["trace_id"] == run["context"]["trace_id"])
        assert "hello " in chat["attributes"]["gen_ai.input.messages"]  # --trace-content
    assert "dropped" not in out.stderr


def test_batch_mcp_runs_share_servers_and_each_keeps_its_own_trace(tmp_path: Path) -> None:
    """Traced runs borrow the batch's shared MCP runtime; each tool call still carries its
    own run's trace context to the server."""
    (tmp_path / "wf.yaml").write_text(PROBE)
    (tmp_path / "rows.jsonl").write_text("".join(f'{{"n": {i}}}\n' for i in range(3)))
    out = plait("batch", "wf.yaml", "--inputs", "rows.jsonl", "--state", "runs.db",
                "--trace-file", "t.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    rows = [json.loads(line) for line in out.stdout.splitlines()]
    assert len({row["outputs"]["meta"]["server_pid"] for row in rows}) == 1  # one server
    spans = _spans(tmp_path / "t.jsonl")
    runs = _runs(spans)
    assert set(runs) == {row["run_id"] for row in rows}
    for row in rows:
        run = runs[row["run_id"]]
        (tool,) = [s for s in spans if s["name"] == "execute_tool meta"
                   and s["context"]["trace_id"] == run["context"]["trace_id"]]
        # the context the server got is the one of this row's run and tool span
        _version, trace_id, parent, _flags = row["outputs"]["meta"]["traceparent"].split("-")
        assert f"0x{trace_id}" == run["context"]["trace_id"]
        assert f"0x{parent}" == tool["context"]["span_id"]


def test_batch_warns_once_when_traces_were_dropped(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(ECHO)
    (tmp_path / "rows.jsonl").write_text('{"who": "a"}\n{"who": "b"}\n')
    url = f"http://127.0.0.1:{_closed_port()}"
    out = plait("batch", "wf.yaml", "--inputs", "rows.jsonl", "--state", "runs.db",
                "--otlp", url, cwd=tmp_path)
    assert out.returncode == 0, out.stderr  # the runs themselves are not affected
    warnings = [line for line in out.stderr.splitlines() if "dropped" in line]
    assert len(warnings) == 1, out.stderr
    assert warnings[0].startswith("warning: traces were dropped: 6 span(s)")
    assert url in warnings[0]
    assert [json.loads(line)["status"] for line in out.stdout.splitlines()] == \
        ["succeeded", "succeeded"]




def test_an_interrupted_batch_still_writes_its_traces(tmp_path: Path) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "rows.jsonl").write_text('{"i": 0}\n{"i": 1}\n{"i": 2}\n')
    proc = popen("batch", "slow.yaml", "--inputs", "rows.jsonl", "--concurrency", "2",
                 "--state", "runs.db", "--trace-file", "t.jsonl", cwd=tmp_path)
    _out, err = interrupt_once(proc, tmp_path / "started-0", tmp_path / "started-1")
    assert proc.returncode == 130, err
    spans = _spans(tmp_path / "t.jsonl")
    runs = _runs(spans)
    assert len(runs) == 2  # the third row never started
    assert {r["attributes"]["plait.run.status"] for r in runs.values()} == {"interrupted"}
    assert Counter(s["name"] for s in spans) == {"plait.run": 2, "plait.step s": 2}


def test_batch_on_ray_refuses_trace_flags(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(ECHO)
    (tmp_path / "rows.jsonl").write_text('{"who": "a"}\n')
    result = CliRunner().invoke(batch_cli, [str(tmp_path / "wf.yaml"), "--inputs",
                                            str(tmp_path / "rows.jsonl"), "--executor", "ray",
                                            "--trace-file", str(tmp_path / "t.jsonl")])
    assert result.exit_code == 2, result.output
    assert "the runs of --executor ray are not traced" in result.output
    assert "--executor local" in result.output
    assert not (tmp_path / "t.jsonl").exists()


#: ECHO, named nightly, fired every minute by `plait schedule`
SCHEDULED = ECHO.replace("name: rows\n", "name: nightly\non:\n  schedule:\n"
                         "    - {cron: \"* * * * *\", inputs: {who: cron}}\n")


class _NoWaitClock:
    """Every fire time is reached at once."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep_until(self, when: dt.datetime) -> None:
        await anyio.lowlevel.checkpoint()


def test_schedule_traces_every_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wf.yaml").write_text(SCHEDULED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(schedule_cli, "CLOCK", _NoWaitClock())
    result = CliRunner().invoke(schedule_cli.command, ["wf.yaml", "--max-runs", "2",
                                                       "--trace-file", "t.jsonl"])
    assert result.exit_code == 0, result.output
    spans = _spans(tmp_path / "t.jsonl")
    runs = _runs(spans)
    assert len(runs) == 2 and len({r["context"]["trace_id"] for r in runs.values()}) == 2
    for run in runs.values():
        assert _trace(spans, run) == ["chat echo-1", "plait.run", "plait.step hello"]
        assert run["attributes"]["plait.workflow"] == "nightly"


def test_a_restarted_schedule_keeps_the_traces_of_its_earlier_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wf.yaml").write_text(SCHEDULED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(schedule_cli, "CLOCK", _NoWaitClock())
    for start in (1, 2):  # a service restarted: the file is added to, not emptied
        result = CliRunner().invoke(schedule_cli.command, ["wf.yaml", "--max-runs", "1",
                                                           "--trace-file", "t.jsonl"])
        assert result.exit_code == 0, result.output
        assert len(_runs(_spans(tmp_path / "t.jsonl"))) == start


def test_schedule_warns_when_traces_were_dropped(tmp_path: Path,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wf.yaml").write_text(SCHEDULED)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(schedule_cli, "CLOCK", _NoWaitClock())
    url = f"http://127.0.0.1:{_closed_port()}"
    result = CliRunner().invoke(schedule_cli.command, ["wf.yaml", "--max-runs", "1",
                                                       "--otlp", url])
    assert result.exit_code == 0, result.output
    warnings = [line for line in result.output.splitlines() if "dropped" in line]
    assert len(warnings) == 1, result.output
    assert warnings[0].startswith("warning: traces were dropped: 3 span(s)")


def test_a_scheduled_run_is_written_when_it_ends(tmp_path: Path) -> None:
    """A daemon holds no span once its run has ended: each run is in the file at once (not
    when thousands have gathered, or when the daemon stops), and the tracer keeps no state
    of finished runs, so a daemon's memory does not grow with the runs it made."""
    from runners.tracing_setup import TraceConfig, start_tracing

    (tmp_path / "wf.yaml").write_text(SCHEDULED)
    session = start_tracing(TraceConfig(file=tmp_path / "t.jsonl"), environ={})
    assert session is not None
    try:
        run = schedule_cli.traced_runner(session)
        for count in range(1, 4):
            result = anyio.run(run, tmp_path / "wf.yaml", {"who": str(count)})
            assert result.status == "succeeded"
            assert len(_runs(_spans(tmp_path / "t.jsonl"))) == count
            assert len(_spans(tmp_path / "t.jsonl")) == 3 * count
            assert session.tracer._runs == {}
    finally:
        assert session.shutdown() == []


SERVE = """
import sys
import datetime as dt
import anyio
import runners.cli.schedule as s

class NoWait:
    def now(self):
        return dt.datetime.now(dt.UTC)

    async def sleep_until(self, when):
        await anyio.lowlevel.checkpoint()

s.CLOCK = NoWait()
s.command(sys.argv[1:])
"""


def test_schedule_stopped_by_ctrl_c_writes_the_runs_in_flight(tmp_path: Path) -> None:
    import os
    import subprocess

    (tmp_path / "wf.yaml").write_text(SLOW.replace("name: slow", "name: slow\non:\n  schedule:"
                                                   "\n    - {cron: '* * * * *', inputs: "
                                                   "{i: 0}}"))
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, "wf.yaml", "--trace-file",
                             "t.jsonl", "--max-runs", "1"], cwd=tmp_path, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True)
    _out, err = interrupt_once(proc, tmp_path / "started-0", sig=signal.SIGINT)
    assert proc.returncode == 130, err
    assert "stopped by SIGINT" in err
    spans = _spans(tmp_path / "t.jsonl")
    (run,) = _runs(spans).values()
    assert run["attributes"]["plait.workflow"] == "slow"
    assert {s["name"] for s in spans} == {"plait.run", "plait.step s"}
