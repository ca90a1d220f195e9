"""Spans of work that is cancelled: a step fails and the run stops the others. Every span
still ends (none is lost: an exporter only sees ended spans) and says it was cancelled."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from engine.executor import run_workflow
from engine.spec.loader import load

pytestmark = pytest.mark.anyio

MAIN = """\
version: 1
name: stops
steps:
  sub:
    workflow: slow.yaml
  boom:
    run: "sleep 0.3; exit 3"
"""
SLOW = """\
version: 1
name: slow
steps:
  wait:
    run: "sleep 20"
"""


async def _run(tmp_path: Path, collected: Any) -> Any:
    (tmp_path / "slow.yaml").write_text(SLOW)
    (tmp_path / "main.yaml").write_text(MAIN)
    return await run_workflow(load(tmp_path / "main.yaml"), {}, tracer=collected.tracer,
                              record_state=False, environ={"PATH": "/usr/bin:/bin"})


async def test_a_cancelled_sub_workflow_ends_its_spans(tmp_path: Path,
                                                       collected: Any) -> None:
    result = await _run(tmp_path, collected)
    assert result.status == "failed"
    spans = collected.spans()
    ids = {s.context.span_id for s in spans}
    orphans = [s.name for s in spans if s.parent is not None and s.parent.span_id not in ids]
    assert orphans == []
    step = collected.one("plait.step sub")
    child = next(s for s in collected.named("plait.run")
                 if s.attributes["plait.workflow"] == "slow")
    assert child.parent.span_id == step.context.span_id
    assert child.attributes["plait.run.status"] == "cancelled"
    assert child.status.status_code is StatusCode.ERROR
    wait = collected.one("plait.step wait")
    assert wait.parent.span_id == child.context.span_id
    assert wait.attributes["plait.step.status"] == "cancelled"
    assert wait.status.status_code is StatusCode.ERROR
