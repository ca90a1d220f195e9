"""Edges of the library entry points a caller can hit: run options that make no sense, a
stream_run consumer that stops reading, two resumes of one run at the same moment."""

from __future__ import annotations

import socket
import subprocess
from contextlib import aclosing
from pathlib import Path
from typing import Any

import anyio
import pytest

from engine.errors import ConfigError, InputError, StateError
from engine.executor import StepFinished, run_workflow, stream_run
from engine.executor.services import Services
from engine.spec.loader import load
from engine.state import RunStore
from tests.executor.test_semantics import workflow


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


@pytest.mark.parametrize("concurrency", [0, -1, 2.5, "3", True])
async def test_a_concurrency_that_is_not_a_positive_whole_number_is_refused(
        tmp_path: Path, concurrency: Any) -> None:
    """-1 made the run wait for ever (no worker could ever start); 2.5 and "3" broke it with
    an ExceptionGroup from inside the scheduler; 0 silently meant the workflow's own."""
    path = workflow(tmp_path, "steps:\n  a: {run: touch ran}\n")
    with anyio.fail_after(10), pytest.raises(ConfigError, match="concurrency") as caught:
        await run_workflow(load(path), concurrency=concurrency, record_state=False)
    assert caught.value.hint
    assert not (tmp_path / "ran").exists()


async def test_a_stream_run_consumer_that_stops_reading_leaves_an_interrupted_record(
        tmp_path: Path) -> None:
    """Closing the stream early (aclosing, or `aclose()`) raised a BaseExceptionGroup
    wrapping GeneratorExit into the consumer, and the run's end could not be announced."""
    path = workflow(tmp_path, """\
providers:
  m: {kind: echo}
steps:
  quick: {llm: m, prompt: hi}
  slow: {run: "sleep 10", needs: [quick]}
""")
    db = tmp_path / "runs.db"
    with anyio.fail_after(10):
        async with aclosing(stream_run(load(path), state_location=db)) as events:
            async for event in events:
                if isinstance(event, StepFinished) and event.step_id == "quick":
                    break
    with RunStore.open(db) as store:
        [record] = store.list_runs()
        steps = {s.step_id: s.status for s in store.steps(record.run_id)}
    assert record.status == "interrupted"
    assert steps == {"quick": "succeeded", "slow": "cancelled"}


async def test_two_resumes_of_one_run_at_once_only_one_runs_it(tmp_path: Path) -> None:
    """Both resumes read the record before either claimed it: each saw a failed run with no
    live owner, and both ran the failed step. The claim is now checked where it is written."""
    path = workflow(tmp_path, """\
steps:
  flaky: {run: "test -f go && echo ran >> ran.log"}
""")
    db = tmp_path / "runs.db"
    first = await run_workflow(load(path), state_location=db)
    assert first.status == "failed"
    (tmp_path / "go").touch()

    other = subprocess.Popen(["sleep", "30"])  # the process of the other resume
    try:
        class ClaimedMeanwhile(Services):
            async def __aenter__(self) -> Services:
                # the other resume claims the run between this one's check and its claim
                with RunStore.open(db) as store:
                    store.reopen_run(first.run_id, meta={"owner": {
                        "host": socket.gethostname(), "pid": other.pid}})
                return await super().__aenter__()

        wf = load(path)
        opts: dict[str, Any] = {"state_location": db, "resume": first.run_id}
        from engine.executor.context import RunOptions

        services = ClaimedMeanwhile(wf, RunOptions(**opts), {})
        with pytest.raises(StateError, match="resumed it meanwhile") as caught:
            await run_workflow(wf, services=services, **opts)
    finally:
        other.kill()
        other.wait()
    assert caught.value.hint
    assert not (tmp_path / "ran.log").exists()


SECRET_INPUT = """\
secrets: [PROBE_TOKEN]
inputs:
  auth: {type: string}
  n: {type: integer, default: 1}
steps:
  first: {run: "echo first"}
  second:
    needs: [first]
    run: "test -f go && printf '%s' '${{ inputs.auth }}' > got.txt"
"""


