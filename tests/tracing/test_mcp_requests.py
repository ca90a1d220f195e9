"""`resource:` and `mcp_prompt:` steps get MCP client spans (``resources/read``,
``prompts/get <prompt>``) like tool calls get ``execute_tool``, against a real stdio MCP
server subprocess (tests/tracing/meta_server.py) that returns the `_meta` it received."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from opentelemetry import trace
from opentelemetry.trace import SpanKind, StatusCode

from engine.executor import run_workflow
from engine.spec.loader import load

ROOT = Path(__file__).resolve().parents[2]
SECRET = "s3cr3t-RES0URCE-token"
pytestmark = [pytest.mark.anyio, pytest.mark.parametrize("anyio_backend", ["asyncio"])]

READS = """\
version: 1
name: reads
secrets: [MY_TOKEN]
mcp_servers:
  probe:
    command: {python}
    args: [-m, tests.tracing.meta_server]
    env: {{PYTHONPATH: {root}}}
    policy: open
policies:
  open: {{level: low}}
defaults: {{policy: open, continue_on_error: true}}
steps:
  doc:
    resource: probe
    uri: "meta://doc/${{{{ secrets.MY_TOKEN }}}}"
  ask:
    mcp_prompt: probe.meta
    with: {{topic: "about ${{{{ secrets.MY_TOKEN }}}}"}}
  gone:
    resource: probe
    uri: meta://missing
  nope:
    mcp_prompt: probe.unknown
"""


def _workflow(tmp_path: Path) -> Path:
    path = tmp_path / "reads.yaml"
    path.write_text(READS.format(python=json.dumps(sys.executable),
                                 root=json.dumps(str(ROOT))))
    return path


async def _run(path: Path, collected: Any, **options: Any) -> Any:
    return await run_workflow(load(path), {}, tracer=collected.tracer, record_state=False,
                              environ={"MY_TOKEN": SECRET, "PATH": "/usr/bin:/bin"},
                              **options)


def _read(collected: Any, step: str, method: str = "resources/read") -> Any:
    """The MCP span under step `step`'s span."""
    parent = collected.one(f"plait.step {step}").context.span_id
    (span,) = [s for s in collected.spans()
               if s.name.startswith(method) and s.parent is not None
               and s.parent.span_id == parent]
    return span


def _traceparent(meta: dict[str, Any], span: Any) -> None:
    version, trace_id, parent_id, _flags = meta["traceparent"].split("-")
    assert version == "00"
    assert int(trace_id, 16) == span.context.trace_id
    if isinstance(trace.get_tracer_provider(), trace.ProxyTracerProvider):
        # no global SDK: the MCP SDK's own client span is a no-op carrying our span's context
        assert int(parent_id, 16) == span.context.span_id


async def test_resource_reads_and_prompt_gets_have_mcp_client_spans(
        tmp_path: Path, collected: Any) -> None:
    result = await _run(_workflow(tmp_path), collected)
    assert result.steps["doc"].status == "succeeded", result.steps["doc"].error
    assert result.steps["ask"].status == "succeeded", result.steps["ask"].error

    read = _read(collected, "doc")
    assert read.name == "resources/read"  # the URI stays out of the name (cardinality)
    assert read.kind is SpanKind.CLIENT
    assert read.status.status_code is StatusCode.UNSET
    assert dict(read.attributes) == {
        "mcp.method.name": "resources/read", "mcp.resource.uri": "meta://doc/***",
        "plait.mcp.server": "probe", "network.transport": "pipe"}
    _traceparent(json.loads(result.steps["doc"].output[0]["text"]), read)

    prompt = _read(collected, "ask", "prompts/get")
    assert prompt.name == "prompts/get meta" and prompt.kind is SpanKind.CLIENT
    assert dict(prompt.attributes) == {
        "mcp.method.name": "prompts/get", "gen_ai.prompt.name": "meta",
        "plait.mcp.server": "probe", "network.transport": "pipe"}
    said = json.loads(result.steps["ask"].output["messages"][0]["content"]["text"])
    assert said["arguments"] == {"topic": "about ***"}  # the step's output is masked too
    _traceparent(said["meta"], prompt)
    assert "gen_ai.operation.name" not in read.attributes  # execute_tool is for tools only


async def test_failed_reads_are_recorded_on_their_spans(tmp_path: Path,
                                                        collected: Any) -> None:
    result = await _run(_workflow(tmp_path), collected)
    assert result.steps["gone"].status == "failed"
    assert result.steps["nope"].status == "failed"
    for span, says in ((_read(collected, "gone"), "meta://missing"),
                       (_read(collected, "nope", "prompts/get"), "no prompt unknown")):
        assert span.status.status_code is StatusCode.ERROR
        assert says in span.status.description
        assert span.attributes["error.type"] == "ToolError"
        (event,) = span.events
        assert event.name == "exception" and says in event.attributes["exception.message"]
    assert collected.one("prompts/get unknown").attributes["gen_ai.prompt.name"] == "unknown"


async def test_content_only_with_trace_content_and_redacted(tmp_path: Path,
                                                            collected: Any) -> None:
    await _run(_workflow(tmp_path), collected, trace_content=True)
    prompt = _read(collected, "ask", "prompts/get")
    assert json.loads(prompt.attributes["plait.mcp.prompt.arguments"]) == {"topic": "about ***"}
    result = json.loads(prompt.attributes["plait.mcp.result"])
    assert result["description"] == "the request's _meta"
    assert "about ***" in result["messages"][0]["content"]["text"]
    contents = json.loads(_read(collected, "doc").attributes["plait.mcp.result"])
    assert contents[0]["uri"] == "meta://doc/***"
    assert "traceparent" in contents[0]["text"]
    failed = _read(collected, "gone")
    assert "plait.mcp.result" not in failed.attributes
    for span in collected.spans():
        assert SECRET not in json.dumps(dict(span.attributes or {}))
        assert SECRET not in (span.status.description or "")


async def test_replayed_reads_are_traced_too(tmp_path: Path, collected: Any) -> None:
    """The cassette answers through the same request seam, inside the tracing span."""
    path = _workflow(tmp_path)
    recorded = await run_workflow(load(path), {}, record_state=False,
                                  environ={"MY_TOKEN": SECRET, "PATH": "/usr/bin:/bin"},
                                  record_dir=tmp_path / "tape")
    assert recorded.steps["doc"].status == "succeeded", recorded.steps["doc"].error
    replayed = await _run(path, collected, replay_dir=tmp_path / "tape")
    assert {s: r.output for s, r in replayed.steps.items()} == \
        {s: r.output for s, r in recorded.steps.items()}
    assert _read(collected, "doc").attributes["mcp.resource.uri"] == "meta://doc/***"
    assert _read(collected, "gone").status.status_code is StatusCode.ERROR
    assert _read(collected, "ask", "prompts/get").name == "prompts/get meta"
