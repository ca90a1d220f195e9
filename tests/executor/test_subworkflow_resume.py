"""A resume of a parent run resumes the sub-workflow run it left unfinished: the child's
finished steps do not run again. Steps are real commands (policy level low); ran.log says
what really ran."""

from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load
from engine.state import RunStore
from tests.executor.test_crash_resume import killed_mid_run, plait

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


#: `late` fails (or, under the CLI kill test, sleeps) until the file `go` exists
CHILD = """\
version: 1
name: child
inputs:
  who: {{type: string}}
policies:
  open: {{level: low}}
defaults:
  policy: open
steps:
  early:
    run: "echo ${{{{ inputs.who }}}}:early >> ran.log"
  late:
    run: "if [ -f go ]; then echo ${{{{ inputs.who }}}}:late >> ran.log; else {wait}; fi"
    needs: [early]
outputs:
  said: ${{{{ inputs.who }}}}
"""

PARENT = """\
version: 1
name: parent
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  pre:
    run: "echo pre >> ran.log"
  sub:
    workflow: child.yaml
    with: {who: one}
    needs: [pre]
  post:
    run: "echo post >> ran.log"
    needs: [sub]
outputs:
  said: ${{ steps.sub.output.said }}
"""

FOREACH_PARENT = """\
version: 1
name: parent
steps:
  subs:
    foreach: [a, b]
    max_parallel: 1
    workflow: child.yaml
    with: {who: "${{ item }}"}
outputs:
  said: ${{ steps.subs.output | map(attribute='said') | list }}
"""


def _files(tmp_path: Path, parent: str = PARENT, wait: str = "exit 1") -> Path:
    (tmp_path / "child.yaml").write_text(CHILD.format(wait=wait))
    path = tmp_path / "parent.yaml"
    path.write_text(parent)
    return path


def _ran(tmp_path: Path) -> list[str]:
    return (tmp_path / "ran.log").read_text().split()


async def _run(path: Path, store: RunStore, **options: Any) -> Any:
    return await run_workflow(load(path), {}, store=store, **options)


@pytest.fixture
def store(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.chdir(tmp_path)  # the commands write ran.log and look for `go` here
    opened = RunStore.open(tmp_path / "runs.db")
    yield opened
    opened.close()


def _child_runs(store: RunStore, run_id: str) -> list[Any]:
    return store.child_runs(run_id)


async def test_a_failed_child_is_resumed_not_rerun(tmp_path: Path, store: RunStore) -> None:
    path = _files(tmp_path)
    failed = await _run(path, store)
    assert failed.status == "failed"
    assert _ran(tmp_path) == ["pre", "one:early"]
    [child] = _child_runs(store, failed.run_id)
    assert child.status == "failed" and child.meta["parent_step"] == ["sub", None]

    (tmp_path / "go").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"said": "one"}
    # neither the parent's finished step nor the child's ran again
    assert _ran(tmp_path) == ["pre", "one:early", "one:late", "post"]
    [again] = _child_runs(store, failed.run_id)  # the same child run, resumed
    assert again.run_id == child.run_id and again.status == "succeeded"
    notes = resumed.steps["sub"].notes
    assert {"event": "subworkflow_resumed", "run": child.run_id} in notes
    early = {s.step_id: s for s in store.steps(child.run_id)}["early"]
    assert early.status == "succeeded" and early.attempts == 1


async def test_each_foreach_item_resumes_its_own_child(tmp_path: Path,
                                                      store: RunStore) -> None:
    path = _files(tmp_path, FOREACH_PARENT)
    failed = await _run(path, store)
    assert failed.status == "failed"
    assert _ran(tmp_path) == ["a:early"]  # item a's child failed: b never started
    (tmp_path / "go").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"said": ["a", "b"]}
    assert _ran(tmp_path) == ["a:early", "a:late", "b:early", "b:late"]
    children = {tuple(c.meta["parent_step"]): c for c in _child_runs(store, failed.run_id)}
    assert set(children) == {("subs", 0), ("subs", 1)}
    assert {c.status for c in children.values()} == {"succeeded"}


