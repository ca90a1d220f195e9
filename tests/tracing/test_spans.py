"""Spans of real runs, asserted by name, parent and attributes (GenAI and MCP conventions)."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry.trace import StatusCode

from engine.executor import run_workflow
from engine.spec.loader import load

ROOT = Path(__file__).resolve().parents[2]
pytestmark = pytest.mark.anyio

MAIN = """\
version: 1
name: traced
secrets: [MY_TOKEN]
providers:
  p: {kind: echo, model: echo-1, fallback: [q]}
  q: {kind: echo, model: echo-2}
  down: {kind: echo, model: echo-down, options: {failure_rate: 1.0}}
policies:
  open: {level: low}
defaults:
  policy: open
steps:
  ask:
    llm: p
    system: Be brief.
    prompt: "hello ${{ secrets.MY_TOKEN }}"
    options: {temperature: 0.5}
  never:
    if: ${{ false }}
    llm: p
    prompt: unused
  flaky:
    llm: down
    prompt: fails
    retry: {attempts: 2, backoff: constant, initial: 10ms, jitter: false, on: [unavailable]}
    continue_on_error: true
  child:
    workflow: child.yaml
    with: {text: "${{ steps.ask.output }}"}
"""
CHILD = """\
version: 1
name: child
inputs:
  text: {type: string}
providers:
  c: {kind: echo, model: echo-child}
steps:
  inner:
    llm: c
    prompt: "child got ${{ inputs.text }}"
outputs:
  out: ${{ steps.inner.output }}
"""
SECRET = "s3cr3t-T0KEN-value"


def _write(tmp_path: Path) -> Path:
    (tmp_path / "child.yaml").write_text(CHILD)
    main = tmp_path / "main.yaml"
    main.write_text(MAIN)
    return main


async def _run(path: Path, collected: Any, **options: Any) -> Any:
    return await run_workflow(load(path), {}, tracer=collected.tracer, record_state=False,
                              environ={"MY_TOKEN": SECRET, "PATH": "/usr/bin:/bin"},
                              **options)


def _by_id(spans: list[Any]) -> dict[int, Any]:
    return {s.context.span_id: s for s in spans}


async def test_run_step_and_llm_spans_nest(tmp_path: Path, collected: Any) -> None:
    result = await _run(_write(tmp_path), collected)
    assert result.status == "succeeded"
    runs = collected.named("plait.run")
    top = next(s for s in runs if s.attributes["plait.workflow"] == "traced")
    assert top.parent is None
    assert top.attributes["plait.run.id"] == result.run_id
    assert top.attributes["plait.run.status"] == "succeeded"
    ask = collected.one("plait.step ask")
    assert ask.parent.span_id == top.context.span_id
    assert ask.attributes["plait.step.kind"] == "llm"
    assert ask.attributes["plait.step.status"] == "succeeded"
    chat = next(s for s in collected.named("chat echo-1"))
    assert chat.parent.span_id == ask.context.span_id
    attrs = chat.attributes
    assert attrs["gen_ai.operation.name"] == "chat"
    assert attrs["gen_ai.provider.name"] == "plait.echo"
    assert attrs["gen_ai.request.model"] == "echo-1"
    assert attrs["gen_ai.response.model"] == "echo-1"
    assert attrs["gen_ai.request.temperature"] == 0.5
    assert attrs["gen_ai.usage.input_tokens"] > 0 and attrs["gen_ai.usage.output_tokens"] > 0
    assert tuple(attrs["gen_ai.response.finish_reasons"]) == ("stop",)
    # content is off by default
    assert not any(k.startswith("gen_ai.input") or k.startswith("gen_ai.output.messages")
                   for k in attrs)
    assert all(s.context.trace_id == top.context.trace_id for s in collected.spans())


async def test_skipped_failed_and_retried_steps(tmp_path: Path, collected: Any) -> None:
    await _run(_write(tmp_path), collected)
    never = collected.one("plait.step never")
    assert never.attributes["plait.step.status"] == "skipped"
    assert never.attributes["plait.step.kind"] == "llm"  # an instant span says its kind too
    assert never.status.status_code is StatusCode.UNSET
    flaky = collected.one("plait.step flaky")
    assert flaky.attributes["plait.step.status"] == "failed"
    assert flaky.attributes["plait.step.attempts"] == 2
    assert flaky.status.status_code is StatusCode.ERROR
    assert "simulated failure" in flaky.status.description
    names = [e.name for e in flaky.events]
    assert names.count("plait.retry") == 1 and "exception" in names
    calls = collected.named("chat echo-down")
    assert len(calls) == 2
    assert all(c.status.status_code is StatusCode.ERROR for c in calls)
    assert all(c.attributes["error.type"] == "Unavailable" for c in calls)
    # each attempt is a span under the step, and each call sits in its attempt
    attempts = sorted(collected.named("plait.attempt flaky #1") +
                      collected.named("plait.attempt flaky #2"),
                      key=lambda s: s.attributes["plait.attempt"])
    assert [a.attributes["plait.attempt"] for a in attempts] == [1, 2]
    assert all(a.parent.span_id == flaky.context.span_id for a in attempts)
    assert all(a.status.status_code is StatusCode.ERROR for a in attempts)
    by_id = _by_id(collected.spans())
    assert sorted(by_id[c.parent.span_id].attributes["plait.attempt"] for c in calls) == [1, 2]


FOREACH = """version: 1
name: fan
providers:
  p: {kind: echo, model: echo-fan}
