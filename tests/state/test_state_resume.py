"""Run ownership: a run whose process still lives is not resumed by another."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from engine.state.resume import owner_alive, owner_meta


def test_owner_liveness() -> None:
    assert owner_alive({"owner": owner_meta()})
    assert not owner_alive({})
    assert not owner_alive({"owner": {**owner_meta(), "host": "another-host"}})
    child = subprocess.run(
        [sys.executable, "-c",
         "import json; from engine.state.resume import owner_meta; "
         "print(json.dumps(owner_meta()))"],
        capture_output=True, text=True, check=True, timeout=30,
        env={"PYTHONPATH": str(Path(__file__).resolve().parents[2])})
    dead = json.loads(child.stdout)
    assert not owner_alive({"owner": dead})  # the child has exited
    # a live pid with another start time is a reused pid, not the owner
    assert not owner_alive({"owner": {**owner_meta(), "pid_start": "1"}})


def test_owner_is_worked_out_again_in_a_forked_child() -> None:
    """The start time is read once per process: a child forked after the first call still
    records its own."""
    import os

    parent = owner_meta()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report what it would record, then leave at once
        os.close(read)
        os.write(write, json.dumps(owner_meta()).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read) as pipe:
        child = json.loads(pipe.read())
    os.waitpid(pid, 0)
    assert child["pid"] == pid and parent["pid"] == os.getpid()
    assert child["host"] == parent["host"]
    assert child["pid_start"] != parent["pid_start"]  # the child started later: its own
    assert owner_alive({"owner": parent}) and owner_meta() == parent
