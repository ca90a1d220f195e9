"""Several processes on one database, and a writer SIGKILLed mid-stream."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from engine.state import RunStore
from engine.state.resume import owner_alive

WRITER = Path(__file__).with_name("_writer.py")
ROOT = Path(__file__).resolve().parents[2]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
    return env


def _integrity(db: Path) -> str:
    conn = sqlite3.connect(db)
    try:
        return str(conn.execute("PRAGMA integrity_check").fetchone()[0])
    finally:
        conn.close()


def test_two_processes_write_one_database_concurrently(tmp_path: Path) -> None:
    db, go = tmp_path / "shared" / "runs.db", tmp_path / "go"
    procs = [subprocess.Popen(
        [sys.executable, str(WRITER), "concurrent", str(db), run_id, "500", str(go)],
        env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for run_id in ("writer0aaaaaaaa", "writer1bbbbbbbb")]
    time.sleep(0.3)  # let both interpreters start, then release them together
    go.touch()
    for proc in procs:
        out, err = proc.communicate(timeout=50)
        assert proc.returncode == 0, err
        assert out.strip() == "done"
    assert _integrity(db) == "ok"
    spans = []
    with RunStore.open(db) as store:
        for run_id in ("writer0aaaaaaaa", "writer1bbbbbbbb"):
            steps = store.steps(run_id)
            assert [s.step_id for s in steps] == [f"s{i:05d}" for i in range(500)]
            assert all(s.rendered_input == {"i": i} for i, s in enumerate(steps))
            spans.append((steps[0].started_at, steps[-1].started_at))
        assert len(store.list_runs()) == 2
    (a0, a1), (b0, b1) = spans
    assert a0 < b1 and b0 < a1, "the writers did not overlap, so the test proved nothing"


@pytest.mark.parametrize("kill_after", [1, 37, 150])
def test_sigkilled_writer_loses_no_committed_step(tmp_path: Path, kill_after: int) -> None:
    db = tmp_path / "runs.db"
    run_id = "killed000000000"
    proc = subprocess.Popen([sys.executable, str(WRITER), "kill", str(db), run_id],
                            env=_env(), stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True)
    assert proc.stdout is not None
    committed: list[str] = []
    deadline = time.monotonic() + 30
    while len(committed) < kill_after and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        committed.append(line.strip())
    proc.send_signal(signal.SIGKILL)  # mid-stream: the next commit is in flight
    # read the rest through the same buffered reader (communicate() would skip its buffer)
    committed += proc.stdout.read().split()  # ids printed (so committed) before the kill
    assert proc.stderr is not None
    err = proc.stderr.read()
    proc.wait(timeout=10)
    proc.stdout.close()
    proc.stderr.close()
    assert proc.returncode == -signal.SIGKILL, err
    assert len(committed) >= kill_after, err
    assert _integrity(db) == "ok"
    with RunStore.open(db) as store:
        stored = {s.step_id for s in store.steps(run_id)}
        assert store.get_run(run_id).status == "running"  # resumable: never finished
    assert set(committed) <= stored
    assert len(stored) - len(committed) <= 1  # at most the commit the kill interrupted
    # the killed run is resumable: its owner is dead
    with RunStore.open(db) as store:
        assert not owner_alive(store.get_run(run_id).meta)
