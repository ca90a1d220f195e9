"""`plait schedule` as a click command (the live loop is covered by the Scheduler tests)."""

from __future__ import annotations

import datetime as dt
import logging
from pathlib import Path

import anyio
import pytest
from click.testing import CliRunner

from runners.cli import schedule as cli

WORKFLOW = """\
version: 1
name: digest
on:
  schedule:
    - {cron: "0 7 * * 1-5", timezone: Europe/Berlin, inputs: {folder: ./inbox}}
    - {cron: "@monthly"}
inputs:
  folder: {type: string, default: .}
steps:
  hello: {run: "echo hi"}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


def test_next_prints_upcoming_fire_times(tmp_path: Path) -> None:
    wf = write(tmp_path, "digest.yaml", WORKFLOW)
    result = CliRunner().invoke(cli.command, [str(wf), "--next", "3"])
    assert result.exit_code == 0, result.output
    lines = result.output.splitlines()
    assert lines[0] == f"{wf}: on.schedule[0] ('0 7 * * 1-5' Europe/Berlin)"
    assert lines[4] == f"{wf}: on.schedule[1] ('@monthly' UTC)"
    weekday = [dt.datetime.fromisoformat(x.strip()) for x in lines[1:4]]
    assert all(t.weekday() < 5 and (t.hour, t.minute) == (7, 0) for t in weekday)
    assert weekday == sorted(weekday) and len(set(weekday)) == 3
    monthly = [dt.datetime.fromisoformat(x.strip()) for x in lines[5:8]]
    assert all(t.day == 1 and t.hour == 0 and t.utcoffset() == dt.timedelta(0)
               for t in monthly)


def test_every_problem_of_every_file_exits_2(tmp_path: Path) -> None:
    bad = write(tmp_path, "bad.yaml", WORKFLOW.replace("0 7 * * 1-5", "0 25 * * *")
                .replace("@monthly", "@fortnightly"))
    none = write(tmp_path, "none.yaml", "version: 1\nname: x\nsteps: {a: {run: 'true'}}\n")
    typo = write(tmp_path, "typo.yaml", WORKFLOW.replace("timezone:", "tz:"))
    result = CliRunner().invoke(cli.command, [str(bad), str(none), str(typo)])
    assert result.exit_code == 2
    out = result.output
    assert f"{bad}:5:14: invalid cron expression '0 25 * * *'" in out
    assert "at 'on.schedule[0].cron'" in out
    assert "'@fortnightly' has 1 fields" in out and "on.schedule[1].cron" in out
    assert f"{none}: the workflow has no schedule at 'on.schedule'" in out
    assert "unknown key 'tz' at 'on.schedule[0].tz' " \
           "(expected one of: cron, inputs, timezone)" in out
    assert str(typo) in out


def test_the_default_runner_runs_the_workflow_with_a_record(tmp_path: Path) -> None:
    """What a fire does: load the file afresh and run it through the executor."""
    wf = write(tmp_path, "job.yaml", "version: 1\nname: job\npolicies:\n  o: {level: low}\n"
               "steps:\n  a: {run: 'echo fired > fired.txt', policy: o}\n")
    result = anyio.run(cli.run_workflow_file, wf, {})
    assert result.status == "succeeded"
    assert (tmp_path / "fired.txt").read_text().strip() == "fired"
    assert (tmp_path / ".plait" / "runs.db").is_file()


def test_missing_file_is_a_usage_error(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli.command, [str(tmp_path / "nope.yaml")])
    assert result.exit_code == 2
    assert "does not exist" in result.output


SERVE = """
import sys
import anyio
import pytest
import runners.cli.schedule as s

async def run(path, inputs):
    print("run started", flush=True)
    try:
        await anyio.sleep_forever()
    finally:
        print("run cancelled", flush=True)

