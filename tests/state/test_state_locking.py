"""Another process holds the run database's write lock (a second sqlite3 connection in a
subprocess, in BEGIN IMMEDIATE until told to stop). `plait run` waited up to 30 s without a
word; now it says that it waits after a second, and a wait that times out is a StateError
that names the database and what to do. PLAIT_STATE_LOCK_TIMEOUT shortens the wait here."""

from __future__ import annotations

import json
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from engine.errors import ConfigError, StateError
from engine.state import RunRecord, RunStore, _locking

ROOT = Path(__file__).resolve().parents[2]

#: holds the write lock of argv[1] until the file argv[2] exists (at most 20 s)
HOLD = """\
import os, sqlite3, sys, time
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
deadline = time.monotonic() + 20
while not os.path.exists(sys.argv[2]) and time.monotonic() < deadline:
    time.sleep(0.02)
conn.execute("COMMIT")
"""

WF = """\
version: 1
name: locked
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  a: {run: "touch ran"}
"""


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k != "PLAIT_STATE_LOCK_TIMEOUT"}
    return {**env, "PYTHONPATH": str(ROOT), **extra}


@pytest.fixture
def db(tmp_path: Path) -> Path:
    path = tmp_path / "runs.db"
    RunStore.open(path).close()  # a database in WAL mode, as a run leaves it
    return path


@pytest.fixture
def holder(db: Path, tmp_path: Path) -> Iterator[Path]:
    """The lock is held until the yielded file is created (or the test ends)."""
    release = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(release)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        yield release
    finally:
        release.touch()
        proc.communicate(timeout=30)


def _run(tmp_path: Path, db: Path, **env: str) -> subprocess.Popen[str]:
    (tmp_path / "wf.yaml").write_text(WF)
    return subprocess.Popen([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml",
                             "--state", str(db), "--json"], cwd=tmp_path, text=True,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, env=_env(**env))


def test_a_run_says_that_it_waits_for_a_locked_database_then_goes_on(
        tmp_path: Path, db: Path, holder: Path) -> None:
    run = _run(tmp_path, db)
    assert run.stderr is not None
    first = run.stderr.readline()  # before the run starts: nothing else is printed yet
    assert first.startswith(f"waiting for the run record database {db}, locked by another "
                            "process (up to ")
    assert "PLAIT_STATE_LOCK_TIMEOUT sets the limit" in first
    assert not (tmp_path / "ran").exists()
    holder.touch()
    out, err = run.communicate(timeout=30)
    assert run.returncode == 0, first + err
    assert json.loads(out)["status"] == "succeeded"
    assert (tmp_path / "ran").exists()


def test_a_run_that_waits_out_the_lock_timeout_fails_naming_the_database_and_the_fix(
        tmp_path: Path, db: Path, holder: Path) -> None:
    run = _run(tmp_path, db, PLAIT_STATE_LOCK_TIMEOUT="1.2")
    _, err = run.communicate(timeout=30)
    assert run.returncode == 2, err  # refused before anything ran
    assert not (tmp_path / "ran").exists()
    lines = err.strip().splitlines()
    assert lines[0].startswith("waiting for the run record database")
    assert lines[-1] == (
        f"error: the run record database {db} stayed locked by another process for 1.2 s; "
        "plait could not open it (hint: another plait process (a run, a resume, `plait "
        "runs`), or another program, is writing it; wait for it to finish and retry, or set "
        "PLAIT_STATE_URL to use another database (PLAIT_STATE_LOCK_TIMEOUT sets how long to "
        "wait))")


