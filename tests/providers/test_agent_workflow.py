"""An agent step end to end: the openai SDK against a wire-level server, the executor's agent
loop, and a real MCP server subprocess (the bundled files server) under a policy."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action

ROOT = Path(__file__).resolve().parents[2]


def workflow(url: str, python: str) -> str:
    return f"""\
version: 1
name: agent
secrets: [AGENT_KEY]
providers:
  brain:
    kind: openai
    model: agent-model
    base_url: {url}/openai/v1
    api_key: ${{{{ secrets.AGENT_KEY }}}}
mcp_servers:
  files:
    command: {python}
    args: [-m, engine.mcp.servers.files, --root, notes]
    env: {{PYTHONPATH: "{ROOT}"}}
    policy: notes
policies:
  notes:
    level: medium
    filesystem: {{read: [notes], write: [notes]}}
steps:
  triage:
    llm: brain
    system: You triage notes with the file tools.
    prompt: Triage the notes folder.
    tools: [files.*]
    max_turns: 4
outputs:
  answer: ${{{{ steps.triage.output }}}}
"""


@pytest.mark.anyio
async def test_agent_step_calls_mcp_tools_over_two_rounds(
        srv: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "standup.md").write_text("blocked on key rotation")
    monkeypatch.setenv("AGENT_KEY", "sk-agent-secret-123456")
    srv.openai.push(
        "agent-model",
        Action(tool_calls=[("files__list_directory", {"path": "."})]),
        Action(tool_calls=[("files__read_file", {"path": "standup.md"}),
                           ("files__read_file", {"path": "../../etc/passwd"})]),
        Action(text="standup.md needs action: blocked on key rotation"))
    wf = load_text(workflow(srv.url, sys.executable), str(tmp_path / "agent.yaml"))
    result = await run_workflow(wf, {})
    assert result.status == "succeeded", result.steps["triage"].error
    assert result.outputs == {"answer": "standup.md needs action: blocked on key rotation"}
    requests = srv.openai.requests
    assert len(requests) == 3
    offered = {tool["function"]["name"] for tool in requests[0]["tools"]}
    assert {"files__list_directory", "files__read_file"} <= offered
    tool_results = [m["content"] for m in requests[2]["messages"] if m["role"] == "tool"]
    assert len(tool_results) == 3
    assert '"name": "standup.md"' in tool_results[0]
    assert "blocked on key rotation" in tool_results[1]
    # the escape attempt came back to the model as an error, not as file contents
    assert "PolicyViolation" in tool_results[2] and "root:" not in tool_results[2]
    usage = result.steps["triage"].usage
    assert usage["input_tokens"] == 3 * 11 and usage["output_tokens"] == 3 * 7
    assert srv.openai.headers[0]["authorization"] == "Bearer sk-agent-secret-123456"


@pytest.mark.anyio
async def test_an_agent_step_is_not_rerun_whole_on_output_invalid(
        srv: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """retry.on lists output_invalid, but the step has tools: starting the conversation again
    would call its tools again, so the OutputInvalid after the re-asks is final."""
    (tmp_path / "notes").mkdir()
    monkeypatch.setenv("AGENT_KEY", "sk-agent-secret-123456")
    bad = Action(text='{"risk": 3}')
    srv.openai.push("agent-model", Action(tool_calls=[("files__list_directory", {"path": "."})]),
                    bad, bad, bad, Action(json={"risk": "low"}))
    text = workflow(srv.url, sys.executable).replace(
        "    max_turns: 4\n",
        "    max_turns: 4\n    output_schema: {type: object, properties: {risk: {type: string}},"
        " required: [risk]}\n    retry: {attempts: 2, initial: 0s, on: [output_invalid]}\n")
    result = await run_workflow(load_text(text, str(tmp_path / "agent.yaml")), {})
    step = result.steps["triage"]
    assert step.status == "failed" and step.error["kind"] == "output_invalid", step.error
    assert len(srv.openai.requests) == 4  # one conversation: the tool round and two re-asks