async def test_resume_of_a_run_whose_input_held_a_secret_uses_the_real_value(
        tmp_path: Path) -> None:
    """The run record keeps inputs with secrets masked. Resuming without inputs ran the step
    with the masked text ("Bearer ***") as if it were the input, and giving the real value
    was refused as "inputs differ"."""
    path = workflow(tmp_path, SECRET_INPUT)
    db = tmp_path / "runs.db"
    env = {"PROBE_TOKEN": "s3cr3t-value-1"}
    inputs = {"auth": "Bearer s3cr3t-value-1"}
    first = await run_workflow(load(path), inputs, state_location=db, environ=env)
    assert first.status == "failed"
    (tmp_path / "go").touch()

    with pytest.raises(InputError, match="auth") as caught:  # it cannot be reused: asked for
        await run_workflow(load(path), state_location=db, environ=env, resume=first.run_id)
    assert "-i auth=" in (caught.value.hint or "")
    assert not (tmp_path / "got.txt").exists()

    resumed = await run_workflow(load(path), inputs, state_location=db, environ=env,
                                 resume=first.run_id)
    assert resumed.status == "succeeded"
    assert (tmp_path / "got.txt").read_text() == "Bearer s3cr3t-value-1"


async def test_resume_with_other_inputs_names_those_that_differ(tmp_path: Path) -> None:
    path = workflow(tmp_path, SECRET_INPUT)
    db = tmp_path / "runs.db"
    env = {"PROBE_TOKEN": "s3cr3t-value-1"}
    first = await run_workflow(load(path), {"auth": "plain"}, state_location=db, environ=env)
    with pytest.raises(InputError, match="input 'n' differs") as caught:
        await run_workflow(load(path), {"auth": "plain", "n": 2}, state_location=db,
                           environ=env, resume=first.run_id)
    assert "auth" not in caught.value.message
    # an input left out is the run's own: giving only some of them is not a change
    (tmp_path / "go").touch()
    resumed = await run_workflow(load(path), {"n": 1}, state_location=db, environ=env,
                                 resume=first.run_id)
    assert resumed.status == "succeeded"
    assert (tmp_path / "got.txt").read_text() == "plain"


async def test_the_error_of_a_failed_foreach_item_says_which_item(tmp_path: Path) -> None:
    """Over hundreds of items, "no key 'a'" or "exited with code 1" alone did not say which
    item to look at."""
    path = workflow(tmp_path, """\
providers:
  m: {kind: echo}
steps:
  expr:
    foreach: '${{ [{"a": 1}, {"a": 2}, {"b": 3}] }}'
    llm: m
    prompt: "${{ item.a + 1 }}"
  cmd:
    foreach: ${{ [1, 2, 3] }}
    run: "test ${{ item }} -ne 2"
""")
    result = await run_workflow(load(path), record_state=False, keep_going=True)
    expr, cmd = result.steps["expr"].error, result.steps["cmd"].error
    assert expr["item"] == 2 and expr["step"] == "expr"
    # the place of the ${{ itself (13:13 is the opening quote), as plait validate points
    assert f"{path.name}:13:14: step 'expr', item 2, `prompt`: " in expr["message"]
    assert cmd["item"] == 1 and cmd["message"].startswith("item 1: command 'test 2 -ne 2'")