def test_a_reader_reads_a_locked_database_without_waiting_for_the_lock(
        db: Path, holder: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    """`plait runs list`/`show` read what is committed (WAL) instead of waiting 30 s."""
    monkeypatch.setenv("PLAIT_STATE_LOCK_TIMEOUT", "600")  # a wait would end the test
    with caplog.at_level(logging.WARNING, logger="plait.state"), \
            RunStore.open(db, create=False) as reader:
        assert reader.list_runs() == []
    assert caplog.records == []


def test_a_write_mid_run_waits_for_the_lock_then_fails_with_a_state_error(
        db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    monkeypatch.setenv("PLAIT_STATE_LOCK_TIMEOUT", "1.2")
    store = RunStore.open(db)  # opened while nobody held the lock
    release = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(release)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        started = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="plait.state"), \
                pytest.raises(StateError) as caught:
            store.create_run(RunRecord(run_id="r1", workflow_name="wf", workflow_path="wf",
                                       spec_hash="h", inputs={}, status="running",
                                       started_at=1.0))
        waited = time.monotonic() - started
    finally:
        release.touch()
        proc.communicate(timeout=30)
    assert caught.value.message == (f"the run record database {db} stayed locked by another "
                                    "process for 1.2 s; plait could not record run r1")
    assert caught.value.hint and "PLAIT_STATE_URL" in caught.value.hint
    assert len(caplog.records) == 1 and "waiting for" in caplog.records[0].getMessage()
    assert waited >= 1.2  # it did wait (a floor, not a speed)
    store.create_run(RunRecord(run_id="r1", workflow_name="wf", workflow_path="wf",
                               spec_hash="h", inputs={}, status="running", started_at=1.0))
    assert [r.run_id for r in store.list_runs()] == ["r1"]  # the lock gone, it works again
    store.close()


@pytest.mark.parametrize("value", ["soon", "0", "-1", "nan", "inf"])
def test_a_lock_timeout_that_is_not_seconds_is_a_config_error(
        db: Path, monkeypatch: pytest.MonkeyPatch, value: str) -> None:
    monkeypatch.setenv("PLAIT_STATE_LOCK_TIMEOUT", value)
    with pytest.raises(ConfigError, match="PLAIT_STATE_LOCK_TIMEOUT") as caught:
        RunStore.open(db)
    assert caught.value.hint and "e.g. 30" in caught.value.hint


# --------------------------------------------------------------------------- Ctrl-C in a wait
# SQLite waits for the lock inside a C call: Python runs no signal handler there, and the
# CLI's event loop (which handles Ctrl-C) is blocked by it. A wait stopped only when it ended
# (30 s). Now it stops between its slices of WAIT_SLICE_S.

#: step a runs until the file `go` exists (at most ~20 s), so that the test can take the lock
#: while it runs; its record is then written while the lock is held
WF_MID_RUN = """\
version: 1
name: locked
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  a: {run: "touch started; for i in $(seq 1000); do [ -f go ] && break; sleep 0.02; done"}
  b: {run: "touch ran-b", needs: [a]}
"""

#: a bound that tells a stopped wait from one that ran to its end (PLAIT_STATE_LOCK_TIMEOUT
#: is 20 s in these tests), not a speed
STOPPED_BY = 10.0


def _await_file(path: Path) -> None:
    deadline = time.monotonic() + 20
    while not path.exists():
        assert time.monotonic() < deadline, f"{path} never appeared"
        time.sleep(0.01)


@contextmanager
def _mid_run_with_the_lock_held(tmp_path: Path, db: Path) -> Iterator[subprocess.Popen[str]]:
    """`plait run --json` of WF_MID_RUN, its step a running (until `go` is created), while
    another process holds the database's lock (until the block ends; a run still going then is
    killed)."""
    (tmp_path / "wf.yaml").write_text(WF_MID_RUN)
    run = subprocess.Popen([sys.executable, "-m", "runners.cli.main", "run", "wf.yaml",
                            "--state", str(db), "--json"], cwd=tmp_path, text=True,
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                           env=_env(PLAIT_STATE_LOCK_TIMEOUT="20"))
    release = tmp_path / "release"
    _await_file(tmp_path / "started")  # step a runs: its run record exists
    hold = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(release)],
                            stdout=subprocess.PIPE, text=True)
    try:
        assert hold.stdout is not None and hold.stdout.readline().strip() == "locked"
        yield run
    finally:
        release.touch()
        hold.communicate(timeout=30)
        if run.poll() is None:
            run.kill()
            run.communicate(timeout=30)


def _resumes_and_succeeds(tmp_path: Path, db: Path, run_id: str) -> None:
    """`plait resume` of the interrupted WF_MID_RUN run succeeds and runs step b."""
    resumed = subprocess.run([sys.executable, "-m", "runners.cli.main", "resume", run_id,
                              "--state", str(db), "--json"], cwd=tmp_path, text=True,
                             capture_output=True, env=_env(), timeout=60)
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads(resumed.stdout)["status"] == "succeeded"
    assert (tmp_path / "ran-b").exists()


def _interrupt_when_waiting(run: subprocess.Popen[str], sig: int = signal.SIGINT,
                            ) -> tuple[str, str, float]:
    """Send `sig` once `run` says that it waits for the lock: (stdout, stderr, seconds from
    the signal to the end)."""
    assert run.stderr is not None
    seen = []
    for _ in range(50):
        line = run.stderr.readline()
        seen.append(line)
        if not line or line.startswith("waiting for the run record database"):
            break
    assert seen[-1].startswith("waiting for"), "".join(seen)
    sent = time.monotonic()
    run.send_signal(sig)
    out, err = run.communicate(timeout=30)
    return out, "".join(seen) + err, time.monotonic() - sent


