"""Another process holds the run database's write lock (a second sqlite3 connection in a
subprocess, in BEGIN IMMEDIATE until told to stop). `plait run` waited up to 30 s without a
word; now it says that it waits after a second, and a wait that times out is a StateError
that names the database and what to do. PLAIT_STATE_LOCK_TIMEOUT shortens the wait here."""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from engine.errors import ConfigError, StateError
from engine.state import RunRecord, RunStore

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
