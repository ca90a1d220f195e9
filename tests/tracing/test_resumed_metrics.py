"""A resumed run restores the steps that finished: they are not run again, so their time,
tokens and cost are not counted again in the metrics (the run that made them counted them).
Their spans are still there, with the reason, as instants of the resumed run."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load

pytestmark = pytest.mark.anyio

WORKFLOW = """\
version: 1
name: resumable
providers:
  p: {kind: echo, model: echo-1}
policies:
  open: {level: low}
defaults: {policy: open}
steps:
  ask:
    llm: p
    prompt: "a prompt long enough to cost a few tokens"
  check:
    needs: [ask]
    run: [sh, -c, "test -f ready"]
"""


def _sums(collected: Any) -> tuple[dict[str, int], dict[str, int]]:
    metrics = collected.metrics()
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in metrics["plait.tokens"]}
    durations = {p.attributes["plait.step.status"]: p.count
                 for p in metrics["plait.step.duration"]}
    return tokens, durations


async def test_restored_steps_are_not_counted_again(tmp_path: Path, collected: Any) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    workflow = load(tmp_path / "wf.yaml")
    state = tmp_path / "runs.db"
    first = await run_workflow(workflow, {}, tracer=collected.tracer, state_location=state,
                               listeners=[])
    assert first.status == "failed"
    tokens, durations = _sums(collected)
    assert tokens["input"] > 0 and durations == {"succeeded": 1, "failed": 1}
    (tmp_path / "ready").touch()
    resumed = await run_workflow(workflow, {}, tracer=collected.tracer, state_location=state,
                                 resume=first.run_id, listeners=[])
    assert resumed.status == "succeeded", resumed.steps["check"].error
    again, durations = _sums(collected)
    assert again == tokens  # `ask` was restored: its tokens were counted by the first run
    assert durations == {"succeeded": 2, "failed": 1}  # `check` ran again; `ask` did not
    asks = collected.named("plait.step ask")
    assert len(asks) == 2
    restored = asks[1]
    assert restored.attributes["plait.step.reason"].startswith("restored from")
    # an instant span inside the resumed run's (it was not run again): not the first run's
    # times, which put it before its parent and stretched the trace back to the first run
    run = next(s for s in collected.named("plait.run")
               if s.context.span_id == restored.parent.span_id)
    assert run.start_time <= restored.start_time == restored.end_time <= run.end_time