steps:
  each:
    foreach: ${{ ['a', 'b', 'c'] }}
    llm: p
    prompt: "item ${{ item }}"
    retry: {attempts: 2}
"""


async def test_each_foreach_item_and_attempt_is_a_span(tmp_path: Path, collected: Any) -> None:
    path = tmp_path / "fan.yaml"
    path.write_text(FOREACH)
    result = await _run(path, collected)
    assert result.ok
    step = collected.one("plait.step each")
    items = [collected.one(f"plait.item each[{i}]") for i in range(3)]
    assert all(item.parent.span_id == step.context.span_id for item in items)
    by_id = _by_id(collected.spans())
    for index, item in enumerate(items):
        assert item.attributes["plait.item.index"] == index
        (attempt,) = [s for s in collected.named("plait.attempt each #1")
                      if s.attributes["plait.item.index"] == index]
        assert attempt.parent.span_id == item.context.span_id
        (chat,) = [s for s in collected.named("chat echo-fan")
                   if s.parent.span_id == attempt.context.span_id]
        assert by_id[chat.parent.span_id] is attempt


async def test_sub_workflow_run_is_a_child_of_its_step(tmp_path: Path, collected: Any) -> None:
    await _run(_write(tmp_path), collected)
    step = collected.one("plait.step child")
    child_run = next(s for s in collected.named("plait.run")
                     if s.attributes["plait.workflow"] == "child")
    assert child_run.parent.span_id == step.context.span_id
    inner = collected.one("plait.step inner")
    assert inner.parent.span_id == child_run.context.span_id
    assert collected.one("chat echo-child").parent.span_id == inner.context.span_id


async def test_content_capture_is_opt_in_and_redacted(tmp_path: Path, collected: Any) -> None:
    await _run(_write(tmp_path), collected, trace_content=True)
    chat = collected.named("chat echo-1")[0]
    messages = json.loads(chat.attributes["gen_ai.input.messages"])
    assert messages[0]["role"] == "user"
    assert messages[0]["parts"][0]["content"] == "hello ***"
    assert json.loads(chat.attributes["gen_ai.system_instructions"])[0]["content"] == \
        "Be brief."
    assert "gen_ai.output.messages" in chat.attributes
    dumped = "".join(s.to_json() for s in collected.spans())
    assert SECRET not in dumped


async def test_metrics(tmp_path: Path, collected: Any) -> None:
    await _run(_write(tmp_path), collected)
    metrics = collected.metrics()
    durations = {(p.attributes["plait.workflow"], p.attributes["plait.step.status"]): p.count
                 for p in metrics["plait.step.duration"]}
    # `never` was skipped: not timed
    assert durations == {("traced", "succeeded"): 2, ("traced", "failed"): 1,
                         ("child", "succeeded"): 1}
    tokens = {p.attributes["gen_ai.token.type"]: p.value for p in metrics["plait.tokens"]}
    assert tokens["input"] > 0 and tokens["output"] > 0
    assert sum(p.value for p in metrics["plait.retries"]) == 1


async def test_a_no_op_meter_provider_records_no_metrics(tmp_path: Path,
                                                         collected: Any) -> None:
    """The CLI's file and console targets have no metrics reader: it hands the tracer a
    no-op meter provider, and the spans are the same."""
    from opentelemetry.metrics import NoOpMeterProvider

    from engine.tracing import RunTracer

    tracer = RunTracer(collected.provider, NoOpMeterProvider())
    assert tracer._metrics is None
    result = await run_workflow(load(_write(tmp_path)), {}, tracer=tracer, record_state=False,
                                environ={"MY_TOKEN": SECRET})
    assert result.status == "succeeded"
    assert collected.one("plait.step flaky").attributes["plait.step.attempts"] == 2
    assert len(collected.named("plait.run")) == 2
    assert collected.metrics() == {}


TOOLS = """\
version: 1
name: tools
mcp_servers:
  files:
    command: {python}
    args: [-m, engine.mcp.servers.files, --root, data]
    env: {{PYTHONPATH: {root}}}
    policy: open
