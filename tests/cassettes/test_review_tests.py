"""Review of `plait test` and cassettes as a user snapshot-testing workflows offline in CI."""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from engine.executor import run_workflow
from engine.spec.loader import load
from tests.cassettes.conftest import write_workflow
from tests.cassettes.test_plait_test import fallback, plait  # noqa: F401  (fixture)


def test_a_k_that_selects_no_case_says_so_not_add_tests(fallback: Path) -> None:  # noqa: F811
    """`-k typo` on workflows that do have cases said "no test cases found (add `tests:` to a
    workflow file)": the wrong fix, the cases are there and only the filter matched none."""
    done = plait("test", str(fallback), "-k", "no-such-case")
    assert done.returncode == 2
    assert "add `tests:`" not in done.stderr
    assert "no test case matches -k 'no-such-case'" in done.stderr
    assert "outage" in done.stderr  # the cases there are, to pick from


RUN_FLOW = """
version: 1
name: stamped
inputs:
  items: {type: array, default: [a, b]}
providers:
  p: {kind: echo, model: m}
steps:
  ask:
    foreach: ${{ inputs.items }}
    llm: p
    prompt: "Item ${{ item }} of run ${{ run.id }} started ${{ run.started_at }}"
outputs:
  answers: ${{ steps.ask.output }}
  run: ${{ run.id }}
tests:
  - name: stamped
    cassette: tape
"""


@pytest.mark.anyio
async def test_run_id_and_started_at_replay_as_recorded(tmp_path: Path) -> None:
    """A prompt using `run.id` or `run.started_at` (a trace tag, a report header) never
    replayed: every replay is a new run, so each call missed; and an output holding the run
    id could not be snapshotted. Under replay they are the recorded run's."""
    wf = load(write_workflow(tmp_path, RUN_FLOW))
    recorded = await run_workflow(wf, record_dir=tmp_path / "tape", record_state=False)
    assert recorded.ok
    replayed = await run_workflow(wf, replay_dir=tmp_path / "tape", record_state=False)
    assert replayed.ok, replayed.error
    assert replayed.run_id != recorded.run_id  # the run itself is a new one
    assert replayed.outputs == recorded.outputs
    assert replayed.outputs["run"] == recorded.run_id
    # and through `plait test`: record, snapshot, then pass offline again
    assert plait("test", str(tmp_path), "--record", "--update-snapshots").returncode == 0
    done = plait("test", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_an_old_cassette_without_the_run_header_still_replays(tmp_path: Path) -> None:
    """A cassette recorded before the `run:` header: a workflow not using run.* replays."""
    flow = RUN_FLOW.replace(" of run ${{ run.id }} started ${{ run.started_at }}", "")
    flow = flow.replace("  run: ${{ run.id }}\n", "")
    write_workflow(tmp_path, flow)
    assert plait("test", str(tmp_path), "--record", "--update-snapshots").returncode == 0
    tape = tmp_path / "tape" / "stamped.cassette.yaml"
    data = yaml.safe_load(tape.read_text())
    assert "run" in data
    del data["run"]
    tape.write_text(yaml.safe_dump(data))
    done = plait("test", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr


def test_record_records_a_shared_cassette_once(tmp_path: Path) -> None:
    """Two cases sharing a cassette (same inputs, as validate requires): `plait test --record
    --update-snapshots` recorded it live for each case in turn, so the first case's snapshot
    held its own live reply while the cassette held the second case's; with a model that
    does not answer the same twice (here: the run id in an output), the next `plait test`
    failed at once. The later case now replays what the earlier one recorded."""
    write_workflow(tmp_path, """
version: 1
name: shared
providers:
  p: {kind: echo, model: m}
steps:
  a: {llm: p, prompt: "hi"}
outputs:
  o: ${{ steps.a.output }}
  rid: ${{ run.id }}
tests:
  - name: one
    cassette: tape
  - name: two
    cassette: tape
    assert: [{output: o, contains: hi}]
""")
    done = plait("test", str(tmp_path), "--record", "--update-snapshots")
    assert done.returncode == 0, done.stdout + done.stderr
    done = plait("test", str(tmp_path))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "2 passed, 0 failed" in done.stdout


def test_the_summary_counts_a_workflow_file_that_cannot_be_loaded(
        fallback: Path) -> None:  # noqa: F811
    """A directory with one invalid workflow: the last line said "1 passed, 0 failed, 1 case
    in 2 workflow files" and plait test exited 2: a CI log read from its end looked green."""
    (fallback / "broken.yaml").write_text(
        "version: 1\nname: broken\nsteps:\n  a: {llm: nope, prompt: hi}\n")
    done = plait("test", str(fallback))
    assert done.returncode == 2
    last = done.stdout.strip().splitlines()[-1]
    assert last.startswith("1 passed, 0 failed"), done.stdout
    assert "1 workflow file refused" in last