def test_ctrl_c_while_a_run_waits_to_create_its_record_stops_it_unrecorded(
        tmp_path: Path, db: Path, holder: Path) -> None:
    run = _run(tmp_path, db, PLAIT_STATE_LOCK_TIMEOUT="20")
    out, err, took = _interrupt_when_waiting(run)
    assert run.returncode == 130, err  # interrupted, as any Ctrl-C (docs/running.md)
    assert took < STOPPED_BY, err
    assert out == ""  # no run, no result
    assert err.strip().splitlines()[-1] == (
        f"interrupted while waiting for the run record database {db}, locked by another "
        "process; plait did not open it: nothing ran and nothing was recorded")
    assert not (tmp_path / "ran").exists()
    holder.touch()
    with RunStore.open(db, create=False) as store:
        assert store.list_runs() == []


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP],
                         ids=["SIGINT", "SIGTERM", "SIGHUP"])
def test_ctrl_c_while_a_run_waits_to_write_step_records_ends_it_interrupted_and_resumable(
        tmp_path: Path, db: Path, sig: int) -> None:
    with _mid_run_with_the_lock_held(tmp_path, db) as run:
        (tmp_path / "go").touch()  # step a ends; its record waits for the lock
        out, err, took = _interrupt_when_waiting(run, sig)
        assert run.returncode == 130, err
        assert took < STOPPED_BY, err
        result = json.loads(out)
        assert result["status"] == "interrupted"
        assert result["steps"]["b"]["status"] == "cancelled"
        assert not (tmp_path / "ran-b").exists()
        run_id = result["run_id"]
        assert (f"run {run_id}: interrupted while waiting for the run record database {db}, "
                "locked by another process; its record is left unfinished and can be "
                "resumed once the lock is free") in err
        assert f"interrupted; resume with: plait resume {run_id}" in err
    with RunStore.open(db, create=False) as store:
        assert store.get_run(run_id).status == "running"  # shown `died`: its process is gone
        assert store.steps(run_id) == []  # the batch that waited was not half written
    _resumes_and_succeeds(tmp_path, db, run_id)


def test_a_store_write_stopped_by_ctrl_c_raises_and_later_writes_do_not_wait(
        db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The library: a StateError (reason "interrupted") instead of KeyboardInterrupt, no lock
    held; the process is stopping, so closing the run's record fails at once if it must wait."""
    monkeypatch.setenv("PLAIT_STATE_LOCK_TIMEOUT", "20")
    store = RunStore.open(db)
    release = tmp_path / "release"
    proc = subprocess.Popen([sys.executable, "-c", HOLD, str(db), str(release)],
                            stdout=subprocess.PIPE, text=True)
    record = RunRecord(run_id="r1", workflow_name="wf", workflow_path="wf", spec_hash="h",
                       inputs={}, status="running", started_at=1.0)
    try:
        assert proc.stdout is not None and proc.stdout.readline().strip() == "locked"
        timer = threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGINT))
        started = time.monotonic()
        timer.start()
        with pytest.raises(StateError) as caught:
            store.create_run(record)
        assert time.monotonic() - started < STOPPED_BY
        assert caught.value.context["reason"] == "interrupted"
        assert caught.value.message == (
            f"interrupted while waiting for the run record database {db}, locked by another "
            "process; plait did not record run r1")
        assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # restored
        started = time.monotonic()
        with pytest.raises(StateError, match="stayed locked"):
            store.create_run(record)
        assert time.monotonic() - started < 1.0  # it did not wait a slice (0.25 s) even
    finally:
        release.touch()
        proc.communicate(timeout=30)
    store.create_run(record)  # the lock free, it writes
    assert [r.run_id for r in store.list_runs()] == ["r1"]
    store.close()


def test_a_signal_in_the_slice_that_took_the_lock_goes_to_its_own_handler() -> None:
    """Not lost: Ctrl-C just as the lock is taken is a KeyboardInterrupt (or the CLI's
    handling of it) right after."""
    with pytest.raises(KeyboardInterrupt), _locking.stoppable() as caught:
        signal.raise_signal(signal.SIGINT)
        assert caught == [signal.SIGINT]  # noted, not raised
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def _await_lock_wait(pid: int) -> None:
    """Until the main thread of `pid` sleeps in SQLite's busy handler (a nanosleep: the event
    loop between steps sits in epoll_wait instead), i.e. a write has begun to wait."""
    deadline = time.monotonic() + 20
    while Path(f"/proc/{pid}/wchan").read_text() != "hrtimer_nanosleep":
        assert time.monotonic() < deadline, "the run never waited for the lock"
        time.sleep(0.002)