policies:
  open: {{level: low}}
steps:
  ls:
    tool: files.list_directory
    with: {{path: .}}
  bad:
    tool: files.read_file
    with: {{path: missing.txt}}
    continue_on_error: true
"""


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_tool_spans(tmp_path: Path, collected: Any) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "a.txt").write_text("hello")
    path = tmp_path / "tools.yaml"
    path.write_text(TOOLS.format(python=json.dumps(sys.executable), root=json.dumps(str(ROOT))))
    result = await run_workflow(load(path), {}, tracer=collected.tracer, record_state=False,
                                trace_content=True)
    assert result.status == "succeeded"
    ok = collected.one("execute_tool list_directory")
    assert ok.parent.span_id == collected.one("plait.step ls").context.span_id
    attrs = ok.attributes
    assert attrs["gen_ai.operation.name"] == "execute_tool"
    assert attrs["gen_ai.tool.name"] == "list_directory"
    assert attrs["mcp.method.name"] == "tools/call"
    assert attrs["plait.mcp.server"] == "files"
    assert attrs["network.transport"] == "pipe"
    assert "a.txt" in attrs["gen_ai.tool.call.result"]
    bad = collected.one("execute_tool read_file")
    assert bad.status.status_code is StatusCode.ERROR
    assert bad.attributes["error.type"] == "ToolError"  # as docs/tracing.md says
    assert "missing.txt" in bad.status.description
    assert bad.parent.span_id == collected.one("plait.step bad").context.span_id
    latency = collected.metrics()["plait.tool.duration"]
    assert {p.attributes["gen_ai.tool.name"] for p in latency} == {"list_directory",
                                                                   "read_file"}


async def test_no_tracer_no_spans(tmp_path: Path, collected: Any) -> None:
    result = await run_workflow(load(_write(tmp_path)), {}, record_state=False,
                                environ={"MY_TOKEN": SECRET})
    assert result.status == "succeeded" and collected.spans() == []


META = """\
version: 1
name: meta
mcp_servers:
  probe:
    command: {python}
    args: [-m, tests.tracing.meta_server]
    env: {{PYTHONPATH: {root}}}
    policy: open
policies:
  open: {{level: low}}
steps:
  look:
    tool: probe.meta
"""


@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_trace_context_reaches_the_mcp_server(tmp_path: Path, collected: Any) -> None:
    path = tmp_path / "meta.yaml"
    path.write_text(META.format(python=json.dumps(sys.executable), root=json.dumps(str(ROOT))))
    result = await run_workflow(load(path), {}, tracer=collected.tracer, record_state=False)
    assert result.status == "succeeded", result.error
    meta = result.steps["look"].output
    span = collected.one("execute_tool meta")
    version, trace_id, parent_id, _flags = meta["traceparent"].split("-")
    assert version == "00"
    assert int(trace_id, 16) == span.context.trace_id
    from opentelemetry import trace

    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # no global SDK: the MCP SDK's own client span is a no-op that carries the
        # execute_tool span's context
        assert int(parent_id, 16) == span.context.span_id
