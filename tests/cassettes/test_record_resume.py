"""`--record` with `--resume`: a refused resume leaves the cassette alone, a resume that runs
keeps the interactions of the steps it restored (when the file is the one that run wrote)."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from engine.cassettes import read_cassette
from engine.errors import StateError
from engine.executor import run_workflow
from engine.spec.loader import load
from tests.cassettes.conftest import write_workflow

pytestmark = pytest.mark.anyio

FLOW = """
version: 1
name: f
providers:
  ok: {kind: echo, model: m}
  bad: {kind: echo, model: m, options: {failure_rate: 1.0}}
steps:
  a: {llm: ok, prompt: "first!"}
  b: {llm: bad, prompt: "second ${{ steps.a.output }}", retry: {attempts: 1}}
outputs:
  b: ${{ steps.b.output }}
"""
FIXED = FLOW.replace("b: {llm: bad,", "b: {llm: ok,")


async def _failed_run(tmp_path: Path) -> tuple[str, Path]:
    wf = load(write_workflow(tmp_path, FLOW))
    result = await run_workflow(wf, record_dir=tmp_path / "tape",
                                state_location=tmp_path / "runs.db")
    assert result.status == "failed"
    return result.run_id, tmp_path / "tape" / "f.cassette.yaml"


def _steps(tape: Path) -> list[tuple[str, str]]:
    return [(i["step"], "error" if "error" in i else "response")
            for i in read_cassette(tape)["interactions"]]


async def test_a_refused_resume_leaves_the_cassette_untouched(tmp_path: Path) -> None:
    run_id, tape = await _failed_run(tmp_path)
    before = tape.read_bytes()
    assert _steps(tape) == [("a", "response"), ("b", "error")]
    changed = load(write_workflow(tmp_path, FLOW.replace("first!", "first?")))
    with pytest.raises(StateError, match="the workflow changed for finished step"):
        await run_workflow(changed, record_dir=tmp_path / "tape",
                           state_location=tmp_path / "runs.db", resume=run_id)
    assert tape.read_bytes() == before


async def test_a_resume_keeps_the_restored_steps_interactions(tmp_path: Path) -> None:
    run_id, tape = await _failed_run(tmp_path)
    fixed = load(write_workflow(tmp_path, FIXED))
    resumed = await run_workflow(fixed, record_dir=tmp_path / "tape",
                                 state_location=tmp_path / "runs.db", resume=run_id)
    assert resumed.ok and resumed.steps["a"].attempts == 1
    assert _steps(tape) == [("a", "response"), ("b", "response")]
    # the cassette replays the whole run from scratch, every interaction used
    replayed = await run_workflow(fixed, replay_dir=tmp_path / "tape", record_state=False)
    assert replayed.ok and replayed.outputs == resumed.outputs


async def test_a_cassette_changed_since_is_not_taken_from(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    run_id, tape = await _failed_run(tmp_path)
    tape.write_text(tape.read_text().replace("echo: first!", "echo: edited"))
    fixed = load(write_workflow(tmp_path, FIXED))
    with caplog.at_level(logging.WARNING, logger="plait.cassettes"):
        resumed = await run_workflow(fixed, record_dir=tmp_path / "tape",
                                     state_location=tmp_path / "runs.db", resume=run_id)
    assert resumed.ok
    assert _steps(tape) == [("b", "response")]
    assert "restored step(s) a are not in the new cassette" in caplog.text


async def test_a_recorded_resume_runs_every_item_of_an_unfinished_foreach(
        tmp_path: Path) -> None:
    """Without a cassette a resume reuses a foreach step's finished items; with --record it
    runs them all, so the new cassette holds every item's call and replays the whole run.
    Seed 24: the echo provider's first two calls succeed, the third fails, the fourth
    succeeds (the resume's retry, allowed by `retry`, which does not make the step count as
    changed)."""
    flow = """
version: 1
name: f
providers:
  flaky: {kind: echo, model: m, options: {failure_rate: 0.5, seed: 24}}
steps:
  each:
    foreach: ["x", "y", "z"]
    max_parallel: 1
    llm: flaky
    prompt: "item ${{ item }}"
    retry: {attempts: 1}
outputs:
  got: ${{ steps.each.output }}
"""
    first = await run_workflow(load(write_workflow(tmp_path, flow)),
                               record_dir=tmp_path / "tape",
                               state_location=tmp_path / "runs.db")
    assert first.status == "failed" and "item 2" in first.steps["each"].error["message"]
    retried = load(write_workflow(tmp_path, flow.replace("attempts: 1", "attempts: 2")))
    resumed = await run_workflow(retried, record_dir=tmp_path / "tape",
                                 state_location=tmp_path / "runs.db", resume=first.run_id)
    assert resumed.ok
    assert resumed.outputs["got"] == ["echo: item x", "echo: item y", "echo: item z"]
    tape = tmp_path / "tape" / "f.cassette.yaml"
    assert _steps(tape) == [("each", "response")] * 2 + [("each", "error"),
                                                         ("each", "response")]
    replayed = await run_workflow(retried, replay_dir=tmp_path / "tape", record_state=False)
    assert replayed.ok and replayed.outputs == resumed.outputs
