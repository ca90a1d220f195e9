from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from engine.errors import StateError
from engine.spec.models import WorkflowSpec
from engine.state import RunRecord, RunStore, StepRecord
from engine.state.resume import fingerprint, owner_alive, owner_meta, plan_resume


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    s = RunStore.open(tmp_path / "runs.db")
    yield s  # type: ignore[misc]
    s.close()


def add_run(store: RunStore, status: str = "failed", **meta: object) -> str:
    store.create_run(RunRecord("run0000000000001", "digest", "flows/digest.yaml",
                               "sha256:old", {}, status, 1.0, meta=dict(meta)))  # type: ignore[arg-type]
    store.save_steps([
        StepRecord("run0000000000001", "read", "succeeded", fingerprint="fa", output=[1]),
        StepRecord("run0000000000001", "sum", "succeeded", fingerprint="fb", output=2),
        StepRecord("run0000000000001", "flag", "failed", fingerprint="fc"),
        StepRecord("run0000000000001", "notify", "queued", fingerprint="fd"),
        StepRecord("run0000000000001", "gone", "succeeded", fingerprint="fe"),
    ])
    return "run0000000000001"


def test_finished_steps_are_reused_the_rest_reruns(store: RunStore) -> None:
    run_id = add_run(store)
    plan = plan_resume(store, run_id[:6], spec_hash="sha256:old", workflow_name="digest",
                       fingerprints={"read": "fa", "sum": "fb", "flag": "fc2",
                                     "notify": "fd", "new": "fn"})
    assert plan.previous.run_id == run_id
    assert {k: v.output for k, v in plan.reuse.items()} == {"read": [1], "sum": 2}
    assert plan.rerun == ("flag", "notify", "new")  # a failed step may change and rerun
    assert plan.spec_changed is False
    assert plan_resume(store, run_id, spec_hash="sha256:new",
                       fingerprints={"read": "fa"}).spec_changed is True


def test_a_changed_finished_step_refuses(store: RunStore) -> None:
    run_id = add_run(store)
    with pytest.raises(StateError, match=r"step\(s\) read, sum that had finished") as err:
        plan_resume(store, run_id, spec_hash="sha256:new",
                    fingerprints={"read": "XX", "sum": "YY", "flag": "fc"})
    assert err.value.hint and "plait run flows/digest.yaml" in err.value.hint
    assert "sha256:old" in err.value.hint


def test_succeeded_run_and_other_workflow_refuse(store: RunStore) -> None:
    run_id = add_run(store, status="succeeded")
    with pytest.raises(StateError, match="already succeeded"):
        plan_resume(store, run_id, spec_hash="sha256:old", fingerprints={})
    with pytest.raises(StateError, match="not 'other'"):
        plan_resume(store, run_id, spec_hash="sha256:old", fingerprints={},
                    workflow_name="other")


def test_a_run_whose_owner_is_alive_refuses(store: RunStore) -> None:
    run_id = add_run(store, status="running", owner=owner_meta())
    with pytest.raises(StateError, match="still running") as err:
        plan_resume(store, run_id, spec_hash="sha256:old", fingerprints={})
    assert err.value.hint and "killed run can be resumed" in err.value.hint


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


def test_fingerprint_is_stable_and_sensitive() -> None:
    spec = WorkflowSpec.model_validate({"version": 1, "name": "w",
                                        "steps": {"a": {"run": "echo hi"}}})
    step = spec.steps["a"]
    assert fingerprint(step) == fingerprint(step)
    assert fingerprint({"b": 1, "a": 2}) == fingerprint({"a": 2, "b": 1})
    other = WorkflowSpec.model_validate({"version": 1, "name": "w",
                                         "steps": {"a": {"run": "echo bye"}}}).steps["a"]
    assert fingerprint(step) != fingerprint(other)
    assert fingerprint(step, {"model": "x"}) != fingerprint(step, {"model": "y"})
    assert fingerprint(step).startswith("sha256:")
