"""Edges of a parent's resume resuming its sub-workflow runs: a reused child that no longer
fits, a grandchild across two resumes, a child still running elsewhere, a child of another
workflow, secrets in `with:`. Steps are real commands (policy level low); ran.log says what
really ran."""

from __future__ import annotations

import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.errors import StateError
from engine.executor import run_workflow
from engine.spec.loader import load
from engine.state import RunStore, owner_meta
from tests.executor.test_crash_resume import plait, wait_for
from tests.executor.test_subworkflow_resume import (
    CHILD,
    FOREACH_PARENT,
    PARENT,
    _files,
    _ran,
    store,
)

pytestmark = pytest.mark.anyio
__all__ = ("store",)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


async def _run(path: Path, store: RunStore, **options: Any) -> Any:
    return await run_workflow(load(path), {}, store=store, **options)


def _lose_step(store: RunStore, run_id: str, step_id: str) -> None:
    """The parent's record of `step_id` lost, as a SIGKILL after its child finished can."""
    with sqlite3.connect(store.path) as conn:
        conn.execute("DELETE FROM steps WHERE run_id = ? AND step_id = ?", (run_id, step_id))


async def test_a_finished_child_given_other_inputs_now_runs_again(
        tmp_path: Path, store: RunStore) -> None:
    path = _files(tmp_path)
    (tmp_path / "go").touch()
    path.write_text(PARENT.replace('run: "echo post >> ran.log"', 'run: "test -f post-ok"'))
    failed = await _run(path, store)
    assert failed.status == "failed"
    _lose_step(store, failed.run_id, "sub")
    # the step now calls the child with another input: the old child's outputs are stale
    path.write_text(path.read_text().replace("who: one", "who: two"))
    (tmp_path / "post-ok").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"said": "two"}
    assert _ran(tmp_path) == ["pre", "one:early", "one:late", "two:early", "two:late"]
    [note] = resumed.steps["sub"].notes
    assert note["event"] == "subworkflow_rerun" and "changed" in note["reason"]


async def test_a_finished_child_whose_file_changed_runs_again(
        tmp_path: Path, store: RunStore) -> None:
    path = _files(tmp_path)
    (tmp_path / "go").touch()
    path.write_text(PARENT.replace('run: "echo post >> ran.log"', 'run: "test -f post-ok"'))
    failed = await _run(path, store)
    _lose_step(store, failed.run_id, "sub")
    child = tmp_path / "child.yaml"
    child.write_text(child.read_text().replace("said: ${{ inputs.who }}",
                                               "said: ${{ inputs.who }}!"))
    (tmp_path / "post-ok").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"said": "one!"}


GRAND = """\
version: 1
name: grand
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  g1:
    run: "echo g1 >> ran.log"
  g2:
    run: "test -f go && echo g2 >> ran.log"
    needs: [g1]
  g3:
    run: "test -f go2 && echo g3 >> ran.log"
    needs: [g2]
outputs:
  done: yes
"""

MIDDLE = """\
version: 1
name: middle
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  m1:
    run: "echo m1 >> ran.log"
  down:
    workflow: grand.yaml
    needs: [m1]
outputs:
  done: ${{ steps.down.output.done }}
"""

TOP = """\
version: 1
name: top
steps:
  mid:
    workflow: middle.yaml
outputs:
  done: ${{ steps.mid.output.done }}
"""


async def test_a_grandchild_is_resumed_by_each_resume_of_the_top_run(
        tmp_path: Path, store: RunStore) -> None:
    (tmp_path / "grand.yaml").write_text(GRAND)
    (tmp_path / "middle.yaml").write_text(MIDDLE)
    path = tmp_path / "top.yaml"
    path.write_text(TOP)
    failed = await _run(path, store)
    assert failed.status == "failed" and _ran(tmp_path) == ["m1", "g1"]
    (tmp_path / "go").touch()
    again = await _run(path, store, resume=failed.run_id)
    assert again.status == "failed" and _ran(tmp_path) == ["m1", "g1", "g2"]
    (tmp_path / "go2").touch()
    done = await _run(path, store, resume=failed.run_id)
    assert done.status == "succeeded", done.error
    assert _ran(tmp_path) == ["m1", "g1", "g2", "g3"]
    [middle] = store.child_runs(failed.run_id)
    [grand] = store.child_runs(middle.run_id)
    assert (middle.status, grand.status) == ("succeeded", "succeeded")