async def test_a_child_changed_under_its_finished_steps_runs_afresh(
        tmp_path: Path, store: RunStore, caplog: pytest.LogCaptureFixture) -> None:
    path = _files(tmp_path)
    failed = await _run(path, store)
    [child] = _child_runs(store, failed.run_id)
    text = (tmp_path / "child.yaml").read_text()
    (tmp_path / "child.yaml").write_text(text.replace(":early >>", ":EARLY >>"))
    (tmp_path / "go").touch()
    with caplog.at_level(logging.WARNING, logger="plait.executor"):
        resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert _ran(tmp_path) == ["pre", "one:early", "one:EARLY", "one:late", "post"]
    [note] = [n for n in resumed.steps["sub"].notes if n["event"] == "subworkflow_rerun"]
    assert note["run"] == child.run_id and "changed" in note["reason"]
    assert f"run {child.run_id} cannot be resumed" in caplog.text
    runs = _child_runs(store, failed.run_id)
    assert [r.status for r in runs] == ["failed", "succeeded"]  # the old one is kept


async def test_a_retry_of_a_resumed_child_starts_it_afresh(tmp_path: Path,
                                                          store: RunStore) -> None:
    path = _files(tmp_path)
    failed = await _run(path, store)
    text = path.read_text().replace("with: {who: one}",
                                    "with: {who: one}\n    retry: {attempts: 2, on: [step], "
                                    "initial: 1ms}")
    path.write_text(text)  # a retry policy does not make a finished step count as changed
    resumed = await _run(path, store, resume=failed.run_id)  # `go` is still missing
    assert resumed.status == "failed"
    assert resumed.steps["sub"].attempts == 2
    # the resumed child reran only `late`; the retry ran the whole child again
    assert _ran(tmp_path) == ["pre", "one:early", "one:early"]
    runs = _child_runs(store, failed.run_id)
    assert [r.status for r in runs] == ["failed", "failed"]
    # the failed step's record still says which child run its first attempt resumed
    recorded = {s.step_id: s for s in store.steps(failed.run_id)}["sub"]
    assert {"event": "subworkflow_resumed", "run": runs[0].run_id} in recorded.events


async def test_a_child_that_finished_unrecorded_is_reused(tmp_path: Path,
                                                         store: RunStore) -> None:
    """The child run succeeded, but the parent stopped before its step's record was written
    (as a SIGKILL between the two can leave it): the resume takes the child's outputs."""
    path = _files(tmp_path)
    (tmp_path / "go").touch()
    text = PARENT.replace('run: "echo post >> ran.log"', 'run: "test -f post-ok"')
    path.write_text(text)
    failed = await _run(path, store)
    assert failed.status == "failed"  # at `post`
    with sqlite3.connect(store.path) as conn:  # the parent's record of `sub` was lost
        conn.execute("DELETE FROM steps WHERE run_id = ? AND step_id = 'sub'",
                     (failed.run_id,))
    (tmp_path / "post-ok").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"said": "one"}
    assert _ran(tmp_path) == ["pre", "one:early", "one:late"]  # nothing of the child again
    [child] = _child_runs(store, failed.run_id)
    assert {"event": "subworkflow_reused", "run": child.run_id} in \
        resumed.steps["sub"].notes


def test_sigkill_inside_a_child_then_resume(tmp_path: Path) -> None:
    _files(tmp_path, wait="touch late-started; sleep 60")
    (tmp_path / "wf.yaml").write_text(PARENT)  # killed_mid_run writes wf.yaml itself
    killed_mid_run(tmp_path, PARENT, "late-started")
    assert _ran(tmp_path) == ["pre", "one:early"]
    (tmp_path / "go").touch()
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    run_id = next(r.run_id for r in store.list_runs() if r.workflow_name == "parent")
    store.close()
    resumed = plait("resume", run_id, cwd=tmp_path)
    _out, err = resumed.communicate(timeout=60)
    assert resumed.returncode == 0, err
    assert _ran(tmp_path) == ["pre", "one:early", "one:late", "post"]
    shown = plait("runs", "show", run_id, cwd=tmp_path)
    text, _ = shown.communicate(timeout=60)
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    [child] = store.child_runs(run_id)
    store.close()
    assert f"sub-run    sub: {child.run_id}  succeeded  (child)" in text
    shown = plait("runs", "show", run_id, "--json", cwd=tmp_path)
    listed = json.loads(shown.communicate(timeout=60)[0])["child_runs"]
    assert listed == [{"run_id": child.run_id, "step": "sub", "item": None,
                       "workflow": "child", "status": "succeeded"}]
