"""`plait batch` and sub-workflows at their edges: bad row files, Ctrl-C, recursion."""

from __future__ import annotations

import json
import os
import signal
import time
from pathlib import Path
from typing import Any

import pytest

from engine.state import RunStore
from tests.cli.test_cli import GOOD, plait
from tests.executor.test_crash_resume import plait as popen
from tests.executor.test_crash_resume import wait_for


def interrupt_once(proc: Any, *markers: Path, sig: int = signal.SIGINT) -> tuple[str, str]:
    """Send `sig` to `proc` once every marker file exists; its (stdout, stderr) once it has
    exited (it is SIGKILLed if it does not within 30 s)."""
    try:
        for marker in markers:
            wait_for(marker)
        os.kill(proc.pid, sig)
        out, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    return out, err


def test_batch_rows_file_not_utf8_is_an_input_error(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_bytes(b'{"who": "ada"}\n{"who": "b\xff"}\n')
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "Traceback" not in out.stderr
    assert "rows.jsonl:2: not UTF-8 text" in out.stderr



def test_batch_row_may_hold_a_unicode_line_separator(tmp_path: Path) -> None:
    """JSON strings may hold U+2028 as is; only a newline ends a row of a JSONL file."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_text('{"who": "a\u2028b"}\n', encoding="utf-8")
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi a\u2028b"}


def test_inputs_files_may_start_with_a_byte_order_mark(tmp_path: Path) -> None:
    """Some Windows editors start UTF-8 files with a byte-order mark; it is not an error."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_bytes(b'\xef\xbb\xbf{"who": "ada"}\n{"who": "bo"}\n')
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert [json.loads(line)["outputs"]["reply"] for line in out.stdout.splitlines()] == \
        ["echo: hi ada", "echo: hi bo"]
    (tmp_path / "in.json").write_bytes(b'\xef\xbb\xbf{"who": "ada"}')
    out = plait("run", "good.yaml", "--inputs", "in.json", "--no-record", "--json",
                cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["outputs"] == {"reply": "echo: hi ada"}


def test_an_input_given_twice_in_one_json_object_is_refused(tmp_path: Path) -> None:
    """JSON keeps the last of two equal keys: a row or inputs file that names an input twice
    would run with one of the values silently dropped."""
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_text('{"who": "a"}\n{"who": "b", "who": "c"}\n')
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == ""
    assert "rows.jsonl:2: duplicate key 'who'" in out.stderr
    assert "give each input once" in out.stderr
    (tmp_path / "in.json").write_text('{"who": "b", "who": "c"}')
    out = plait("run", "good.yaml", "--inputs", "in.json", "--no-record", cwd=tmp_path)
    assert out.returncode == 2 and "in.json: duplicate key 'who'" in out.stderr


SLOW = """version: 1
name: slow
inputs:
  i: {type: integer}
policies:
  lo: {level: low}
defaults: {policy: lo}
steps:
  s:
    run: "touch started-${{ inputs.i }}; sleep 30"
"""


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP])
def test_interrupted_batch_exits_130_and_records_its_runs_interrupted(tmp_path: Path,
                                                                       sig: int) -> None:
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "rows.jsonl").write_text("".join(f'{{"i": {i}}}\n' for i in range(4)))
    proc = popen("batch", "slow.yaml", "--inputs", "rows.jsonl", "--concurrency", "2",
                 "--state", "runs.db", cwd=tmp_path)
    out, err = interrupt_once(proc, tmp_path / "started-0", tmp_path / "started-1", sig=sig)
    assert proc.returncode == 130, err
    assert "Traceback" not in err
    assert err.strip().endswith("resume a row's run with: plait resume RUN_ID --state "
                                f"{tmp_path.resolve() / 'runs.db'}")
    rows = [json.loads(line) for line in out.splitlines()]
    assert [(r["line"], r["status"]) for r in rows] == [
        (1, "interrupted"), (2, "interrupted"), (3, "interrupted"), (4, "interrupted")]
    assert rows[0]["run_id"] and rows[1]["run_id"]
    assert rows[2]["run_id"] is None and rows[3]["run_id"] is None  # never started
    assert not (tmp_path / "started-2").exists()
    store = RunStore.open(str(tmp_path / "runs.db"))
    statuses = sorted(run.status for run in store.list_runs())
    store.close()
    assert statuses == ["interrupted", "interrupted"]  # resumable, not left "running"