async def test_foreach_items_restored_resumed_and_new_each_get_their_own_child(
        tmp_path: Path, store: RunStore) -> None:
    # item a's child may finish at once; the others' `late` fails until `go` exists
    gated = CHILD.format(wait="exit 1").replace(
        "if [ -f go ]", "if [ -f ok-${{ inputs.who }} ] || [ -f go ]")
    (tmp_path / "child.yaml").write_text(gated)
    path = tmp_path / "parent.yaml"
    path.write_text("""\
version: 1
name: parent
steps:
  subs:
    foreach: [a, b, c]
    max_parallel: 1
    workflow: child.yaml
    with: {who: "${{ item }}"}
outputs:
  said: ${{ steps.subs.output | map(attribute='said') | list }}
""")
    (tmp_path / "ok-a").touch()
    failed = await _run(path, store)
    assert failed.status == "failed"
    assert _ran(tmp_path) == ["a:early", "a:late", "b:early"]
    (tmp_path / "go").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"said": ["a", "b", "c"]}
    # a restored, b's child resumed (only `late`), c new
    assert _ran(tmp_path) == ["a:early", "a:late", "b:early", "b:late", "c:early", "c:late"]
    children = [tuple(c.meta["parent_step"]) for c in store.child_runs(failed.run_id)]
    assert sorted(children) == [("subs", 0), ("subs", 1), ("subs", 2)]



def _left_running(store: RunStore, run_id: str, owner: dict[str, Any]) -> None:
    """The run's record says `running`, owned by `owner`: what a run that broke (its record
    could not be closed) leaves behind, in a process that may live on."""
    store.update_meta(run_id, {"owner": owner})
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET status = 'running', finished_at = NULL "
                     "WHERE run_id = ?", (run_id,))


async def test_a_child_left_running_by_this_process_is_resumed(
        tmp_path: Path, store: RunStore) -> None:
    """A library caller's process lives on after its run ended: the child's record names it
    as owner, but it no longer runs that child, so a resume in it resumes the child."""
    path = _files(tmp_path)
    failed = await _run(path, store)
    [child] = store.child_runs(failed.run_id)
    _left_running(store, child.run_id, owner_meta())
    (tmp_path / "go").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert _ran(tmp_path) == ["pre", "one:early", "one:late", "post"]
    assert {"event": "subworkflow_resumed", "run": child.run_id} in resumed.steps["sub"].notes


async def test_a_run_left_running_by_this_process_can_be_resumed_in_it(
        tmp_path: Path, store: RunStore) -> None:
    path = _files(tmp_path)
    failed = await _run(path, store)
    _left_running(store, failed.run_id, owner_meta())
    (tmp_path / "go").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error


async def test_a_run_this_process_still_runs_is_not_resumed_beside_it(
        tmp_path: Path, store: RunStore) -> None:
    path = _files(tmp_path, wait="sleep 0.05; exit 1")
    path.write_text(PARENT.replace('echo pre >> ran.log', 'touch started; sleep 1'))
    async with anyio.create_task_group() as tg:
        tg.start_soon(_run, path, store)
        with anyio.fail_after(10):
            while not (tmp_path / "started").exists():
                await anyio.sleep(0.02)
        [running] = store.list_runs()
        with pytest.raises(StateError, match=f"run {running.run_id} is still running"):
            await _run(path, store, resume=running.run_id)


