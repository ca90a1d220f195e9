"""A run SIGKILLed mid-flight is resumable and no finished step runs twice; two runs share one
database safely; an unusable state location fails before anything runs."""

from __future__ import annotations

import json
import os
import resource
import shlex
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from engine.state import RunStore

WORKFLOW = """\
version: 1
name: crashy
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  first:
    run: "echo first >> ran.log"
  second:
    run: "if [ -f go ]; then echo second >> ran.log; else touch second-started; sleep 60; fi"
    needs: [first]
  third:
    run: "echo third >> ran.log"
    needs: [second]
outputs:
  log: ${{ steps.third.output.exit_code }}
"""


def plait(*args: str, cwd: Path, **kwargs: object) -> subprocess.Popen[str]:
    return subprocess.Popen([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            start_new_session=True, env={**os.environ, "PYTHONPATH": str(
                                Path(__file__).resolve().parents[2])}, **kwargs)  # type: ignore[call-overload]


def wait_for(path: Path, seconds: float = 20) -> None:
    deadline = time.monotonic() + seconds
    while not path.exists():
        if time.monotonic() > deadline:
            raise AssertionError(f"{path.name} never appeared")
        time.sleep(0.02)


def killed_mid_run(tmp_path: Path, workflow: str, started: str) -> None:
    """`plait run` of `workflow` (as wf.yaml), SIGKILLed once the file `started` appears."""
    (tmp_path / "wf.yaml").write_text(workflow)
    proc = plait("run", "wf.yaml", cwd=tmp_path)
    try:
        wait_for(tmp_path / started)
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate(timeout=10)


def test_sigkill_mid_run_then_resume_runs_nothing_twice(tmp_path: Path) -> None:
    killed_mid_run(tmp_path, WORKFLOW, "second-started")
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    run = store.list_runs()[0]
    before = {s.step_id: s for s in store.steps(run.run_id)}
    store.close()
    assert run.status == "running"  # it never got to say otherwise
    from engine.state.render import format_runs_table, shown_status

    assert shown_status(run) == "died"  # but its process is gone, and listings say so
    assert f"{run.run_id}  died" in format_runs_table([run])
    assert before["first"].status == "succeeded"
    assert "second" not in before or before["second"].status != "succeeded"

    (tmp_path / "go").touch()
    resumed = plait("resume", run.run_id, "--file", "wf.yaml", cwd=tmp_path)
    _out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert "first: restored" in err
    assert (tmp_path / "ran.log").read_text().split() == ["first", "second", "third"]
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    after = {s.step_id: s for s in store.steps(run.run_id)}
    record = store.get_run(run.run_id)
    store.close()
    assert record.status == "succeeded"
    assert after["first"].finished_at == before["first"].finished_at
    assert {s.status for s in after.values()} == {"succeeded"}


FOREACH = """\
version: 1
name: fan
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  each:
    foreach: ["a", "b", "c"]
    max_parallel: 1
    run: >-
      if [ ${{ item }} != b ] || [ -f go ]; then echo ${{ item }} >> ran.log;
      else touch b-started; sleep 60; fi
outputs:
  n: ${{ steps.each.output | length }}
"""


def test_sigkill_inside_a_foreach_then_resume_runs_no_finished_item_twice(
        tmp_path: Path) -> None:
    killed_mid_run(tmp_path, FOREACH, "b-started")
    assert (tmp_path / "ran.log").read_text().split() == ["a"]
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    run_id = store.list_runs()[0].run_id
    assert sorted(store.step_items(run_id)["each"]) == [0]  # `a` was durable at once
    store.close()
    shown = plait("runs", "show", run_id, cwd=tmp_path)
    text, _ = shown.communicate(timeout=60)
    assert "each: items   1 finished item recorded (a resume reuses them)" in text
    shown = plait("runs", "show", run_id, "--json", cwd=tmp_path)
    assert json.loads(shown.communicate(timeout=60)[0])["finished_items"] == {"each": [0]}

    (tmp_path / "go").touch()
    resumed = plait("resume", run_id, "--json", cwd=tmp_path)
    out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert (tmp_path / "ran.log").read_text().split() == ["a", "b", "c"]
    assert '"n": 3' in out


def test_resume_refuses_when_a_finished_step_changed(tmp_path: Path) -> None:
    path = tmp_path / "wf.yaml"
    path.write_text(WORKFLOW.replace("sleep 60", "exit 1"))
    proc = plait("run", "wf.yaml", cwd=tmp_path)
    proc.communicate(timeout=60)
    assert proc.returncode == 1
    store = RunStore.open(None, workflow_path=path)
    run_id = store.list_runs()[0].run_id
    store.close()
    path.write_text(WORKFLOW.replace("echo first", "echo changed"))
    resumed = plait("run", "wf.yaml", "--resume", run_id, cwd=tmp_path)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 2
    assert "the workflow changed for finished step(s) first" in err


def test_resume_finds_the_workflow_from_any_directory(tmp_path: Path) -> None:
    """New records keep the workflow's absolute path; an old record's relative path is still
    read relative to the current directory."""
    (tmp_path / "proj" / "sub").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    go = tmp_path / "go"
    (tmp_path / "proj" / "sub" / "wf.yaml").write_text(
        WORKFLOW.replace("sleep 60", "exit 1").replace("[ -f go ]", f"[ -f {go} ]"))
    proc = plait("run", "sub/wf.yaml", cwd=tmp_path / "proj")
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    db = tmp_path / "proj" / "sub" / ".plait" / "runs.db"
    store = RunStore.open(db)
    run = store.list_runs()[0]
    store.close()
    assert run.workflow_path == str((tmp_path / "proj" / "sub" / "wf.yaml").resolve())
    go.touch()
    resumed = plait("resume", run.run_id, "--state", str(db), cwd=tmp_path / "elsewhere")
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert not (tmp_path / "elsewhere" / ".plait").exists()

    go.unlink()
    proc = plait("run", "sub/wf.yaml", cwd=tmp_path / "proj")
    proc.communicate(timeout=60)
    with sqlite3.connect(db) as conn:  # as older plait recorded it: relative to the cwd
        old_id = conn.execute("SELECT run_id FROM runs WHERE status = 'failed'").fetchone()[0]
        conn.execute("UPDATE runs SET workflow_path = 'sub/wf.yaml' WHERE run_id = ?",
                     (old_id,))
    go.touch()
    resumed = plait("resume", old_id, "--state", str(db), cwd=tmp_path / "proj")
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err


def test_two_concurrent_runs_share_one_database(tmp_path: Path) -> None:
    body = "version: 1\nname: many\npolicies:\n  open: {level: low}\ndefaults:\n" \
           "  policy: open\nconcurrency: 50\nsteps:\n" + "".join(
               f"  s{i}:\n    run: 'true'\n" for i in range(60))
    (tmp_path / "wf.yaml").write_text(body)
    procs = [plait("run", "wf.yaml", cwd=tmp_path) for _ in range(2)]
    for proc in procs:
        _, err = proc.communicate(timeout=60)
        assert proc.returncode == 0, err
    db = tmp_path / ".plait" / "runs.db"
    with sqlite3.connect(db) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    store = RunStore.open(db)
    runs = store.list_runs()
    assert len(runs) == 2 and {r.status for r in runs} == {"succeeded"}
    assert all(len(store.steps(r.run_id)) == 60 for r in runs)
    store.close()


def test_unusable_state_location_fails_before_any_step(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where a directory should be")
    proc = plait("run", "wf.yaml", "--state", str(blocker / "runs.db"), cwd=tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 2
    assert "not-a-dir" in err
    assert not (tmp_path / "ran.log").exists()


def run_with_a_record_too_big(tmp_path: Path, *args: str) -> subprocess.Popen[str]:
    """`plait run` of a workflow whose second step's record crosses the file size limit the
    run is given (100 kB): its record write fails after a step ran."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: big\nproviders:\n  p: {kind: echo}\nsteps:\n"
        "  a: {llm: p, prompt: small}\n  b:\n    llm: p\n"
        "    prompt: \"${{ steps.a.output ~ ('x' * 200000) }}\"\n")

    def limit_file_size() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (100_000, 100_000))

    return plait("run", "wf.yaml", *args, cwd=tmp_path, preexec_fn=limit_file_size)


def test_a_record_write_failing_mid_run_exits_1_not_2(tmp_path: Path) -> None:
    """Exit 2 means nothing ran. A record write that fails after steps ran (here a file size
    limit that the big step's record crosses) is a failed run: exit 1, saying so."""
    proc = run_with_a_record_too_big(tmp_path)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 1, err
    assert "a: ok" in err and "Traceback" not in err
    assert "error: could not save 1 step record(s) in the run record database" in err
    assert "stopped after it had started (steps may have run)" in err


def stopped_cleanly(tmp_path: Path) -> Any:
    """The run of wf.yaml (WORKFLOW), stopped while its second step ran: its record says
    interrupted, the first step succeeded and the second was cancelled (resumable)."""
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    run = store.list_runs()[0]
    steps = {s.step_id: s.status for s in store.steps(run.run_id)}
    store.close()
    assert run.status == "interrupted"
    assert steps["first"] == "succeeded" and steps["second"] == "cancelled"
    return run


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupt_exits_130_and_leaves_a_resumable_record(tmp_path: Path, sig: int) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    proc = plait("run", "wf.yaml", cwd=tmp_path)
    wait_for(tmp_path / "second-started")
    os.kill(proc.pid, sig)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    assert "resume with: plait resume" in err
    stopped_cleanly(tmp_path)


def test_the_resume_hint_of_an_interrupted_run_works_as_printed(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    proc = plait("run", "wf.yaml", "--state", "records/runs.db", cwd=tmp_path)
    wait_for(tmp_path / "second-started")
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
    hint = err.strip().splitlines()[-1]
    assert hint.startswith("run ") and "interrupted; resume with: plait resume " in hint
    assert "inspect with" not in err  # one line to go on from, not two
    assert hint.endswith(f" --state {tmp_path.resolve() / 'records' / 'runs.db'}")
    (tmp_path / "go").touch()
    resumed = plait(*shlex.split(hint.split("resume with: plait ", 1)[1]), cwd=tmp_path)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert (tmp_path / "ran.log").read_text().split() == ["first", "second", "third"]
    assert not (tmp_path / ".plait").exists()


def test_closing_the_terminal_stops_the_run_cleanly_and_leaves_a_resumable_record(
        tmp_path: Path) -> None:
    """A real hang-up: `plait run` in a terminal of its own (a pty, its controlling terminal,
    with the live view drawing on it), and the terminal closed under it. The kernel sends
    SIGHUP and every later write to the terminal fails (EIO); the run still stops as Ctrl-C
    stops it: exit 130, its record `interrupted` and resumable."""
    import fcntl
    import pty
    import termios
    import threading

    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    master, slave = pty.openpty()

    def own_terminal() -> None:  # in the child, a session leader (start_new_session)
        fcntl.ioctl(0, termios.TIOCSCTTY, 0)

    proc = subprocess.Popen([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml"],
                            cwd=tmp_path, stdin=slave, stdout=slave, stderr=slave,
                            start_new_session=True, preexec_fn=own_terminal,
                            env={**os.environ, "TERM": "xterm", "PYTHONPATH": str(
                                Path(__file__).resolve().parents[2])})
    os.close(slave)
    drawn: list[bytes] = []

    def drain() -> None:  # the terminal's reader, so the live view never blocks on it
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            drawn.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        wait_for(tmp_path / "second-started")
        time.sleep(0.3)  # the live view has drawn the running step
    finally:
        os.close(master)  # the terminal goes away: SIGHUP to the run
    try:
        assert proc.wait(timeout=30) == 130, b"".join(drawn).decode(errors="replace")
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    reader.join(timeout=5)
    assert b"second" in b"".join(drawn)  # it did draw on the terminal before
    run = stopped_cleanly(tmp_path)
    (tmp_path / "go").touch()
    resumed = plait("resume", run.run_id, cwd=tmp_path)
    _, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert (tmp_path / "ran.log").read_text().split() == ["first", "second", "third"]


def test_a_hang_up_the_run_was_told_to_ignore_stays_ignored(tmp_path: Path) -> None:
    """`nohup plait run ...`: SIGHUP ignored when plait starts is not taken over as a stop."""
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    proc = plait("run", "wf.yaml", cwd=tmp_path,
                 preexec_fn=lambda: signal.signal(signal.SIGHUP, signal.SIG_IGN))
    wait_for(tmp_path / "second-started")
    os.kill(proc.pid, signal.SIGHUP)
    time.sleep(0.5)
    assert proc.poll() is None  # still running
    os.kill(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=30)
    assert proc.returncode == 130, err
