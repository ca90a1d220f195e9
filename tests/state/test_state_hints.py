"""Each SQLite failure of the run database gets a hint that fits it, provoked with a real file:
a file that is not a database, a damaged one and another program's database were all told to
fix directory permissions. (A full disk and an I/O error: test_state_store.py; a lock:
test_state_locking.py.)"""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import ConfigError, StateError
from engine.state import RunRecord, RunStore

ROOT = Path(__file__).resolve().parents[2]


def _run(run_id: str) -> RunRecord:
    return RunRecord(run_id=run_id, workflow_name="wf", workflow_path="wf.yaml",
                     spec_hash="h", inputs={}, status="failed", started_at=1.0,
                     meta={"note": "x" * 3000})


def _damaged_hint(path: Path) -> str:
    return (f"the file {path} is not a plait run database, or is damaged: move it aside (a "
            "run then starts a new one there; `sqlite3 FILE .recover` may save what a damaged "
            "one holds), or point --state or PLAIT_STATE_URL at another file")


@pytest.mark.parametrize("create", [True, False])
def test_a_file_that_is_not_a_database_is_told_to_be_moved_aside(
        tmp_path: Path, create: bool) -> None:
    junk = tmp_path / "runs.db"
    junk.write_bytes(b"these are my notes, not SQLite\n" * 200)
    with pytest.raises(ConfigError) as caught:
        RunStore.open(junk, create=create)
    assert caught.value.message == f"cannot use the run record database {junk}: file is not " \
                                   "a database"
    assert caught.value.hint == _damaged_hint(junk)
    assert "permissions" not in caught.value.hint
    assert junk.read_bytes().startswith(b"these are my notes")  # left as it was


def test_a_damaged_database_is_told_to_be_moved_aside_or_recovered(tmp_path: Path) -> None:
    db = tmp_path / "runs.db"
    with RunStore.open(db) as store:
        for i in range(20):
            store.create_run(_run(f"r{i}"))
    conn = sqlite3.connect(db)
    conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # everything into the main file
    conn.close()
    data = bytearray(db.read_bytes())
    assert len(data) > 3 * 4096
    data[4096:] = b"\xab" * (len(data) - 4096)  # every page but the header's: garbage
    db.write_bytes(bytes(data))
    with pytest.raises(ConfigError) as caught:
        RunStore.open(db)
    assert caught.value.message == (f"cannot use the run record database {db}: database disk "
                                    "image is malformed")
    assert caught.value.hint == _damaged_hint(db)


def test_another_programs_sqlite_database_is_refused_and_left_alone(tmp_path: Path) -> None:
    """It was written into: plait added its tables beside the program's own."""
    db = tmp_path / "app.db"
    conn = sqlite3.connect(db)
    conn.execute("CREATE TABLE users (id INTEGER PRIMARY KEY, name TEXT)")
    conn.execute("INSERT INTO users (name) VALUES ('ada')")
    conn.commit()
    conn.close()
    for create in (True, False):
        with pytest.raises(StateError) as caught:
            RunStore.open(db, create=create)
        assert caught.value.message == (f"{db} is an SQLite database of another program (it "
                                        "holds the tables users), not a plait run database")
        assert caught.value.hint and "PLAIT_STATE_URL" in caught.value.hint
    conn = sqlite3.connect(db)
    tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")]
    conn.close()
    assert tables == ["users"]


#: writes to a database whose file, then whose directory, is read-only; prints the errors
READ_ONLY = """\
import json, sys
from engine.errors import PlaitError
from engine.state import RunRecord, RunStore
out = []
for db in sys.argv[1:]:
    try:
        with RunStore.open(db) as store:
            store.create_run(RunRecord(run_id="new", workflow_name="wf", workflow_path="wf",
                                       spec_hash="h", inputs={}, status="running",
                                       started_at=1.0))
        out.append(None)
    except PlaitError as exc:
        out.append([type(exc).__name__, exc.message, exc.hint])
print(json.dumps(out))
"""


def test_a_read_only_database_file_or_directory_is_told_to_be_made_writable(
        tmp_path: Path) -> None:
    """As root, permissions stop nobody: the file and the directory are made read-only with
    read-only bind mounts in a mount namespace of their own (skipped where that is not
    allowed); as another user, with chmod."""
    ro_file, ro_dir = tmp_path / "a" / "runs.db", tmp_path / "b" / "runs.db"
    for db in (ro_file, ro_dir):
        db.parent.mkdir()
        with RunStore.open(db) as store:
            store.create_run(_run("old"))
    script = [sys.executable, "-c", READ_ONLY, str(ro_file), str(ro_dir)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    if os.geteuid() == 0:
        unshare = shutil.which("unshare")
        if unshare is None:
            pytest.skip("root ignores permissions, and there is no unshare for a read-only "
                        "mount")
        mounts = " && ".join(f"mount --bind {p} {p} && mount -o remount,bind,ro {p}"
                             for p in (ro_file, ro_dir.parent))
        cmd = [unshare, "-m", "sh", "-c", mounts + ' && exec "$@"', "sh", *script]
        probe = subprocess.run([unshare, "-m", "true"], capture_output=True, timeout=30,
                               check=False)
        if probe.returncode != 0:
            pytest.skip("root ignores permissions, and mount namespaces are not allowed here")
    else:
        ro_file.chmod(0o444)
        ro_dir.parent.chmod(0o555)
        cmd = script
    try:
        done = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env,
                              check=False)
    finally:
        ro_dir.parent.chmod(0o755)
    assert done.returncode == 0, done.stderr
    file_error, dir_error = json.loads(done.stdout)
    for error, db in ((file_error, ro_file), (dir_error, ro_dir)):
        assert error is not None, f"{db} was written"
        assert str(db) in error[1]
        assert error[2] == (f"make {db} and its directory writable for this user (check their "
                            "permissions, or a read-only mount), or point --state or "
                            "PLAIT_STATE_URL at a writable place (e.g. "
                            "sqlite:///var/lib/plait/runs.db)")
    assert "readonly" in file_error[1]