async def test_a_child_another_live_process_runs_is_not_run_twice(
        tmp_path: Path, store: RunStore) -> None:
    """The parent's record ended, but its child's says `running`, owned by a live process:
    running the child again beside it would do its steps twice, so the step fails saying so."""
    path = _files(tmp_path)
    failed = await _run(path, store)
    [child] = store.child_runs(failed.run_id)
    other = subprocess.Popen(["sleep", "30"])
    try:
        _left_running(store, child.run_id, {"host": socket.gethostname(), "pid": other.pid,
                                            "pid_start": None})
        (tmp_path / "go").touch()
        resumed = await _run(path, store, resume=failed.run_id)
    finally:
        other.kill()
        other.wait(timeout=10)
    assert resumed.status == "failed"
    assert _ran(tmp_path) == ["pre", "one:early"]  # nothing of the child ran again
    error = resumed.steps["sub"].error
    assert f"its run {child.run_id} from before is still running (process {other.pid}" \
        in error["message"]
    assert "then resume this run again" in error["hint"]
    assert [r.run_id for r in store.child_runs(failed.run_id)] == [child.run_id]


SECRET = "s3cr3t-value-0123456789"


async def _failed_with_secret(tmp_path: Path, store: RunStore) -> tuple[Path, Any, Any]:
    path = _files(tmp_path)
    path.write_text(PARENT.replace("name: parent\n", "name: parent\nsecrets: [TOK]\n")
                    .replace("with: {who: one}", "with: {who: '${{ secrets.TOK }}'}")
                    .replace("said: ${{ steps.sub.output.said }}", "said: ok"))
    failed = await _run(path, store, environ=_ENV)
    [child] = store.child_runs(failed.run_id)
    assert child.inputs == {"who": "***"} and child.meta["masked_inputs"] == ["who"]
    return path, failed, child


_ENV = {**os.environ, "TOK": SECRET}


async def test_a_child_given_a_secret_by_with_is_resumed(tmp_path: Path,
                                                         store: RunStore) -> None:
    """The child's input was recorded masked; the step's `with:` gives it again."""
    path, failed, child = await _failed_with_secret(tmp_path, store)
    (tmp_path / "go").touch()
    resumed = await _run(path, store, environ=_ENV, resume=failed.run_id)
    assert {"event": "subworkflow_resumed", "run": child.run_id} in resumed.steps["sub"].notes
    assert _ran(tmp_path) == ["pre", f"{SECRET}:early", f"{SECRET}:late", "post"]


async def test_a_refused_secret_is_not_shown_by_the_rerun_warning(
        tmp_path: Path, store: RunStore, caplog: pytest.LogCaptureFixture) -> None:
    path, failed, child = await _failed_with_secret(tmp_path, store)
    text = (tmp_path / "child.yaml").read_text()
    (tmp_path / "child.yaml").write_text(text.replace("{type: string}", "{type: integer}"))
    with caplog.at_level(logging.WARNING, logger="plait.executor"):
        again = await _run(path, store, environ=_ENV, resume=failed.run_id)
    assert again.status == "failed"
    assert f"step sub: sub-workflow child: run {child.run_id} cannot be resumed (input " \
        "'who' must be of type integer" in caplog.text
    assert SECRET not in caplog.text
    assert SECRET not in json.dumps(again.steps["sub"].error)


async def test_a_step_that_now_calls_another_workflow_starts_it_quietly(
        tmp_path: Path, store: RunStore, caplog: pytest.LogCaptureFixture) -> None:
    path = _files(tmp_path)
    failed = await _run(path, store)
    [child] = store.child_runs(failed.run_id)
    (tmp_path / "other.yaml").write_text(CHILD.format(wait="exit 1")
                                         .replace("name: child", "name: other"))
    path.write_text(path.read_text().replace("workflow: child.yaml", "workflow: other.yaml"))
    (tmp_path / "go").touch()
    with caplog.at_level(logging.WARNING, logger="plait.executor"):
        resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert _ran(tmp_path) == ["pre", "one:early", "one:early", "one:late", "post"]
    assert "cannot be resumed" not in caplog.text  # nothing of `other` ran before
    [note] = resumed.steps["sub"].notes
    assert note == {"event": "subworkflow_rerun", "run": child.run_id,
                    "reason": "the step now calls workflow other, not child"}


