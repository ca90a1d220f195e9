"""An agent step's tool calls: each `execute_tool` span carries the model's tool call id
(`gen_ai.tool.call.id`), so a backend links the call the model asked for in its `chat` span
to the tool execution. The openai SDK talks to the wire-level fake server of the provider
tests; the tools are the bundled files server's."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.providers.conftest import Servers, servers, srv  # noqa: F401 - the fixtures
from tests.providers.servers.common import Action

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = """\
version: 1
name: agent
providers:
  brain: {{kind: openai, model: agent-model, base_url: "{url}/openai/v1", api_key: sk-x}}
mcp_servers:
  files:
    command: {python}
    args: [-m, engine.mcp.servers.files, --root, notes]
    env: {{PYTHONPATH: "{root}"}}
    policy: notes
policies:
  notes: {{level: low}}
steps:
  triage:
    llm: brain
    prompt: Look at the notes.
    tools: [files.*]
    max_turns: 3
"""


@pytest.mark.anyio
@pytest.mark.parametrize("anyio_backend", ["asyncio"])
async def test_execute_tool_spans_carry_the_tool_call_id(srv: Servers,  # noqa: F811
                                                         tmp_path: Path,
                                                         collected: Any) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("hello")
    srv.openai.push("agent-model",
                    Action(tool_calls=[("files__list_directory", {"path": "."}),
                                       ("files__read_file", {"path": "a.md"})]),
                    Action(text="done"))
    text = WORKFLOW.format(url=srv.url, python=sys.executable, root=ROOT)
    result = await run_workflow(load_text(text, str(tmp_path / "agent.yaml")), {},
                                tracer=collected.tracer, record_state=False)
    assert result.status == "succeeded", result.steps["triage"].error
    asked = {c["function"]["name"].split("__")[1]: c["id"]
             for m in srv.openai.requests[1]["messages"] if m["role"] == "assistant"
             for c in m["tool_calls"]}
    assert len(asked) == 2 and len(set(asked.values())) == 2
    step = collected.one("plait.step triage")
    for tool, call_id in asked.items():
        span = collected.one(f"execute_tool {tool}")
        assert span.attributes["gen_ai.tool.call.id"] == call_id
        assert span.parent.span_id == step.context.span_id