s.RUN_WORKFLOW = run
s.command([sys.argv[1]])
"""


@pytest.mark.parametrize("name", ["SIGTERM", "SIGHUP"])
def test_sigterm_stops_cleanly_with_130(tmp_path: Path, name: str) -> None:
    """SIGTERM (`kill`), and SIGHUP (the terminal closed), stop the schedule as Ctrl-C does."""
    import os
    import signal
    import subprocess
    import sys
    import time

    wf = write(tmp_path, "digest.yaml", WORKFLOW.replace("0 7 * * 1-5", "* * * * *"))
    root = Path(__file__).resolve().parents[2]
    env = {**os.environ, "PYTHONPATH": str(root)}
    proc = subprocess.Popen([sys.executable, "-c", SERVE, str(wf)], env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    assert proc.stderr is not None
    deadline = time.monotonic() + 20
    seen = ""
    while "next run at" not in seen and time.monotonic() < deadline:  # the loop is up
        seen += proc.stderr.readline()
    proc.send_signal(getattr(signal, name))
    out, err = proc.communicate(timeout=20)
    assert proc.returncode == 130, seen + err
    assert f"stopped by {name}" in err
    assert "run started" not in out or "run cancelled" in out


class _NoWaitClock:
    """Every fire time is reached at once: the daemon's loop without waiting a cron minute."""

    def now(self) -> dt.datetime:
        return dt.datetime.now(dt.UTC)

    async def sleep_until(self, when: dt.datetime) -> None:
        await anyio.lowlevel.checkpoint()


FAILING = """\
version: 1
name: failing
on:
  schedule:
    - {cron: "* * * * *", inputs: {x: boom}}
inputs:
  x: {type: string}
policies:
  o: {level: low}
steps:
  a: {run: "echo ${{ inputs.x }}; exit 3", policy: o}
"""


def test_max_runs_exits_1_when_a_run_failed_and_logs_why(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture) -> None:
    wf = write(tmp_path, "failing.yaml", FAILING)
    monkeypatch.setattr(cli, "CLOCK", _NoWaitClock())
    with caplog.at_level(logging.INFO, logger="plait.schedule"):
        result = CliRunner().invoke(cli.command, [str(wf), "--max-runs", "2"])
    assert result.exit_code == 1, result.output
    assert "2 of 2 run(s) failed" in result.output
    failures = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert len(failures) == 2
    assert "failed: run " in failures[0] and ": step a: " in failures[0]
    # run from elsewhere (here: the repository), so the hint names the run's database
    db = tmp_path / ".plait" / "runs.db"
    assert f" --state {db})" in failures[0] and "(details: plait runs show " in failures[0]