def test_validate_refuses_a_workflow_that_calls_itself(tmp_path: Path) -> None:
    """A run refuses sub-workflow recursion, so validate must not call such a file ok."""
    (tmp_path / "self.yaml").write_text("version: 1\nname: me\nsteps:\n  again:\n"
                                        "    workflow: self.yaml\n")
    (tmp_path / "a.yaml").write_text("version: 1\nname: a\nsteps:\n  b:\n"
                                     "    workflow: sub/b.yaml\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.yaml").write_text("version: 1\nname: b\nsteps:\n  a:\n"
                                             "    workflow: ../a.yaml\n")
    out = plait("validate", "self.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert out.stderr.startswith("self.yaml:5:15: sub-workflow self.yaml calls this workflow "
                                 "again: self.yaml -> self.yaml at 'steps.again.workflow' "
                                 "(a workflow cannot call itself"), out.stderr
    out = plait("validate", "a.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert "a.yaml:5:15: sub-workflow sub/b.yaml calls this workflow again: a.yaml -> " \
           "sub/b.yaml -> a.yaml" in out.stderr
    run = plait("run", "a.yaml", cwd=tmp_path)
    assert run.returncode == 2 and not (tmp_path / ".plait").exists()  # nothing ran


def test_validate_refuses_a_sub_workflow_that_recurses_below(tmp_path: Path) -> None:
    (tmp_path / "top.yaml").write_text("version: 1\nname: top\nsteps:\n  s:\n"
                                       "    workflow: loop.yaml\n")
    (tmp_path / "loop.yaml").write_text("version: 1\nname: loop\nsteps:\n  s:\n"
                                        "    workflow: loop.yaml\n")
    out = plait("validate", "top.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert "top.yaml:5:15: sub-workflow loop.yaml calls itself: loop.yaml -> loop.yaml" \
           in out.stderr


def test_batch_output_that_cannot_be_written_is_a_usage_error(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_text('{"who": "ada"}\n')
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", "--output", "no/such/out.jsonl",
                "--state", "runs.db", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "error: cannot write no/such/out.jsonl: No such file or directory" in out.stderr
    assert "(hint: " in out.stderr
    assert not (tmp_path / "runs.db").exists()  # nothing ran


def test_a_failed_sub_workflow_says_which_of_its_steps_failed_and_how_to_fix_it(
        tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text(
        "version: 1\nname: child\npolicies:\n  lo: {level: low}\ndefaults: {policy: lo}\n"
        "inputs:\n  data: {type: object, default: {}}\nsteps:\n  ok:\n    run: 'true'\n"
        "  bad:\n    needs: [ok]\n    run: \"echo ${{ inputs.data.missing.deeper }}\"\n")
    (tmp_path / "parent.yaml").write_text("version: 1\nname: parent\nsteps:\n  kid:\n"
                                          "    workflow: sub/child.yaml\n")
    (tmp_path / "elsewhere").mkdir()
    out = plait("run", "../parent.yaml", "--json", cwd=tmp_path / "elsewhere")
    assert out.returncode == 1, out.stderr
    error = json.loads(out.stdout)["steps"]["kid"]["error"]
    assert error["message"].startswith("sub-workflow child failed in step bad: ")
    assert "child.yaml:13:" in error["message"]
    assert error["hint"] == "use the default filter for values that may be missing, e.g. " \
                            "x | default('')"
    assert error["run"]  # the child's own run, to inspect


def test_max_parallel_without_foreach_is_a_spec_error(tmp_path: Path) -> None:
    """It caps the items of a foreach; on a plain step it would silently do nothing."""
    (tmp_path / "wf.yaml").write_text("version: 1\nname: mp\nproviders:\n  e: {kind: echo}\n"
                                      "steps:\n  a:\n    max_parallel: 3\n    llm: e\n"
                                      "    prompt: hi\n")
    out = plait("validate", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert out.stderr.startswith("wf.yaml:7:5: max_parallel is set on a step without "
                                 "`foreach:` at 'steps.a.max_parallel' ("), out.stderr


GATED = """version: 1
name: gated
inputs:
  wait: {type: boolean}
policies:
  lo: {level: low}
defaults: {policy: lo}
steps:
  s:
    run: "if ${{ inputs.wait | lower }}; then while [ ! -e go ]; do sleep 0.05; done; fi"
"""


def test_batch_writes_each_result_as_soon_as_the_rows_before_it_are_done(
        tmp_path: Path) -> None:
    """A long batch shows its progress (and a killed one keeps its results so far)."""
    (tmp_path / "gated.yaml").write_text(GATED)
    (tmp_path / "rows.jsonl").write_text('{"wait": false}\n{"wait": true}\n{"wait": false}\n')
    proc = popen("batch", "gated.yaml", "--inputs", "rows.jsonl", "--output", "out.jsonl",
                 "--concurrency", "3", "--state", "runs.db", cwd=tmp_path)
    try:
        deadline = time.monotonic() + 20
        out = tmp_path / "out.jsonl"
        while not (out.exists() and out.read_text().endswith("\n")):
            assert time.monotonic() < deadline, "the first row's result never appeared"
            time.sleep(0.05)
        first = out.read_text().splitlines()
        assert [json.loads(line)["line"] for line in first] == [1]  # row 3 waits for row 2
        (tmp_path / "go").touch()
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            os.killpg(proc.pid, signal.SIGKILL)
    assert proc.returncode == 0, err
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert [(r["line"], r["status"]) for r in rows] == [
        (1, "succeeded"), (2, "succeeded"), (3, "succeeded")]


def test_a_batch_row_missing_an_input_is_told_to_add_it_to_the_row(tmp_path: Path) -> None:
    """Not `-i NAME=VALUE`: a batch takes no -i; the row is what lacks the input."""
    (tmp_path / "wf.yaml").write_text(GOOD.replace("{type: string, default: you}",
                                                   "{type: string}"))
    (tmp_path / "rows.jsonl").write_text('{"who": "ada"}\n{}\n')
    out = plait("batch", "wf.yaml", "--inputs", "rows.jsonl", "--state", "runs.db",
                cwd=tmp_path)
    assert out.returncode == 1, out.stderr
    error = [json.loads(line) for line in out.stdout.splitlines()][1]["error"]
    assert error["message"] == "missing required input: who"
    assert error["hint"] == 'add it to the row\'s JSON object, e.g. {"who": ...}'


def test_interrupting_a_run_interrupts_its_sub_workflow_run_too(tmp_path: Path) -> None:
    """The child's record must say `interrupted`, not stay `running` (shown as `died`)."""
    (tmp_path / "child.yaml").write_text(SLOW.replace("name: slow", "name: child"))
    (tmp_path / "parent.yaml").write_text("version: 1\nname: parent\nsteps:\n  kid:\n"
                                          "    workflow: child.yaml\n    with: {i: 0}\n")
    proc = popen("run", "parent.yaml", "--state", "runs.db", cwd=tmp_path)
    _, err = interrupt_once(proc, tmp_path / "started-0")
    assert proc.returncode == 130, err
    store = RunStore.open(str(tmp_path / "runs.db"))
    runs = {run.workflow_name: run.status for run in store.list_runs()}
    store.close()
    assert runs == {"parent": "interrupted", "child": "interrupted"}


def _chain(tmp_path: Path, files: int) -> None:
    """d0.yaml calls d1.yaml ... calls d{files - 1}.yaml, an echo step."""
    for i in range(files):
        body = (f"steps:\n  s:\n    workflow: d{i + 1}.yaml\n" if i < files - 1 else
                "providers:\n  e: {kind: echo}\nsteps:\n  s:\n    llm: e\n    prompt: hi\n")
        (tmp_path / f"d{i}.yaml").write_text(f"version: 1\nname: d{i}\n" + body)


def test_sub_workflows_nested_too_deep_are_refused_before_the_run_starts(
        tmp_path: Path) -> None:
    """A run refuses to nest deeper than 8 files; validate (and so the run's own check
    before it starts) says so at the first call of the chain, not 8 levels into the run."""
    _chain(tmp_path, 9)
    for command in (("validate", "d0.yaml"), ("run", "d0.yaml", "--state", "runs.db")):
        out = plait(*command, cwd=tmp_path)
        assert out.returncode == 2, out.stdout
        assert out.stderr == (
            "d0.yaml:5:15: sub-workflows nested 9 levels deep through d1.yaml, deeper than the "
            "8 a run allows: d0.yaml -> d1.yaml -> d2.yaml -> d3.yaml -> d4.yaml -> d5.yaml -> "
            "d6.yaml -> d7.yaml -> d8.yaml at 'steps.s.workflow' (call fewer levels deep: let a "
            "workflow call the files below its child itself)\n"), out.stderr
    assert not (tmp_path / "runs.db").exists()  # nothing ran
    assert plait("validate", "d1.yaml", cwd=tmp_path).returncode == 0  # 8 files: allowed
    out = plait("run", "d1.yaml", "--json", "--no-record", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert json.loads(out.stdout)["steps"]["s"]["output"] == {}


@pytest.mark.anyio
async def test_the_run_still_refuses_to_nest_deeper_than_validate_allows(
        tmp_path: Path) -> None:
    """The run's own guard stays (a file may change after the check): a run of d1.yaml
    from within d0.yaml's run is one level too deep at d8.yaml."""
    from engine import load
    from engine.executor import run_workflow

    _chain(tmp_path, 9)
    result = await run_workflow(load(tmp_path / "d1.yaml"), {}, record_state=False,
                                stack=(str((tmp_path / "d0.yaml").resolve()),))
    assert result.status == "failed"
    error = result.steps["s"].error
    assert error is not None
    assert error["message"].endswith("sub-workflows nested deeper than 8 levels: d0.yaml -> "
                                     "d1.yaml -> d2.yaml -> d3.yaml -> d4.yaml -> d5.yaml -> "
                                     "d6.yaml -> d7.yaml -> d8.yaml"), error["message"]
    assert error["hint"] == "call fewer levels deep: let a workflow call the files below " \
                            "its child itself"


def test_validate_reports_the_errors_of_a_sub_workflow_file(tmp_path: Path) -> None:
    """`plait validate parent.yaml` in CI must not pass when the child it calls is broken."""
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "child.yaml").write_text(
        "version: 1\nname: child\ninputs:\n  x: {type: integer}\nsteps:\n  a:\n    run: ls\n"
        "    promt: x\n")
    (tmp_path / "parent.yaml").write_text("version: 1\nname: parent\nsteps:\n  kid:\n"
                                          "    workflow: sub/child.yaml\n    with: {x: 1}\n")
    out = plait("validate", "parent.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert lines[0].startswith("parent.yaml:5:15: sub-workflow sub/child.yaml is not a valid "
                               "workflow (1 error, shown below) at 'steps.kid.workflow'")
    assert lines[1].startswith("sub/child.yaml:8:5: unknown key 'promt' at 'steps.a.promt'")
    assert len(lines) == 2


def test_json_and_jsonl_mixed_up_get_a_hint_to_the_right_command(tmp_path: Path) -> None:
    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "pretty.json").write_text('{\n  "who": "ada"\n}\n')
    (tmp_path / "rows.jsonl").write_text('{"who": "ada"}\n{"who": "bob"}\n')
    batch = plait("batch", "good.yaml", "--inputs", "pretty.json", cwd=tmp_path)
    assert batch.returncode == 2
    assert "pretty.json:1: not JSON: " in batch.stderr
    assert "(hint: each line must be a whole JSON object (JSON Lines); for one run with a " \
           "JSON file use plait run FILE --inputs FILE.json)" in batch.stderr
    run = plait("run", "good.yaml", "--inputs", "rows.jsonl", cwd=tmp_path)
    assert run.returncode == 2
    assert "cannot read inputs file rows.jsonl: Extra data: line 2 column 1" in run.stderr
    assert "(hint: --inputs takes one JSON object; for one run per line of a JSONL file use " \
           "plait batch FILE --inputs rows.jsonl)" in run.stderr


def test_ctrl_c_in_any_command_exits_130(tmp_path: Path) -> None:
    """Not click's `Aborted!` with exit 1: scripts and CI tell an interruption by its 130."""
    (tmp_path / "t.yaml").write_text(SLOW.replace("inputs:\n  i: {type: integer}\n", "")
                                     .replace("${{ inputs.i }}", "0")
                                     + "tests:\n  - name: slow\n")
    proc = popen("test", "t.yaml", cwd=tmp_path)
    _, err = interrupt_once(proc, tmp_path / "started-0")
    assert proc.returncode == 130, err


def test_sub_workflow_runs_are_recorded_in_the_database_of_the_run_that_called_them(
        tmp_path: Path) -> None:
    """Not in a `.plait/` of their own beside the child file, where `plait runs` from the
    parent's directory cannot find them (and which may not be writable)."""
    (tmp_path / "lib").mkdir()
    (tmp_path / "lib" / "child.yaml").write_text(
        "version: 1\nname: child\nproviders:\n  e: {kind: echo}\nsteps:\n  a:\n    llm: e\n"
        "    prompt: hi\noutputs:\n  o: ${{ steps.a.output }}\n")
    (tmp_path / "parent.yaml").write_text("version: 1\nname: parent\nsteps:\n  kid:\n"
                                          "    workflow: lib/child.yaml\n")
    out = plait("run", "parent.yaml", "--json", cwd=tmp_path)
    assert out.returncode == 0, out.stderr
    assert not (tmp_path / "lib" / ".plait").exists()
    store = RunStore.open(None, workflow_path=tmp_path / "parent.yaml", create=False)
    runs = {run.workflow_name: run for run in store.list_runs()}
    store.close()
    assert set(runs) == {"parent", "child"}
    assert runs["child"].parent_run_id == runs["parent"].run_id


def test_a_mapping_foreach_gives_key_value_lists_that_an_array_input_takes(
        tmp_path: Path) -> None:
    """Documented as [key, value] pairs: a sub-workflow's `array` input must accept one."""
    (tmp_path / "pair.yaml").write_text(
        "version: 1\nname: pair\ninputs:\n  pair: {type: array}\nproviders:\n  e: {kind: echo}\n"
        "steps:\n  a: {llm: e, prompt: hi}\noutputs:\n  o: ${{ inputs.pair }}\n")
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: wf\nsteps:\n  each:\n    foreach: \"${{ {'a': 1, 'b': 2} }}\"\n"
        "    workflow: pair.yaml\n    with: {pair: '${{ item }}'}\n")
    out = plait("run", "wf.yaml", "--json", "--state", "runs.db", cwd=tmp_path)
    assert out.returncode == 0, out.stdout + out.stderr
    assert json.loads(out.stdout)["steps"]["each"]["output"] == [{"o": ["a", 1]},
                                                                 {"o": ["b", 2]}]


def test_an_expression_as_the_sub_workflow_path_is_a_spec_error(tmp_path: Path) -> None:
    """It is not evaluated: validate passed it, and the run looked for a file named
    `${{ inputs.f }}`."""
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: dyn\ninputs:\n  f: {type: string, default: c.yaml}\nsteps:\n"
        "  kid:\n    workflow: ${{ inputs.f }}\n")
    out = plait("validate", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    assert out.stderr.startswith("wf.yaml:7:15: `workflow:` is a file path, not an expression "
                                 "at 'steps.kid.workflow' (name the file; to choose between "
                                 "files, give each its own step with an `if:`)"), out.stderr


def test_validate_checks_the_type_of_literal_sub_workflow_inputs(tmp_path: Path) -> None:
    (tmp_path / "child.yaml").write_text(
        "version: 1\nname: child\ninputs:\n  x: {type: integer}\n  s: {type: string}\n"
        "providers:\n  e: {kind: echo}\nsteps:\n  a: {llm: e, prompt: hi}\n")
    (tmp_path / "wf.yaml").write_text(
        "version: 1\nname: wf\ninputs:\n  n: {type: integer, default: 1}\nsteps:\n"
        "  bad:\n    workflow: child.yaml\n    with: {x: notanint, s: hi}\n"
        "  fine:\n    workflow: child.yaml\n"
        "    with: {x: '${{ inputs.n }}', s: 'n=${{ inputs.n }}'}\n")
    out = plait("validate", "wf.yaml", cwd=tmp_path)
    assert out.returncode == 2, out.stdout
    lines = out.stderr.strip().splitlines()
    assert lines == ["wf.yaml:8:15: sub-workflow child.yaml: input 'x' must be of type "
                     "integer, got string \"notanint\" at 'steps.bad.with.x' (give it an "
                     "integer)"]


def test_a_batch_missing_a_declared_secret_stops_before_any_row(tmp_path: Path) -> None:
    """Like `plait run`: exit 2 once, not the same error on every one of N rows."""
    (tmp_path / "wf.yaml").write_text(GOOD.replace("steps:", "secrets: [PLAIT_TEST_NOPE]\n"
                                                            "steps:"))
    (tmp_path / "rows.jsonl").write_text('{"who": "ada"}\n{"who": "bob"}\n')
    assert "PLAIT_TEST_NOPE" not in os.environ
    out = plait("batch", "wf.yaml", "--inputs", "rows.jsonl", "--state", "runs.db",
                cwd=tmp_path)
    assert out.returncode == 2 and out.stdout == "", out.stdout
    assert out.stderr.startswith("error: secret PLAIT_TEST_NOPE is declared in `secrets:` but "
                                 "is not set in the environment or in .env (hint: export "
                                 "PLAIT_TEST_NOPE=..."), out.stderr
    assert not (tmp_path / "runs.db").exists()


@pytest.mark.skipif(not Path("/dev/full").exists(), reason="needs /dev/full")
@pytest.mark.parametrize("to_stdout", [True, False])
def test_batch_results_that_cannot_be_written_stop_the_batch_with_an_error(
        tmp_path: Path, to_stdout: bool) -> None:
    """`plait batch ... > results.jsonl` on a full disk (or --output on one) ended in a raw
    ExceptionGroup traceback, and the rows in flight were torn down unrecorded."""
    import subprocess
    import sys

    from tests.cli.test_cli import ROOT

    (tmp_path / "good.yaml").write_text(GOOD)
    (tmp_path / "rows.jsonl").write_text("".join(f'{{"who": "p{i}"}}\n' for i in range(6)))
    args = ["batch", "good.yaml", "--inputs", "rows.jsonl", "--concurrency", "1"]
    with open("/dev/full", "w") as full:
        done = subprocess.run([sys.executable, "-m", "runners.cli.main", *args,
                               *([] if to_stdout else ["--output", "/dev/full"])],
                              cwd=tmp_path, stdout=full if to_stdout else subprocess.PIPE,
                              stderr=subprocess.PIPE, text=True, timeout=60, check=False,
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr and "ExceptionGroup" not in done.stderr, done.stderr
    where = "stdout" if to_stdout else "/dev/full"
    assert f"error: cannot write the results to {where}: No space left on device" \
        in done.stderr, done.stderr
    assert "the batch stopped" in done.stderr, done.stderr
    store = RunStore.open(tmp_path / ".plait" / "runs.db", create=False)
    try:
        runs = store.list_runs(limit=None)
    finally:
        store.close()
    assert len(runs) < 6, "the batch went on running rows whose results could not be written"
    assert all(r.status in ("succeeded", "interrupted") for r in runs), runs


def test_batch_output_that_is_the_rows_file_is_refused(tmp_path: Path) -> None:
    """`--inputs rows.jsonl --output rows.jsonl` emptied the rows file when it opened it for
    the results: a typo lost every row the batch was given."""
    (tmp_path / "good.yaml").write_text(GOOD)
    rows = '{"who": "ada"}\n{"who": "bob"}\n'
    (tmp_path / "rows.jsonl").write_text(rows)
    out = plait("batch", "good.yaml", "--inputs", "rows.jsonl", "--output", "./rows.jsonl",
                "--state", "runs.db", cwd=tmp_path)
    assert out.returncode == 2 and "Traceback" not in out.stderr, out.stderr
    assert "error: --output rows.jsonl is the rows file: writing the results there would " \
           "overwrite the rows (hint: give --output another file" in out.stderr
    assert (tmp_path / "rows.jsonl").read_text() == rows
    assert not (tmp_path / "runs.db").exists()  # nothing ran