def test_ctrl_c_while_a_resumed_child_runs_keeps_both_resumable(tmp_path: Path) -> None:
    _files(tmp_path, wait="touch late-started; sleep 60")
    (tmp_path / "wf.yaml").write_text(PARENT)

    def interrupted(*args: str) -> None:
        proc = plait(*args, cwd=tmp_path)
        try:
            wait_for(tmp_path / "late-started")
        finally:
            os.kill(proc.pid, signal.SIGINT)
            _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        (tmp_path / "late-started").unlink()

    interrupted("run", "wf.yaml")
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    [run] = [r for r in store.list_runs() if r.workflow_name == "parent"]
    store.close()
    interrupted("resume", run.run_id)  # Ctrl-C while the resumed child's `late` runs
    store = RunStore.open(None, workflow_path=tmp_path / "wf.yaml")
    [child] = store.child_runs(run.run_id)  # resumed, not a second child
    assert (store.get_run(run.run_id).status, child.status) == ("interrupted", "interrupted")
    store.close()
    (tmp_path / "go").touch()
    done = plait("resume", run.run_id, cwd=tmp_path)
    _, err = done.communicate(timeout=60)
    assert done.returncode == 0, err
    assert _ran(tmp_path) == ["pre", "one:early", "one:late", "post"]


async def test_a_child_resumed_on_its_own_is_still_found_by_its_parent(
        tmp_path: Path, store: RunStore) -> None:
    """`plait resume CHILD_ID` rewrote the child's meta without `parent_step`: the parent's
    resume then ran the child again from the start, and `runs show` listed it under `?`."""
    path = _files(tmp_path)
    failed = await _run(path, store)
    [child] = store.child_runs(failed.run_id)
    alone = await run_workflow(load(tmp_path / "child.yaml"), {}, store=store,
                               resume=child.run_id)
    assert alone.status == "failed"  # `go` is still missing
    assert store.get_run(child.run_id).meta["parent_step"] == ["sub", None]
    (tmp_path / "go").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert _ran(tmp_path) == ["pre", "one:early", "one:late", "post"]
    assert [r.run_id for r in store.child_runs(failed.run_id)] == [child.run_id]


