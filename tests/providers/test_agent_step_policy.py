"""An agent step's own `policy:` checks each tool call its model makes, on top of the
server's policy, found in review: it was ignored, so a model could read any file its server
(here under a level-low policy) would serve. The openai SDK against the wire-level test
server, the executor's agent loop, and the bundled files server as a real subprocess."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

ROOT = Path(__file__).resolve().parents[2]


def workflow(url: str) -> str:
    return f"""\
version: 1
name: agent-step-policy
providers:
  brain: {{kind: openai, model: agent-model, base_url: "{url}/openai/v1", api_key: sk-x}}
mcp_servers:
  files:
    command: {sys.executable}
    args: [-m, engine.mcp.servers.files, --root, notes]
    env: {{PYTHONPATH: "{ROOT}"}}
    policy: open
policies:
  open: {{level: low}}
  public: {{level: medium, filesystem: {{read: [notes/public]}}}}
steps:
  triage:
    llm: brain
    prompt: Read the notes.
    tools: [files.read_file]
    policy: public
    max_turns: 3
"""


@pytest.mark.anyio
async def test_an_agent_steps_policy_refuses_a_call_its_server_would_allow(
        srv: Servers, tmp_path: Path) -> None:
    (tmp_path / "notes" / "public").mkdir(parents=True)
    (tmp_path / "notes" / "public" / "a.md").write_text("the public note")
    (tmp_path / "notes" / "private.md").write_text("the private note")
    srv.openai.push("agent-model",
                    Action(tool_calls=[("files__read_file", {"path": "public/a.md"}),
                                       ("files__read_file", {"path": "private.md"})]),
                    Action(text="done"))
    wf = load_text(workflow(srv.url), str(tmp_path / "agent.yaml"))
    result = await run_workflow(wf, {}, record_state=False)
    step = result.steps["triage"]
    assert result.status == "succeeded", step.error
    tool_results = [m["content"] for m in srv.openai.requests[1]["messages"]
                    if m["role"] == "tool"]
    assert len(tool_results) == 2
    assert "the public note" in tool_results[0]
    # the call the step's policy refuses comes back to the model as an error, not the file
    assert tool_results[1].startswith("PolicyViolation: policy 'public' (medium)")
    assert "the private note" not in tool_results[1]
    allowed, denied = step.audit
    assert allowed["decision"] == "allowed" and allowed["tool"] == "files.read_file"
    assert denied["decision"] == "denied" and denied["policy"] == "public"
    assert denied["rule"] == "filesystem" and denied["error"]["type"] == "PolicyViolation"
