"""Step semantics end to end through the library: if, foreach, failures, retries, timeouts,
outputs, inputs and sub-workflows. Steps are real commands (policy level low)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.errors import InputError, SpecError, StateError
from engine.executor import StepFinished, run_workflow
from engine.secrets import SOURCE_MASK
from engine.spec.loader import load
from engine.state import RunStore

HEAD = """\
version: 1
name: {name}
policies:
  open: {{level: low}}
defaults:
  policy: open
"""


def workflow(tmp_path: Path, body: str, name: str = "t") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(HEAD.format(name=name) + body, encoding="utf-8")
    return path


async def run(path: Path, inputs: dict[str, Any] | None = None, **options: Any) -> Any:
    return await run_workflow(load(path), inputs or {}, **options)


async def run_recorded(path: Path, tmp_path: Path) -> tuple[Any, dict[str, Any]]:
    """The run's result and its step records, as written to a run record database."""
    return await run_recorded_with(path, tmp_path, None)


async def run_recorded_with(path: Path, tmp_path: Path, inputs: dict[str, Any] | None,
                            ) -> tuple[Any, dict[str, Any]]:
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run(path, inputs, store=store)
        return result, {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


pytestmark = pytest.mark.anyio


async def test_foreach_if_outputs_and_skips(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
inputs:
  n: {type: integer, default: 3}
steps:
  listing:
    run: "printf '[3,1,2]'"
  each:
    foreach: ${{ steps.listing.output.stdout | fromjson }}
    max_parallel: 2
    run: ["echo", "item ${{ item }} at ${{ index }}"]
  never:
    if: ${{ inputs.n > 5 }}
    run: echo never
  after_never:
    run: echo also-never
    needs: [never]
outputs:
  lines: ${{ steps.each.output | map(attribute='stdout') | map('trim') | list }}
  count: ${{ steps.each.output | length }}
""")
    result = await run(path)
    assert result.status == "succeeded"
    assert result.outputs == {"lines": ["item 3 at 0", "item 1 at 1", "item 2 at 2"],
                              "count": 3}
    assert result.steps["never"].status == "skipped"
    assert result.steps["after_never"].status == "skipped"
    assert "skipped dependency: never" in (result.steps["after_never"].reason or "")


async def test_failure_without_continue_cancels_the_rest(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  boom:
    run: "echo bad >&2; exit 3"
  slow:
    run: "sleep 5"
  after:
    run: echo after
    needs: [boom]
""")
    result, records = await run_recorded(path, tmp_path)
    assert result.status == "failed"
    assert result.steps["boom"].status == "failed"
    assert "exited with code 3: bad" in result.steps["boom"].error["message"]
    assert result.steps["slow"].status == "cancelled"
    assert result.steps["after"].status == "cancelled"
    assert result.duration < 4
    # `slow` was cancelled while it ran: it keeps when it started and its attempt (a report's
    # timeline and JUnit time need them); `after` never started
    slow, boom = result.steps["slow"], result.steps["boom"]
    assert slow.started_at is not None and boom.finished_at is not None
    assert slow.started_at <= boom.finished_at < slow.finished_at  # type: ignore[operator]
    assert (slow.attempts, records["slow"].attempts) == (1, 1)
    assert records["slow"].started_at == slow.started_at
    assert (result.steps["after"].attempts, result.steps["after"].duration) == (0, 0.0)


async def test_a_failure_stops_the_next_steps_before_its_record_is_written(
        tmp_path: Path) -> None:
    """`check` fails without yielding (an instant model error); with run records on, its
    record is written a loop turn later. The worker must not take `deploy`, which was ready
    all along, in between: the record would call it cancelled after its command ran."""
    marker = tmp_path / "deployed"
    path = workflow(tmp_path, f"""\
providers:
  bad: {{kind: echo, options: {{failure_rate: 1}}}}
steps:
  check:
    llm: bad
    prompt: is it safe to deploy?
  deploy:
    run: "echo deployed >> {marker}"
""")
    result, records = await run_recorded(path, tmp_path)
    assert result.status == "failed"
    assert not marker.exists()
    assert result.steps["deploy"].status == "cancelled"
    assert (records["deploy"].status, records["deploy"].attempts) == ("cancelled", 0)
    assert records["check"].status == "failed"


async def test_continue_on_error_lets_dependants_see_the_failure(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  boom:
    run: "exit 1"
    continue_on_error: true
  report:
    run: "echo ${{ steps.boom.status }}"
outputs:
  seen: ${{ steps.report.output.stdout | trim }}
""")
    result = await run(path)
    assert result.status == "succeeded"
    assert result.outputs["seen"] == "failed"


async def test_a_tolerated_foreach_failure_has_output_null_and_keeps_its_finished_items(
        tmp_path: Path) -> None:
    """As docs/running.md says: no item starts after one failed; the step's output is null,
    not a partial list; the items that had finished are in the run record."""
    path = workflow(tmp_path, """\
steps:
  each:
    foreach: [1, 2, 3]
    max_parallel: 1
    run: "test ${{ item }} -ne 2"
    continue_on_error: true
outputs:
  out: ${{ steps.each.output }}
  status: ${{ steps.each.status }}
""")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run(path, store=store)
        items = store.step_items(result.run_id)["each"]
    finally:
        store.close()
    assert result.status == "succeeded"
    assert result.outputs == {"out": None, "status": "failed"}
    assert result.steps["each"].error["message"].startswith("item 1: ")
    assert sorted(items) == [0]  # item 2 (index 2) never started


async def test_keep_going_lets_independent_branches_finish(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  boom:
    run: "exit 1"
  other:
    run: "sleep 0.2; echo done"
  after_boom:
    run: echo x
    needs: [boom]
""")
    result = await run(path, keep_going=True)
    assert result.status == "failed"
    assert result.steps["other"].status == "succeeded"
    assert result.steps["after_boom"].status == "cancelled"


async def test_timeout_and_retry_until_success(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  flaky:
    run: "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]"
    retry: {attempts: 3, backoff: constant, initial: 10ms, on: [command]}
  stuck:
    run: "sleep 10"
    timeout: 300ms
    continue_on_error: true
""")
    events: list[Any] = []
    result = await run(path, listeners=[events.append])
    assert result.steps["flaky"].status == "succeeded"
    assert result.steps["flaky"].attempts == 3
    assert (tmp_path / "count").read_text().strip() == "3"
    retries = [e for e in events if type(e).__name__ == "StepRetrying"]
    assert [e.attempt for e in retries] == [2, 3]
    assert result.steps["stuck"].status == "failed"
    assert result.steps["stuck"].error["kind"] == "timeout"


async def test_the_retries_of_foreach_items_are_in_the_steps_record(tmp_path: Path) -> None:
    """Each item's retries are noted (with its index, in item order), whether the step then
    succeeds or fails: they were dropped from the record."""
    path = workflow(tmp_path, """\
inputs:
  failing: {type: string, default: none}
steps:
  each:
    foreach: ${{ [1, 2] }}
    run: "n=$(cat c${{ item }} 2>/dev/null || echo 0); n=$((n+1)); echo $n > c${{ item }};
      [ $n -ge 2 ] && [ ${{ inputs.failing }} != ${{ item }} ]"
    retry: {attempts: 2, backoff: constant, initial: 10ms, on: [command]}
""")

    def retries(record: Any) -> list[tuple[int, int]]:
        return [(e["item"], e["attempt"]) for e in record.events if e.get("event") == "retry"]

    result, records = await run_recorded(path, tmp_path)
    assert result.steps["each"].status == "succeeded"
    assert retries(records["each"]) == [(0, 1), (1, 1)]
    for marker in ("c1", "c2"):
        (tmp_path / marker).unlink()
    result, records = await run_recorded_with(path, tmp_path, {"failing": "2"})
    assert result.steps["each"].status == "failed"
    assert retries(records["each"]) == [(0, 1), (1, 1)]


async def test_an_attempt_cut_off_by_the_timeout_says_timeout(tmp_path: Path) -> None:
    """The timeout cancels the attempt from outside; its AttemptFinished (and so its span)
    must say timeout, as the retry and the step do, not `cancelled` (the run stopping)."""
    path = workflow(tmp_path, """\
steps:
  stuck:
    run: "sleep 10"
    timeout: 200ms
    retry: {attempts: 2, backoff: constant, initial: 10ms, on: [timeout]}
""")
    events: list[Any] = []
    result = await run(path, listeners=[events.append])
    assert result.steps["stuck"].error["kind"] == "timeout"
    finished = [(e.attempt, e.error, e.error_kind) for e in events
                if type(e).__name__ == "AttemptFinished"]
    assert finished == [(1, "timed out after 0.2s", "timeout"),
                        (2, "timed out after 0.2s", "timeout")]


async def test_the_record_of_a_failed_or_retried_step_keeps_its_inputs_output_and_retries(
        tmp_path: Path) -> None:
    """A failed step's record holds what it was called with and what it printed, and a
    retried step's record holds a note per retry (not only the live events)."""
    path = workflow(tmp_path, """\
inputs:
  word: {type: string, default: OUT}
steps:
  flaky:
    run: "n=$(cat count 2>/dev/null || echo 0); n=$((n+1)); echo $n > count; [ $n -ge 3 ]"
    retry: {attempts: 3, backoff: constant, initial: 10ms, on: [command]}
  bad:
    run: "printf 'ST%s\\n' ${{ inputs.word }}; echo oops >&2; exit 3"
    needs: [flaky]
""")
    result, records = await run_recorded(path, tmp_path)
    bad = records["bad"]
    assert bad.status == "failed"
    assert "exit 3" in bad.rendered_input["run"] and "OUT" in bad.rendered_input["run"]
    assert bad.error["stdout"] == "STOUT\n"
    assert "oops" in bad.error["message"]
    flaky = records["flaky"]
    assert (flaky.status, flaky.attempts) == ("succeeded", 3)
    assert [(e["event"], e["attempt"], e["kind"]) for e in flaky.events] == [
        ("retry", 1, "command"), ("retry", 2, "command")]
    assert result.steps["flaky"].notes == flaky.events


async def test_foreach_over_a_non_list_fails_with_a_located_error(tmp_path: Path) -> None:
    # known only at run time (a constant like ${{ 42 }}, or an input declared a number read
    # as it is, is refused by validate already)
    path = workflow(tmp_path, """\
inputs:
  n: {type: integer, default: 42}
steps:
  each:
    foreach: ${{ inputs.n + 0 }}
    run: echo ${{ item }}
""")
    result = await run(path)
    error = result.steps["each"].error
    assert result.status == "failed"
    assert error["message"] == f"{path}:11:14: step 'each': foreach needs a list, got integer 42"
    assert error["field"] == "foreach" and "return a list" in error["hint"]


async def test_runtime_expression_error_names_the_step_and_place(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  first:
    run: echo hi
  second:
    run: "echo ${{ steps.first.output.nothing.deeper }}"
""")
    result = await run(path)
    message = result.steps["second"].error["message"]
    assert "t.yaml:11:" in message and "step 'second'" in message and "`run`" in message


async def test_inputs_are_typed_and_checked_before_anything_runs(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
inputs:
  count: {type: integer}
  mode: {type: string, enum: [a, b], default: a}
steps:
  touch:
    run: touch ran
""")
    with pytest.raises(InputError, match=r"unknown input 'cuont'"):
        await run(path, {"cuont": 1})
    with pytest.raises(InputError, match="missing required input: count"):
        await run(path, {})
    with pytest.raises(InputError, match="must be of type integer"):
        await run(path, {"count": "x"}, from_text=frozenset({"count"}))
    with pytest.raises(InputError, match="must be one of"):
        await run(path, {"count": 1, "mode": "c"})
    assert not (tmp_path / "ran").exists()
    result = await run(path, {"count": "2"}, from_text=frozenset({"count"}))
    assert result.status == "succeeded"


async def test_numbers_json_cannot_hold_are_refused_anywhere_in_the_inputs(
        tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
inputs:
  num: {type: number, default: 1}
  obj: {type: object, default: {}}
  arr: {type: array, default: []}
steps:
  touch:
    run: touch ran
""")
    with pytest.raises(InputError, match=r"input 'num' holds the number Infinity,") as caught:
        await run(path, {"num": "1e400"}, from_text=frozenset({"num"}))
    assert caught.value.context["input"] == "num" and "finite" in str(caught.value.hint)
    with pytest.raises(InputError, match=r"input 'num' holds the number -Infinity"):
        await run(path, {"num": float("-inf")})
    with pytest.raises(InputError, match=r"input 'obj' holds the number NaN at obj\[\"x\"\]\[1\]"):
        await run(path, {"obj": '{"x": [1, NaN]}'}, from_text=frozenset({"obj"}))
    with pytest.raises(InputError, match=r"input 'arr' holds the number NaN at arr\[0\]"):
        await run(path, {"arr": [float("nan")]})
    with pytest.raises(InputError, match=r"input 'obj' is nested too deeply"):
        await run(path, {"obj": '{"k": ' + "[" * 5000 + "]" * 5000 + "}"},
                  from_text=frozenset({"obj"}))
    assert not (tmp_path / "ran").exists()
    nan_default = workflow(tmp_path, """\
inputs:
  num: {type: number, default: .nan}
steps:
  touch:
    run: touch ran
""", name="d")
    with pytest.raises(InputError, match=r"the default of input 'num' holds the number NaN"):
        await run(nan_default)
    assert not (tmp_path / "ran").exists()


async def test_text_that_is_not_valid_unicode_is_refused_anywhere_in_the_inputs(
        tmp_path: Path) -> None:
    """Undecodable bytes on the command line arrive as lone surrogates (and a JSON escape
    such as \\udcff makes one): the run record could not store them, so the run crashed with a
    traceback after its record was opened."""
    path = workflow(tmp_path, """\
inputs:
  text: {type: string, default: ok}
  obj: {type: object, default: {}}
steps:
  touch:
    run: touch ran
""")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        with pytest.raises(InputError, match=r"input 'text' holds text that is not valid "
                                             r'UTF-8 \(character 1: "\\udcff"\)'):
            await run(path, {"text": "a\udcff"}, from_text=frozenset({"text"}), store=store)
        with pytest.raises(InputError, match=r"input 'obj' holds text that is not valid UTF-8 "
                                             r'at obj\["k"\]\[0\]'):
            await run(path, {"obj": '{"k": ["\\udcff"]}'}, from_text=frozenset({"obj"}),
                      store=store)
        with pytest.raises(InputError, match=r"at obj \(a key\)"):
            await run(path, {"obj": {"\udc80": 1}}, store=store)
        assert store.list_runs() == []
    finally:
        store.close()
    assert not (tmp_path / "ran").exists()
    assert (await run(path, {"text": "héllo ✓"})).ok


async def test_sub_workflow_runs_with_inputs_and_recursion_is_refused(tmp_path: Path) -> None:
    workflow(tmp_path, """\
inputs:
  who: {type: string}
steps:
  greet:
    run: "echo hello ${{ inputs.who }}"
outputs:
  text: ${{ steps.greet.output.stdout | trim }}
""", name="child")
    parent = workflow(tmp_path, """\
steps:
  call:
    workflow: child.yaml
    with: {who: world}
outputs:
  text: ${{ steps.call.output.text }}
""", name="parent")
    result = await run(parent)
    assert result.outputs == {"text": "hello world"}
    selfish = workflow(tmp_path, """\
steps:
  again:
    workflow: selfish.yaml
""", name="selfish")
    with pytest.raises(SpecError, match=r"sub-workflow selfish\.yaml calls this workflow again"):
        load(selfish)  # refused before anything runs
    # a child edited to call back after the parent was loaded is still refused when it runs
    loaded = load(parent)
    workflow(tmp_path, "steps:\n  back:\n    workflow: parent.yaml\n", name="child")
    result = await run_workflow(loaded, {})
    assert result.status == "failed"
    assert "sub-workflow parent.yaml calls this workflow again: child.yaml -> parent.yaml -> " \
           "child.yaml" in result.steps["call"].error["message"]


async def test_steps_start_when_their_own_dependencies_finish(tmp_path: Path) -> None:
    """Not layer by layer: `fast_after` starts before the slow step of layer 1 ends."""
    path = workflow(tmp_path, """\
steps:
  slow:
    run: "sleep 0.6"
  fast:
    run: "true"
  fast_after:
    run: "true"
    needs: [fast]
""")
    events: list[Any] = []
    result = await run(path, listeners=[events.append])
    finished = {e.step_id: e.at for e in events if isinstance(e, StepFinished)}
    assert result.ok
    assert finished["fast_after"] < finished["slow"]


async def test_run_record_holds_every_step(tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  a:
    run: echo a
  b:
    run: "echo ${{ steps.a.output.stdout | trim }}-b"
outputs:
  b: ${{ steps.b.output.stdout | trim }}
""")
    result = await run(path)
    store = RunStore.open(None, workflow_path=path)
    try:
        record = store.get_run(result.run_id)
        steps = {s.step_id: s for s in store.steps(result.run_id)}
    finally:
        store.close()
    assert (tmp_path / ".plait" / "runs.db").is_file()
    assert record.status == "succeeded" and record.outputs == {"b": "a-b"}
    assert steps["b"].status == "succeeded" and steps["b"].attempts == 1
    assert steps["b"].rendered_input == {"run": "echo a-b"}
    assert steps["b"].output["stdout"] == "a-b\n"


async def test_a_wide_fan_out_runs_every_step_once(tmp_path: Path) -> None:
    """200 steps released at once by one step (workers are started ahead, while it runs)."""
    body = "steps:\n  root:\n    run: 'sleep 0.2'\n" + "".join(
        f"  s{i}:\n    run: 'echo {i} >> fan.log'\n    needs: [root]\n" for i in range(200))
    body += "  sink:\n    run: 'wc -l < fan.log'\n    needs: [" + ", ".join(
        f"s{i}" for i in range(200)) + "]\n"
    wf = load(workflow(tmp_path, body))
    assert wf.width == 200
    result = await run_workflow(wf, {})
    assert result.ok
    assert result.steps["sink"].output["stdout"].strip() == "200"
    assert sorted(int(x) for x in (tmp_path / "fan.log").read_text().split()) == list(range(200))


async def test_resume_reruns_a_failed_step_and_what_ran_on_its_failure(
        tmp_path: Path) -> None:
    """`soft` failed with continue_on_error and `after` ran on (it saw the failure); `hard`
    failed the run; `alone` succeeded on its own. The resume reruns the failed steps and
    `after` (its result came from the failure the resume replaces), and reuses `alone`."""
    log = tmp_path / "ran.log"
    path = workflow(tmp_path, f"""\
steps:
  soft:
    run: "echo soft >> {log}; test -e {tmp_path}/fixed"
    continue_on_error: true
  after:
    run: "echo ${{{{ steps.soft.status }}}}; echo after >> {log}"
  hard:
    run: "echo hard >> {log}; test -e {tmp_path}/fixed"
  alone:
    run: "echo alone >> {log}"
outputs:
  saw: ${{{{ steps.after.output.stdout | trim }}}}
""")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        first = await run(path, store=store, keep_going=True)
        assert first.status == "failed"
        assert first.steps["after"].status == "succeeded"
        (tmp_path / "fixed").touch()
        second = await run(path, store=store, resume=first.run_id)
    finally:
        store.close()
    assert second.status == "succeeded"
    assert second.outputs["saw"] == "succeeded"
    assert sorted(log.read_text().split()) == ["after", "after", "alone", "hard", "hard",
                                               "soft", "soft"]
    assert "restored" in (second.steps["alone"].reason or "")


async def test_a_key_written_in_the_workflow_is_masked_in_the_record_and_resume_works(
        tmp_path: Path) -> None:
    """A literal `api_key:` and Authorization header never reach runs.db; the stored text,
    masked, still tells resume that `first` is unchanged (restored) or changed (refused)."""
    key, token = "sk-literal-4c9e1f0a7b", "hdr-2b8d6e3f9a1c"
    log = tmp_path / "ran.log"
    text = HEAD.format(name="t") + f"""\
providers:
  local:
    kind: echo
    api_key: {key}
    headers: {{Authorization: "Bearer {token}"}}
steps:
  first:
    run: "echo first >> {log}; echo {token}"
  second:
    run: "echo second >> {log}; test -e {tmp_path}/fixed"
    needs: [first]
"""
    path = tmp_path / "t.yaml"
    path.write_text(text)
    store = RunStore.open(tmp_path / "runs.db")
    try:
        first = await run(path, store=store)
        assert first.status == "failed"
        assert first.steps["first"].output["stdout"] == "***\n"
        source = store.get_run(first.run_id).meta["source"]
        assert f"api_key: {SOURCE_MASK}\n" in source
        assert f'Authorization: "{SOURCE_MASK}"' in source
        path.write_text(text.replace("echo first", "echo changed"))
        with pytest.raises(StateError, match=r"changed for finished step\(s\) first"):
            await run(path, store=store, resume=first.run_id)
        path.write_text(text)
        (tmp_path / "fixed").touch()
        second = await run(path, store=store, resume=first.run_id)
    finally:
        store.close()
    assert second.ok and second.steps["first"].reason.startswith("restored")
    assert log.read_text().split() == ["first", "second", "second"]
    stored = b"".join(f.read_bytes() for f in tmp_path.glob("runs.db*"))
    assert key.encode() not in stored and token.encode() not in stored


def _most_at_once(steps: dict[str, Any], names: list[str]) -> int:
    """The largest number of `names` whose [started_at, finished_at] intervals overlap."""
    edges = sorted([(steps[n].started_at, 1) for n in names] +
                   [(steps[n].finished_at, -1) for n in names], key=lambda e: (e[0], e[1]))
    most = running = 0
    for _at, change in edges:
        running += change
        most = max(most, running)
    return most


@pytest.mark.parametrize(("concurrency", "expected"), [(100, 24), (None, 16), (5, 5)])
async def test_released_steps_overlap_up_to_the_concurrency_limit(
        tmp_path: Path, concurrency: int | None, expected: int) -> None:
    """24 waiting steps released by one root all run at once when the limit allows (the
    pool grows to them), else exactly `concurrency` (16 by default) at a time."""
    cap = f"concurrency: {concurrency}\n" if concurrency else ""
    body = cap + "providers:\n  m: {kind: echo, options: {latency: 150ms}}\nsteps:\n" \
        "  root:\n    llm: m\n    prompt: go\n" + "".join(
            f"  s{i}:\n    llm: m\n    prompt: '{i} ${{{{ steps.root.status }}}}'\n"
            for i in range(24))
    result = await run(workflow(tmp_path, body))
    assert result.ok
    names = [f"s{i}" for i in range(24)]
    assert all(result.steps[n].started_at >= result.steps["root"].finished_at for n in names)
    assert _most_at_once(result.steps, names) == expected


async def test_layers_of_instant_steps_each_run_once_after_their_dependencies(
        tmp_path: Path) -> None:
    """Steps that never wait (echo without latency) are run by whichever worker is free:
    every one runs once, after everything it depends on is in the run record."""
    import random

    rng = random.Random(7)
    body = "concurrency: 1000\nproviders:\n  m: {kind: echo}\nsteps:\n"
    preds: dict[str, list[str]] = {}
    for layer in range(8):
        for i in range(20):
            sid = f"l{layer}s{i}"
            preds[sid] = [f"l{layer - 1}s{p}" for p in rng.sample(range(20), 2)] if layer else []
            refs = " ".join(f"${{{{ steps.{p}.status }}}}" for p in preds[sid])
            body += f"  {sid}:\n    llm: m\n    prompt: '{sid} {refs}'\n"
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run(workflow(tmp_path, body), store=store)
        records = {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()
    assert result.ok and len(records) == 160
    for sid, deps in preds.items():
        assert records[sid].attempts == 1
        assert result.steps[sid].output == f"echo: {sid} " + " ".join(["succeeded"] * len(deps))
        for dep in deps:
            assert records[dep].finished_at <= records[sid].started_at


async def test_resuming_a_run_whose_steps_all_finished_completes(tmp_path: Path) -> None:
    """A run stopped after its last step was recorded: the resume has nothing to run, and
    must still end (no worker ever starts to notice)."""
    import anyio

    path = workflow(tmp_path, "steps:\n  a:\n    run: echo a\n  b:\n    run: echo b\n"
                              "    needs: [a]\noutputs:\n  b: ${{ steps.b.output.stdout }}\n")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        first = await run(path, store=store)
        store.finish_run(first.run_id, status="interrupted", finished_at=first.finished_at,
                         outputs={}, error=None, usage={}, cost=0.0)
        with anyio.fail_after(20):
            second = await run(path, store=store, resume=first.run_id)
    finally:
        store.close()
    assert second.status == "succeeded"
    assert second.outputs == {"b": "b\n"}
    assert all("restored" in (s.reason or "") for s in second.steps.values())


async def test_a_handler_that_cannot_load_fails_its_step_not_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A step kind whose handler module cannot be imported (an optional SDK missing) is a
    failed step with that error, like any other step failure: no exception escapes."""
    from engine.executor import handlers

    monkeypatch.setitem(handlers._MODULES, "run", "no_such_handler_module")
    monkeypatch.delitem(handlers._HANDLERS, "run", raising=False)
    result = await run(workflow(tmp_path, "steps:\n  a:\n    run: echo a\n"))
    assert result.status == "failed"
    assert result.steps["a"].status == "failed"
    assert "no_such_handler_module" in result.steps["a"].error["message"]


async def test_replay_missing_live_without_a_replay_is_refused_before_anything_runs(
        tmp_path: Path) -> None:
    from engine.errors import ConfigError

    marker = tmp_path / "ran"
    path = workflow(tmp_path, f"steps:\n  a:\n    run: touch {marker}\n")
    with pytest.raises(ConfigError, match="only applies to a run with --replay"):
        await run(path, replay_missing="live", record_state=False)
    assert not marker.exists()


async def test_the_run_error_names_the_step_that_failed_it_not_an_allowed_failure(
        tmp_path: Path) -> None:
    path = workflow(tmp_path, """\
steps:
  tolerated:
    continue_on_error: true
    run: "exit 5"
  real:
    needs: [tolerated]
    run: "exit 7"
""")
    result = await run(path, record_state=False)
    assert result.status == "failed"
    assert result.error is not None and result.error["step"] == "real"
    assert "code 7" in result.error["message"]


async def test_a_finished_run_leaves_no_reference_cycles_behind(tmp_path: Path) -> None:
    """A run's objects (its workflow, plans and results) are freed when it returns, not at
    the garbage collector's next full pass: a long-lived process (`plait schedule`, a test
    session) would otherwise pile runs up. (The cancelled helper tasks of a command step leave
    a traceback cycle behind in anyio; it holds only that command's own state.) The first run
    loads what is imported lazily."""
    import gc

    path = workflow(tmp_path, """\
providers:
  m: {kind: echo}
steps:
  a: {llm: m, prompt: hi}
  b: {llm: m, prompt: "${{ steps.a.output }}"}
  c: {run: "echo ${{ steps.b.output }}"}
""")
    await run_recorded(path, tmp_path)
    gc.collect()
    gc.disable()
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        result, _ = await run_recorded(path, tmp_path)
        gc.collect()
        ours = sorted({type(o).__qualname__ for o in gc.garbage
                       if type(o).__module__.startswith(
                           ("engine.executor", "engine.spec", "engine.state", "engine.expr",
                            "engine.providers"))})
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.enable()
    assert result.status == "succeeded"
    assert ours == []


async def test_a_run_cancelled_by_its_caller_is_recorded_interrupted(tmp_path: Path) -> None:
    """A library caller's deadline (or a stream_run consumer that stops reading) cancels the
    run from outside: its record ended `running` for ever (resume refused it while the
    process lived), with the steps in flight and not started unrecorded."""
    import anyio

    path = workflow(tmp_path, """\
providers:
  m: {kind: echo}
steps:
  quick: {llm: m, prompt: hi}
  slow: {run: "touch slow-started; sleep 10"}
  after: {llm: m, prompt: "${{ steps.slow.status }}"}
""")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        with anyio.move_on_after(5) as scope:
            async with anyio.create_task_group() as tg:
                tg.start_soon(lambda: run(path, store=store))
                while not (tmp_path / "slow-started").exists():
                    await anyio.sleep(0.01)
                await anyio.sleep(0.05)  # `quick` is written by now
                tg.cancel_scope.cancel()
        assert not scope.cancelled_caught
        [record] = store.list_runs()
        steps = {s.step_id: s for s in store.steps(record.run_id)}
    finally:
        store.close()
    assert (record.status, record.finished_at is not None) == ("interrupted", True)
    assert {sid: s.status for sid, s in steps.items()} == {
        "quick": "succeeded", "slow": "cancelled", "after": "cancelled"}
    assert steps["slow"].attempts == 1 and steps["after"].attempts == 0


async def test_a_failed_sub_workflow_is_retried_when_retry_on_lists_step(tmp_path: Path) -> None:
    """The child fails the first time (and leaves a marker), then succeeds: with `on: [step]`
    the workflow step runs it again; with the default `on` it is not retried."""
    log = tmp_path / "tries.log"
    workflow(tmp_path, f"""\
steps:
  flaky:
    run: "echo try >> {log}; test -e {tmp_path}/marker || {{ touch {tmp_path}/marker; exit 1; }}"
""", name="child")
    retried = workflow(tmp_path, """\
steps:
  call:
    workflow: child.yaml
    retry: {attempts: 2, on: [step], initial: 1ms}
""", name="retried")
    result = await run(retried)
    assert result.status == "succeeded" and result.steps["call"].attempts == 2
    assert log.read_text().split() == ["try", "try"]
    (tmp_path / "marker").unlink()
    plain = workflow(tmp_path, """\
steps:
  call:
    workflow: child.yaml
    retry: {attempts: 2, initial: 1ms}
""", name="plain")
    result = await run(plain)
    assert result.status == "failed" and result.steps["call"].attempts == 1
    assert "sub-workflow" in result.steps["call"].error["message"]
