"""Step semantics under failure, found in review: each test failed before its fix."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.state import RunStore
from tests.executor.test_semantics import run, workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


async def test_keep_going_does_not_run_what_lies_below_a_failure_through_a_tolerant_step(
        tmp_path: Path) -> None:
    # b tolerates its own failure, but it never ran: a failed before it. c depends on b, so
    # on a: with --keep-going it is cancelled like every other dependant of the failure
    marker = tmp_path / "c-ran"
    path = workflow(tmp_path, f"""\
steps:
  a: {{run: "exit 3"}}
  b: {{run: echo b, needs: [a], continue_on_error: true}}
  c: {{run: "touch {marker}", needs: [b]}}
  other: {{run: echo other}}
""")
    result = await run(path, record_state=False, keep_going=True)
    assert result.status == "failed"
    assert result.error["step"] == "a"
    assert result.steps["b"].status == "cancelled"
    assert result.steps["c"].status == "cancelled"
    assert result.steps["c"].reason == "cancelled dependency: b"
    assert result.steps["other"].status == "succeeded"
    assert not marker.exists()


async def test_a_failed_foreach_step_keeps_what_its_finished_items_spent(
        tmp_path: Path) -> None:
    # items 0 and 1 call the model; item 2's prompt fails: the tokens of the first two were
    # spent all the same, and the step's record and the run's totals must say so
    body = """\
providers:
  m: {{kind: echo}}
steps:
  each:
    foreach: {items}
    max_parallel: 1
    llm: m
    prompt: "hello ${{{{ 1 / (item - 3) }}}}"
"""
    ok = await run(workflow(tmp_path, body.format(items="[1, 2]"), "ok"), record_state=False)
    assert ok.status == "succeeded"
    assert ok.usage["output_tokens"] > 0
    store = RunStore.open(tmp_path / "runs.db")
    try:
        failed = await run(workflow(tmp_path, body.format(items="[1, 2, 3]"), "bad"),
                           store=store)
        (record,) = store.steps(failed.run_id)
    finally:
        store.close()
    assert failed.status == "failed"
    assert failed.steps["each"].error["item"] == 2
    assert failed.steps["each"].usage == ok.steps["each"].usage
    assert failed.usage == ok.usage
    assert record.usage == ok.steps["each"].usage


CHILD = """\
providers:
  m: {{kind: echo}}
  slow: {{kind: echo, options: {{latency: 5s}}}}
inputs:
  then: {{type: string, default: ok}}
steps:
  talk: {{llm: m, prompt: "hello there, general"}}
  after:
    needs: [talk]
    {after}
"""


async def test_a_failed_or_timed_out_sub_workflow_keeps_what_its_child_run_spent(
        tmp_path: Path) -> None:
    # each child run calls the model, then fails (a command) or hangs past the step's
    # timeout: the calling step's record and the run's totals keep the child's tokens
    workflow(tmp_path, CHILD.format(after='run: "test ${{ inputs.then }} = ok"'), "fails")
    workflow(tmp_path, CHILD.format(after="llm: slow\n    prompt: x"), "hangs")
    workflow(tmp_path, CHILD.format(after="run: echo done"), "works")
    path = workflow(tmp_path, """\
steps:
  ok: {workflow: works.yaml}
  bad: {workflow: fails.yaml, with: {then: no}, continue_on_error: true}
  slow: {workflow: hangs.yaml, timeout: 0.5s, continue_on_error: true}
""")
    result = await run(path, record_state=False)
    assert result.status == "succeeded"
    one = result.steps["ok"].usage
    assert one["output_tokens"] > 0
    assert result.steps["bad"].status == "failed"
    assert result.steps["bad"].usage == one
    assert result.steps["slow"].error["kind"] == "timeout"
    assert result.steps["slow"].usage == one
    assert result.usage == {key: 3 * value for key, value in one.items()}


async def test_a_retried_sub_workflow_counts_the_spend_of_the_attempt_that_failed(
        tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    workflow(tmp_path, CHILD.format(
        after=f'run: "test -e {marker} || {{ touch {marker}; exit 1; }}"'), "flaky")
    workflow(tmp_path, CHILD.format(after="run: echo done"), "works")
    path = workflow(tmp_path, """\