async def test_an_output_that_fails_keeps_the_hint_of_its_error(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
providers:
  m: {kind: echo}
steps:
  a: {llm: m, prompt: hi}
outputs:
  bad: ${{ steps.a.output.missing }}
""")
    result = await run_workflow(load(path), record_state=False)
    assert result.status == "failed"
    assert result.error["output"] == "bad" and ":12:8: output 'bad'" in result.error["message"]
    assert "default" in result.error["hint"]


async def test_resume_after_raising_a_timeout_that_cut_a_step_off(tmp_path: Path) -> None:
    """The fix for a step that timed out is a longer timeout (in `defaults` or on the step)
    or more retries: such an edit was refused as 'the workflow changed for finished step(s)'
    for every finished step, though how a step is attempted cannot change what it produced."""
    body = """\
defaults:
  policy: open
  timeout: {timeout}
steps:
  first: {{run: "echo first >> ran.log", description: {desc}}}
  slow: {{run: "sleep 0.5 && echo slow >> ran.log", needs: [first]{extra}}}
"""
    path = tmp_path / "t.yaml"
    head = "version: 1\nname: t\npolicies:\n  open: {level: low}\n"
    path.write_text(head + body.format(timeout="200ms", desc="one", extra=""))
    db = tmp_path / "runs.db"
    first = await run_workflow(load(path), state_location=db)
    assert first.status == "failed" and first.steps["slow"].error["kind"] == "timeout"

    path.write_text(head + body.format(
        timeout="5s", desc="two", extra=", retry: {attempts: 2}, continue_on_error: false"))
    resumed = await run_workflow(load(path), state_location=db, resume=first.run_id)
    assert resumed.status == "succeeded"
    assert (tmp_path / "ran.log").read_text().split() == ["first", "slow"]


async def test_waiting_for_a_providers_capacity_does_not_count_against_the_timeout(
        tmp_path: Path) -> None:
    """A provider with max_concurrency: 1 and calls of 200 ms: the fourth call in its queue
    timed out (timeout 500ms) before it was even sent. The timeout is for the call; the wait
    for a slot is the limit doing its job."""
    path = workflow(tmp_path, """\
providers:
  one: {kind: echo, max_concurrency: 1, options: {latency: 200ms}}
steps:
  f:
    foreach: ${{ range(4) | list }}
    llm: one
    prompt: "${{ item }}"
    timeout: 500ms
  g: {llm: one, prompt: g, timeout: 500ms}
""")
    result = await run_workflow(load(path), record_state=False)
    assert result.status == "succeeded", result.error
    assert result.steps["g"].attempts == 1


async def test_a_call_that_hangs_still_times_out_behind_a_capacity_limit(
        tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
providers:
  one: {kind: echo, max_concurrency: 1, options: {latency: 30s}}
steps:
  a: {llm: one, prompt: a, timeout: 300ms}
  b: {llm: one, prompt: b, timeout: 300ms}
""")
    with anyio.fail_after(10):
        result = await run_workflow(load(path), record_state=False, keep_going=True)
    assert {s.status for s in result.steps.values()} == {"failed"}
    assert all(s.error["kind"] == "timeout" for s in result.steps.values())
    assert result.finished_at - result.started_at < 2


async def test_a_foreach_without_max_parallel_stays_within_the_runs_concurrency(
        tmp_path: Path) -> None:
    """`concurrency: 2` and a foreach of 6 items ran all 6 at once (600 commands for 600
    items): the run-wide cap did not reach the items of a step."""
    from engine.executor.events import ItemFinished, ItemStarted

    path = workflow(tmp_path, """\
concurrency: 2
providers:
  m: {kind: echo, options: {latency: 50ms}}
steps:
  f:
    foreach: ${{ range(6) | list }}
    llm: m
    prompt: "${{ item }}"
  g:
    foreach: ${{ range(4) | list }}
    max_parallel: 4
    llm: m
    prompt: "${{ item }}"
""")
    open_items: dict[str, int] = {"f": 0, "g": 0}
    most: dict[str, int] = {"f": 0, "g": 0}

    def watch(event: Any) -> None:
        if isinstance(event, ItemStarted):
            open_items[event.step_id] += 1
            most[event.step_id] = max(most[event.step_id], open_items[event.step_id])
        elif isinstance(event, ItemFinished):
            open_items[event.step_id] -= 1

    result = await run_workflow(load(path), record_state=False, listeners=[watch])
    assert result.status == "succeeded"
    assert result.steps["f"].output == [f"echo: {i}" for i in range(6)]
    assert most == {"f": 2, "g": 4}  # an explicit max_parallel is the step's own choice


@pytest.mark.parametrize(("kind", "text", "hint"), [
    ("boolean", "maybe", "true or false"), ("integer", "3.5", "whole number"),
    ("number", "abc", "a number"), ("array", "[1,", "JSON")])
async def test_an_input_of_the_wrong_type_from_the_command_line_says_what_to_pass(
        tmp_path: Path, kind: str, text: str, hint: str) -> None:
    path = workflow(tmp_path, f"inputs:\n  x: {{type: {kind}}}\nsteps:\n  a: {{run: 'true'}}\n")
    with pytest.raises(InputError, match=f"input 'x' must be of type {kind}") as caught:
        await run_workflow(load(path), {"x": text}, from_text=frozenset({"x"}),
                           record_state=False)
    assert hint in (caught.value.hint or "")