async def test_a_recording_resume_runs_the_child_from_the_start(tmp_path: Path,
                                                               store: RunStore) -> None:
    """The cassette of a recorded resume must hold every call of the child again."""
    path = _files(tmp_path)
    failed = await _run(path, store, record_dir=tmp_path / "cassette")
    (tmp_path / "go").touch()
    resumed = await _run(path, store, record_dir=tmp_path / "cassette", resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert _ran(tmp_path) == ["pre", "one:early", "one:early", "one:late", "post"]
    assert not any(n["event"] == "subworkflow_resumed" for n in resumed.steps["sub"].notes)


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text
    path.write_text(text.replace(old, new))


async def test_a_finished_step_whose_child_file_changed_refuses_the_resume(
        tmp_path: Path, store: RunStore) -> None:
    """Its output came from the old file: restored, it was stale (the run succeeded with
    `said: one` where the child now says `one!`)."""
    path = _files(tmp_path)
    (tmp_path / "go").touch()
    _edit(path, 'run: "echo post >> ran.log"', 'run: "test -f post-ok"')
    failed = await _run(path, store)
    assert failed.status == "failed" and failed.steps["sub"].status == "succeeded"
    _edit(tmp_path / "child.yaml", "said: ${{ inputs.who }}", "said: ${{ inputs.who }}!")
    (tmp_path / "post-ok").touch()
    with pytest.raises(StateError) as caught:
        await _run(path, store, resume=failed.run_id)
    assert caught.value.message == (
        f"cannot resume run {failed.run_id}: the sub-workflow file of finished step(s) sub "
        "(or a file it calls) changed since it ran")
    assert "start a new run" in (caught.value.hint or "")


async def test_a_child_rerun_on_the_changed_file_lets_the_next_resume_through(
        tmp_path: Path, store: RunStore) -> None:
    path = _files(tmp_path)
    _edit(path, 'run: "echo post >> ran.log"', 'run: "test -f post-ok"')
    failed = await _run(path, store)  # the child fails at `late`
    _edit(tmp_path / "child.yaml", ":early >>", ":EARLY >>")
    (tmp_path / "go").touch()
    again = await _run(path, store, resume=failed.run_id)  # the child runs anew, `post` fails
    assert again.status == "failed" and again.steps["sub"].status == "succeeded"
    (tmp_path / "post-ok").touch()
    done = await _run(path, store, resume=failed.run_id)
    assert done.status == "succeeded", done.error
    assert _ran(tmp_path) == ["pre", "one:early", "one:EARLY", "one:late"]


async def test_a_grandchild_file_changed_under_a_finished_step_refuses_the_resume(
        tmp_path: Path, store: RunStore) -> None:
    (tmp_path / "grand.yaml").write_text(GRAND)
    (tmp_path / "middle.yaml").write_text(MIDDLE)
    (tmp_path / "go").touch()
    (tmp_path / "go2").touch()
    path = tmp_path / "top.yaml"
    path.write_text(TOP.replace("outputs:", "  after:\n    run: 'test -f after-ok'\n"
                                           "    needs: [mid]\n    policy: open\n"
                                           "policies:\n  open: {level: low}\noutputs:"))
    failed = await _run(path, store)
    assert failed.status == "failed" and failed.steps["mid"].status == "succeeded"
    _edit(tmp_path / "grand.yaml", "done: yes", "done: no")
    with pytest.raises(StateError, match=r"sub-workflow file of finished step\(s\) mid"):
        await _run(path, store, resume=failed.run_id)


async def test_foreach_items_of_a_changed_child_are_not_restored(
        tmp_path: Path, store: RunStore) -> None:
    (tmp_path / "child.yaml").write_text(CHILD.format(wait="exit 1").replace(
        "if [ -f go ]", "if [ -f ok-${{ inputs.who }} ] || [ -f go ]"))
    path = tmp_path / "parent.yaml"
    path.write_text(FOREACH_PARENT)
    (tmp_path / "ok-a").touch()
    failed = await _run(path, store)
    assert _ran(tmp_path) == ["a:early", "a:late", "b:early"]
    _edit(tmp_path / "child.yaml", "said: ${{ inputs.who }}", "said: ${{ inputs.who }}!")
    (tmp_path / "go").touch()
    resumed = await _run(path, store, resume=failed.run_id)
    assert resumed.status == "succeeded", resumed.error
    assert resumed.outputs == {"said": ["a!", "b!"]}


async def test_a_child_resumed_after_a_fix_to_its_failed_step_lets_the_next_resume_through(
        tmp_path: Path, store: RunStore) -> None:
    """The child's record keeps the hash of the text it was created with; the text its
    resume ran (the fix) is what the next resume of the parent compares."""
    path = _files(tmp_path)
    _edit(path, 'run: "echo post >> ran.log"', 'run: "test -f post-ok"')
    failed = await _run(path, store)  # the child fails at `late`
    _edit(tmp_path / "child.yaml", "else exit 1", "else echo fixed >> ran.log")
    again = await _run(path, store, resume=failed.run_id)  # the child resumes, `post` fails
    assert again.status == "failed" and again.steps["sub"].status == "succeeded"
    (tmp_path / "post-ok").touch()
    done = await _run(path, store, resume=failed.run_id)
    assert done.status == "succeeded", done.error
    assert _ran(tmp_path) == ["pre", "one:early", "fixed"]
