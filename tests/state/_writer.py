"""Subprocess writer for the multi-process tests (run as a script, not collected by pytest).

    _writer.py concurrent DB RUN_ID COUNT GO_FILE   write COUNT steps, one commit each
    _writer.py kill DB RUN_ID                       commit steps forever, print each id
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from pathlib import Path

from engine.state import RunRecord, RunStore, StepRecord
from engine.state.resume import owner_meta


def _run(store: RunStore, run_id: str) -> None:
    store.create_run(RunRecord(run_id=run_id, workflow_name="wf", workflow_path="wf.yaml",
                               spec_hash="sha256:0", inputs={}, status="running",
                               started_at=time.time(), meta={"owner": owner_meta()}))


def _step(run_id: str, i: int) -> StepRecord:
    return StepRecord(run_id=run_id, step_id=f"s{i:05d}", status="succeeded", attempts=1,
                      fingerprint="f", rendered_input={"i": i}, output={"text": "x" * 200},
                      started_at=time.time(), finished_at=time.time())


def _wait_until(done: Callable[[], bool]) -> None:
    deadline = time.monotonic() + 20
    while not done():
        if time.monotonic() > deadline:
            raise SystemExit("timed out waiting for the other writer")
        time.sleep(0.0002)


def concurrent(db: str, run_id: str, count: int, go_file: str) -> None:
    go = Path(go_file)
    _wait_until(go.exists)  # open together: both may create the schema at once
    with RunStore.open(db) as store:
        _run(store, run_id)
        (go.parent / f"ready-{run_id}").touch()
        _wait_until(lambda: len(list(go.parent.glob("ready-*"))) >= 2)  # write together
        for i in range(count):
            store.save_steps([_step(run_id, i)])
    print("done", flush=True)


def kill(db: str, run_id: str) -> None:
    with RunStore.open(db) as store:
        _run(store, run_id)
        for i in range(1_000_000):
            store.save_steps([_step(run_id, i)])
            print(f"s{i:05d}", flush=True)


if __name__ == "__main__":
    if sys.argv[1] == "concurrent":
        concurrent(sys.argv[2], sys.argv[3], int(sys.argv[4]), sys.argv[5])
    else:
        kill(sys.argv[2], sys.argv[3])
