"""The run as an event stream, on asyncio and trio, and streamed model output."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.executor import (
    RunFinished,
    RunStarted,
    StepChunk,
    StepFinished,
    StepStarted,
    run_workflow,
    stream_run,
)
from engine.spec.loader import load_text

WORKFLOW = """\
version: 1
name: events
providers:
  local: {kind: echo, options: {latency: 5ms}}
policies:
  open: {level: low}
steps:
  ask:
    llm: local
    prompt: "tell me about plait"
    stream: true
  fan:
    foreach: ${{ [1, 2, 3] }}
    max_parallel: 2
    llm: local
    prompt: "item ${{ item }} after ${{ steps.ask.output }}"
  shell:
    run: "echo done"
    policy: open
    needs: [fan]
  never:
    if: ${{ false }}
    run: "echo no"
    policy: open
outputs:
  count: ${{ steps.fan.output | length }}
"""


@pytest.fixture(params=["asyncio", "trio"])
def anyio_backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


pytestmark = pytest.mark.anyio


async def test_stream_run_yields_typed_events_in_order(tmp_path: Path) -> None:
    wf = load_text(WORKFLOW, str(tmp_path / "events.yaml"))
    events: list[Any] = [event async for event in stream_run(wf, {}, record_state=False)]
    assert isinstance(events[0], RunStarted) and isinstance(events[-1], RunFinished)
    assert events[-1].status == "succeeded" and events[-1].outputs == {"count": 3}
    started = [e.step_id for e in events if isinstance(e, StepStarted)]
    finished = {e.step_id: e for e in events if isinstance(e, StepFinished)}
    assert started.index("ask") < started.index("fan") < started.index("shell")
    assert finished["never"].status == "skipped" and "never" not in started
    assert finished["fan"].output == [f"echo: item {i} after echo: tell me about plait"
                                      for i in (1, 2, 3)]
    chunks = "".join(e.text for e in events if isinstance(e, StepChunk) and e.step_id == "ask")
    assert chunks == "echo: tell me about plait"


async def test_listeners_see_the_same_run_with_records(tmp_path: Path) -> None:
    wf = load_text(WORKFLOW, str(tmp_path / "events.yaml"))
    seen: list[Any] = []
    result = await run_workflow(wf, {}, listeners=[seen.append])
    assert result.ok
    assert sum(isinstance(e, StepFinished) for e in seen) == 4
    assert (tmp_path / ".plait" / "runs.db").is_file()
