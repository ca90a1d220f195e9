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
    # stopped with its parent, the child ends interrupted, as a run of its own would
    assert child.attributes["plait.run.status"] == "interrupted"
    assert child.status.status_code is StatusCode.ERROR
    wait = collected.one("plait.step wait")
    assert wait.parent.span_id == child.context.span_id
    for span in (wait, step):
        assert span.attributes["plait.step.status"] == "cancelled"
        assert span.attributes["error.type"] == "cancelled"
        assert span.status.status_code is StatusCode.ERROR


FAN = """\
version: 1
name: fan
steps:
  each:
    foreach: ${{ [1, 2] }}
    retry: {attempts: 2, on: [command]}
    run: "sleep 20"
  boom:
    run: "sleep 0.3; exit 3"
"""


async def test_cancelled_items_and_attempts_say_so(tmp_path: Path, collected: Any) -> None:
    """Not the cancel scope's repr (task and file names of the event loop) nor a generic
    `error`: status ERROR with description and error.type `cancelled`."""
    (tmp_path / "fan.yaml").write_text(FAN)
    result = await run_workflow(load(tmp_path / "fan.yaml"), {}, tracer=collected.tracer,
                                record_state=False, environ={"PATH": "/usr/bin:/bin"})
    assert result.status == "failed"
    parts = [collected.one(f"plait.item each[{i}]") for i in range(2)] + \
        collected.named("plait.attempt each #1")
    assert len(parts) == 4
    for span in parts:
        assert span.status.status_code is StatusCode.ERROR
        assert span.status.description == "cancelled"
        assert span.attributes["error.type"] == "cancelled"
        (event,) = span.events
        assert event.attributes["exception.type"] == "cancelled"


async def test_a_cancelled_tool_call_says_so(collected: Any) -> None:
    import anyio

    wrapper = collected.tracer.tool_wrapper()

    async def never_answers() -> Any:
        await anyio.sleep(30)

    with anyio.move_on_after(0.05):
        await wrapper("files", "read_file", {}, never_answers)
    span = collected.one("execute_tool read_file")
    assert span.status.status_code is StatusCode.ERROR
    assert span.status.description == "cancelled"
    assert span.attributes["error.type"] == "cancelled"