async def test_steps_queued_on_a_slow_provider_do_not_starve_the_others(
        tmp_path: Path) -> None:
    """concurrency: 2, four steps on a provider limited to one call at a time, one step on
    another provider: the queued steps held the run's slots while they waited for theirs,
    so the quick step waited behind the whole queue (~1.2 s instead of ~10 ms)."""
    path = workflow(tmp_path, """\
concurrency: 2
providers:
  one: {kind: echo, max_concurrency: 1, options: {latency: 300ms}}
  quick: {kind: echo, options: {latency: 10ms}}
steps:
  s0: {llm: one, prompt: a}
  s1: {llm: one, prompt: b}
  s2: {llm: one, prompt: c}
  s3: {llm: one, prompt: d}
  z0: {llm: quick, prompt: e}
""")
    finished: list[str] = []
    result = await run_workflow(load(path), record_state=False, listeners=[
        lambda e: finished.append(e.step_id) if isinstance(e, StepFinished) else None])
    assert result.status == "succeeded"
    assert finished.index("z0") < 2, finished  # done before the second call of `one`


async def test_steps_at_work_stay_within_the_concurrency_while_others_wait_for_capacity(
        tmp_path: Path) -> None:
    """The slots that waiting steps lend out are for steps at work in their place, no more:
    with three steps queued on `one`, the quick steps never get more than the run's two
    slots (four of them would fit in the slots lent out and taken back)."""
    quick = "".join(f"  q{i}: {{llm: quick, prompt: q{i}}}\n" for i in range(4))
    path = workflow(tmp_path, f"""\
concurrency: 2
providers:
  one: {{kind: echo, max_concurrency: 1, options: {{latency: 150ms}}}}
  quick: {{kind: echo, options: {{latency: 100ms}}}}
steps:
  a0: {{llm: one, prompt: a}}
  a1: {{llm: one, prompt: b}}
  a2: {{llm: one, prompt: c}}
  a3: {{llm: one, prompt: d}}
{quick}""")
    from engine.executor.events import StepStarted

    at_once = most = 0

    def watch(event: Any) -> None:
        nonlocal at_once, most
        if isinstance(event, StepStarted | StepFinished) and event.step_id.startswith("q"):
            at_once += 1 if isinstance(event, StepStarted) else -1
            most = max(most, at_once)

    result = await run_workflow(load(path), record_state=False, listeners=[watch])
    assert result.status == "succeeded"
    assert most <= 2


async def test_a_step_back_from_a_capacity_wait_does_not_deadlock_the_run(
        tmp_path: Path) -> None:
    """A step that got the capacity it waited for goes on at once. Were it to wait for its
    run slot back while it holds that capacity, the steps in the slots (a foreach whose items
    wait for that same capacity, as items never lend their step's slot) could never finish:
    this run hung (found by random DAGs, then shrunk)."""
    path = workflow(tmp_path, """\
concurrency: 2
providers:
  p0: {kind: echo, max_concurrency: 3}
  p1: {kind: echo, max_concurrency: 2, options: {latency: 3ms}}
steps:
  n4: {llm: p1, prompt: x}
  n9: {llm: p1, prompt: x}
  n12: {foreach: '${{ [1, 2, 3] }}', llm: p0, prompt: '${{ item }}'}
  n32: {foreach: '${{ [1, 2, 3] }}', llm: p1, prompt: '${{ item }}'}
  n43: {llm: p1, prompt: x}
""")
    with anyio.fail_after(20):
        result = await run_workflow(load(path), record_state=False)
    assert result.status == "succeeded"
    assert result.steps["n32"].output == ["echo: 1", "echo: 2", "echo: 3"]


async def test_an_mcp_tools_rate_limit_wait_does_not_count_against_the_timeout() -> None:
    """A tool's `rate_limit` makes extra calls wait for the window: that wait timed the
    attempt out like a hung call."""
    from engine.executor.retry import call_with_retry
    from engine.mcp.executor import RateLimiter

    limiter = RateLimiter(1, window_s=0.5)

    async def call() -> str:
        await limiter.acquire()
        return "called"

    assert await call_with_retry(call, None, timeout=0.3) == "called"
    with anyio.fail_after(5):
        assert await call_with_retry(call, None, timeout=0.3) == "called"  # waited ~0.5 s


async def test_a_step_blocked_by_a_failed_and_a_skipped_dependency_names_each_for_what(
        tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  off: {run: "true", if: "${{ false }}"}
  broken: {run: "exit 3"}
  both: {run: "true", needs: [off, broken]}
""")
    result = await run_workflow(load(path), record_state=False, keep_going=True)
    both = result.steps["both"]
    assert both.status == "cancelled"
    assert both.reason == "failed dependency: broken; skipped dependency: off"