@pytest.mark.skipif(not Path("/proc/self/wchan").exists(), reason="needs Linux /proc")
def test_ctrl_c_in_the_first_slice_of_a_wait_mid_run_stops_it_at_once(
        tmp_path: Path, db: Path) -> None:
    """A Ctrl-C before the write knew that it waited (its first slice) went to the event
    loop, blocked by the wait: it stopped nothing until the wait ended (20 s here) or a second
    Ctrl-C came. One is enough now."""
    with _mid_run_with_the_lock_held(tmp_path, db) as run:
        (tmp_path / "go").touch()  # step a ends; its record waits for the lock
        _await_lock_wait(run.pid)
        sent = time.monotonic()
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=30)
        took = time.monotonic() - sent
        assert run.returncode == 130, err
        assert took < STOPPED_BY, err
        # stopped before the wait said that it waits (after 1 s): it was early in the wait
        assert not [line for line in err.splitlines() if line.startswith("waiting for")], err
        result = json.loads(out)
        assert result["status"] == "interrupted"
        assert result["steps"]["b"]["status"] == "cancelled"
        run_id = result["run_id"]
        assert f"interrupted; resume with: plait resume {run_id}" in err
    assert not (tmp_path / "ran-b").exists()
    _resumes_and_succeeds(tmp_path, db, run_id)


def test_ctrl_c_before_a_wait_does_not_leave_the_run_waiting_to_close_its_record(
        tmp_path: Path, db: Path) -> None:
    """Ctrl-C while a step runs and another process holds the lock: the run stops, and the
    writes that close its record (its cancelled steps, its end) waited for the lock as any
    write does, PLAIT_STATE_LOCK_TIMEOUT each, unless a second Ctrl-C came. They wait a
    second at most now, then leave the record resumable, as an interrupted wait does."""
    with _mid_run_with_the_lock_held(tmp_path, db) as run:
        sent = time.monotonic()
        run.send_signal(signal.SIGINT)
        out, err = run.communicate(timeout=30)
        took = time.monotonic() - sent
        assert run.returncode == 130, err
        assert took < STOPPED_BY, err
        assert not [line for line in err.splitlines() if line.startswith("waiting for")], err
        result = json.loads(out)
        assert result["status"] == "interrupted"
        assert result["steps"]["a"]["status"] == "cancelled"
        run_id = result["run_id"]
        assert (f"run {run_id}: interrupted while waiting for the run record database {db}, "
                "locked by another process; its record is left unfinished and can be "
                "resumed once the lock is free") in err
    with RunStore.open(db, create=False) as store:
        assert store.get_run(run_id).status == "running"  # shown `died`: its process is gone
    (tmp_path / "go").touch()
    _resumes_and_succeeds(tmp_path, db, run_id)


@pytest.mark.parametrize("backend", ["asyncio", "trio"])
def test_a_signal_noted_during_a_write_reaches_an_event_loops_handler_once(
        backend: str) -> None:
    """An event loop's signal handler (anyio.open_signal_receiver: asyncio's
    add_signal_handler, trio's own) gets a Ctrl-C that came during a write exactly once.
    asyncio learns of it from the wakeup fd even while the write's handler is in place, so
    handing it back as well delivered it twice (a "second Ctrl-C" to a loop that counts);
    trio learns of it only from its handler, so it must be handed back."""
    import anyio

    async def main() -> list[int]:
        seen: list[int] = []
        with anyio.open_signal_receiver(signal.SIGINT) as signals:
            async def count() -> None:
                async for signum in signals:
                    seen.append(signum)

            async with anyio.create_task_group() as tg:
                tg.start_soon(count)
                await anyio.sleep(0.05)
                with _locking.stoppable() as caught:
                    signal.raise_signal(signal.SIGINT)
                    assert caught == [signal.SIGINT]  # noted, not handled yet
                with anyio.fail_after(5):
                    while not seen:
                        await anyio.sleep(0.01)
                await anyio.sleep(0.3)  # time for a second delivery to show
                tg.cancel_scope.cancel()
        return seen

    previous = signal.getsignal(signal.SIGINT)
    assert anyio.run(main, backend=backend) == [signal.SIGINT]
    assert signal.getsignal(signal.SIGINT) is previous