def test_max_runs_exits_0_when_every_run_succeeded(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = write(tmp_path, "fine.yaml", FAILING.replace("; exit 3", ""))
    monkeypatch.setattr(cli, "CLOCK", _NoWaitClock())
    result = CliRunner().invoke(cli.command, [str(wf), "--max-runs", "2"])
    assert result.exit_code == 0, result.output
    assert "failed" not in result.output


def test_never_firing_cron_and_bad_schedule_inputs_exit_2_located(tmp_path: Path) -> None:
    wf = write(tmp_path, "feb.yaml", FAILING.replace("* * * * *", "0 0 31 2 *")
               .replace("{x: boom}", "{colour: red}"))
    result = CliRunner().invoke(cli.command, [str(wf)])
    assert result.exit_code == 2, result.output
    assert f"{wf}:5:14: cron expression '0 0 31 2 *' never fires" in result.output
    assert f"{wf}:5:37: schedule input 'colour' is not a declared input" in result.output
    assert "the schedule does not give required input x" in result.output
    assert "Traceback" not in result.output


DAEMON = """
import sys
import runners.cli.schedule as s
from tests.schedule.test_schedule_cli import _NoWaitClock

s.CLOCK = _NoWaitClock()
s.command([sys.argv[1], "--max-runs", "1"])
"""

SLOW = """\
version: 1
name: slow
on:
  schedule: [{cron: "* * * * *"}]
policies:
  o: {level: low}
steps:
  a: {run: "echo $$ > sleeper.pid; exec sleep 30", policy: o}
"""


def test_sigterm_mid_run_logs_the_interrupted_run_and_how_to_resume_it(tmp_path: Path) -> None:
    """The real runner in a real daemon process, stopped while its run's command runs."""
    import os
    import signal
    import subprocess
    import sys
    import time

    from engine.state import RunStore

    write(tmp_path, "slow.yaml", SLOW)
    root = Path(__file__).resolve().parents[2]
    # started where the workflow is, as a service often is: the log still names the database
    proc = subprocess.Popen([sys.executable, "-c", DAEMON, "slow.yaml"], cwd=tmp_path,
                            env={**os.environ, "PYTHONPATH": str(root)},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 20
        while not (tmp_path / "sleeper.pid").exists() and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=20)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert proc.returncode == 130, err
    store = RunStore.open(str(tmp_path / ".plait" / "runs.db"))
    (run,) = store.list_runs()
    store.close()
    assert run.status == "interrupted"
    db = (tmp_path / ".plait" / "runs.db").resolve()
    assert (f"run {run.run_id} interrupted; resume it with: plait resume {run.run_id} "
            f"--state {db}") in err
    assert err.rstrip().endswith("plait schedule: stopped by SIGTERM")
    sleeper = int((tmp_path / "sleeper.pid").read_text())
    assert not Path(f"/proc/{sleeper}").exists() or \
        "\nState:\tZ" in Path(f"/proc/{sleeper}/status").read_text()


def test_a_declared_secret_that_is_not_set_stops_the_daemon_at_start(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    wf = write(tmp_path, "secret.yaml", FAILING.replace("policies:", "secrets: [OPS_SECRET]\n"
                                                        "policies:"))
    monkeypatch.delenv("OPS_SECRET", raising=False)
    monkeypatch.setattr(cli, "CLOCK", _NoWaitClock())
    result = CliRunner().invoke(cli.command, [str(wf), "--max-runs", "1"])
    assert result.exit_code == 2, result.output
    assert result.output.startswith(f"error: {wf}: secret OPS_SECRET is declared in `secrets:`")
    assert not (tmp_path / ".plait").exists()  # no run started


def test_a_file_given_twice_is_scheduled_once(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """`plait schedule a.yaml ./a.yaml` started two runs of a.yaml at every fire."""
    wf = write(tmp_path, "digest.yaml", WORKFLOW)
    monkeypatch.chdir(tmp_path)
    entries = cli.load_entries((wf, Path("digest.yaml"), Path("./digest.yaml")))
    assert [(e.workflow, e.index) for e in entries] == [(wf, 0), (wf, 1)]
    result = CliRunner().invoke(cli.command, [str(wf), "./digest.yaml", "--next", "1"])
    assert result.exit_code == 0, result.output
    assert result.output.count("on.schedule[0]") == 1


def test_without_the_cron_extra_it_says_so_and_exits_2(tmp_path: Path) -> None:
    """croniter missing: one line naming the extra (exit 2), up front, for the daemon and
    for --next alike; it used to be a traceback at the first fire time."""
    import os
    import subprocess
    import sys

    write(tmp_path, "digest.yaml", WORKFLOW)
    code = ("import sys; sys.modules['croniter'] = None\n"  # the extra is not installed
            "from runners.cli.main import main\n"
            "sys.argv[0] = 'plait'\n"
            "main()\n")
    root = Path(__file__).resolve().parents[2]
    for args in (["schedule", "digest.yaml"], ["schedule", "digest.yaml", "--next", "1"]):
        out = subprocess.run([sys.executable, "-c", code, *args], cwd=tmp_path, timeout=60,
                             capture_output=True, text=True, check=False,
                             env={**os.environ, "PYTHONPATH": str(root)})
        assert (out.returncode, out.stdout) == (2, ""), out.stderr
        assert out.stderr == "error: croniter is not installed (hint: pip install " \
                             "'plait[cron]')\n"