steps:
  once: {workflow: works.yaml}
  call:
    workflow: flaky.yaml
    retry: {attempts: 2, on: [step], initial: 1ms}
""")
    result = await run(path, record_state=False)
    assert result.status == "succeeded" and result.steps["call"].attempts == 2
    one = result.steps["once"].usage
    assert result.steps["call"].usage == {key: 2 * value for key, value in one.items()}


async def test_a_sub_workflow_refused_by_its_policy_is_not_retried_even_with_on_step(
        tmp_path: Path) -> None:
    # policy errors are never retried: running the child again would repeat its first step
    # (a side effect) only to be refused again
    log = tmp_path / "tries.log"
    (tmp_path / "child.yaml").write_text(f"""\
version: 1
name: child
policies:
  tight: {{level: medium, blocked_operations: [rm]}}
defaults:
  policy: tight
steps:
  first: {{run: "echo try >> {log}"}}
  refused: {{run: "rm -f {tmp_path}/nothing", needs: [first]}}
""", encoding="utf-8")
    path = workflow(tmp_path, """\
steps:
  call:
    workflow: child.yaml
    retry: {attempts: 3, on: [step], initial: 1ms}
""")
    result = await run(path, record_state=False)
    assert result.status == "failed"
    call = result.steps["call"]
    assert call.attempts == 1 and not [n for n in call.notes if n.get("event") == "retry"]
    assert call.error["kind"] == "step" and call.error["child_kind"] == "policy"
    assert log.read_text().split() == ["try"]


async def test_a_failed_command_step_records_an_audit_entry_for_every_command_it_ran(
        tmp_path: Path) -> None:
    # three attempts ran three commands; a timeout cut one off; a foreach ran two items
    # before its third failed: the record of each failed step says so, command by command
    path = workflow(tmp_path, """\
steps:
  flaky:
    run: "exit 1"
    retry: {attempts: 3, initial: 1ms, jitter: false, on: [command]}
    continue_on_error: true
  slow:
    run: "sleep 5"
    timeout: 0.3s
    continue_on_error: true
  each:
    foreach: [1, 2, 3]
    max_parallel: 1
    run: "test ${{ item }} -ne 3"
    continue_on_error: true
""")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run(path, store=store)
        records = {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()
    assert {sid: r.status for sid, r in records.items()} == dict.fromkeys(
        ("flaky", "slow", "each"), "failed")
    assert [a["exit_code"] for a in records["flaky"].audit] == [1, 1, 1]
    assert records["flaky"].attempts == 3
    (cut,) = records["slow"].audit
    assert records["slow"].error["kind"] == "timeout"
    assert cut["killed_by"] == "timeout" and cut["decision"] == "allowed"
    assert 0.2 < cut["duration_s"] < 4
    assert [a["exit_code"] for a in records["each"].audit] == [0, 0, 1]
    assert result.steps["flaky"].audit == records["flaky"].audit


async def test_an_attempt_the_run_stops_while_it_waits_for_capacity_says_cancelled(
        tmp_path: Path) -> None:
    # `waiter` waits for the provider's only slot longer than its timeout (waiting does not
    # count), then the run stops: its attempt was cancelled, it did not time out
    path = workflow(tmp_path, """\
providers:
  m: {kind: echo, max_concurrency: 1, options: {latency: 2s}}
steps:
  hog: {llm: m, prompt: a}
  waiter:
    llm: m
    prompt: b
    timeout: 0.2s
    retry: {attempts: 2, initial: 1ms}
    needs: [hog_started]
  bad: {run: "sleep 0.5; exit 1", needs: [hog_started]}
  hog_started: {run: "sleep 0.1"}
""")
    events: list[Any] = []
    result = await run(path, record_state=False, listeners=[events.append])
    assert result.status == "failed" and result.error["step"] == "bad"
    assert result.steps["waiter"].status == "cancelled"
    finished = [(e.step_id, e.error_kind) for e in events
                if type(e).__name__ == "AttemptFinished"]
    assert ("waiter", "cancelled") in finished
    assert ("waiter", "timeout") not in finished
