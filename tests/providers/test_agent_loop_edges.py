"""Agent steps from a user's side, for each vendor's wire format: the real SDKs against the
fake vendor servers, the executor's agent loop and real MCP server subprocesses.

One streamed turn of parallel calls that go wrong in every way a model can make them go
wrong (a tool the step does not offer, one the server's filter hides, bad arguments, a tool
that times out, one that breaks its result), plus a good call and one whose result holds a
secret; then a replay of the recording with no server and no model.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.cassettes.conftest import comparable
from tests.providers.conftest import Servers
from tests.providers.servers import google_server
from tests.providers.servers.common import Action

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-agent-secret-0123456789"
KEYS = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
        "google": "GOOGLE_API_KEY"}
CALLS = [("faulty__env", {"name": "TOKEN"}),  # its result is the secret
         ("faulty__env", {}),  # misses the required `name`
         ("faulty__nope", {}),  # made up
         ("faulty__crash", {}),  # hidden by the server's tools.deny
         ("faulty__hang", {}),  # does not answer within its 300ms
         ("faulty__pid", {}),  # fine
         ("faulty__malformed", {})]  # breaks its own output schema
FAILED = [False, True, True, True, True, False, True]


def _faulty_workflow(kind: str, url: str) -> str:
    base = {"openai": f"{url}/openai/v1", "anthropic": f"{url}/anthropic",
            "google": f"{url}/google"}[kind]
    return f"""\
version: 1
name: agent-{kind}
secrets: [{KEYS[kind]}, AGENT_TOKEN]
providers:
  brain: {{kind: {kind}, model: agent-model, base_url: "{base}",
          api_key: "${{{{ secrets.{KEYS[kind]} }}}}"}}
mcp_servers:
  faulty:
    command: {json.dumps(sys.executable)}
    args: [-m, tests.mcp.faulty_server]
    env: {{PYTHONPATH: {json.dumps(str(ROOT))}, TOKEN: "${{{{ secrets.AGENT_TOKEN }}}}"}}
    tools: {{deny: [crash]}}
    tool_metadata: {{hang: {{timeout: 300ms}}}}
policies:
  low: {{level: low}}
defaults: {{policy: low}}
steps:
  triage:
    llm: brain
    stream: true
    prompt: Look around.
    tools: [faulty.*]
    max_turns: 3
outputs:
  answer: ${{{{ steps.triage.output }}}}
"""


def _results(kind: str, body: dict[str, Any]) -> list[tuple[str, str, bool | None]]:
    """(call id, text, is_error) of each tool result in a request, in the vendor's format."""
    if kind == "openai":
        return [(m["tool_call_id"], m["content"], None) for m in body["messages"]
                if m["role"] == "tool"]
    if kind == "anthropic":
        turn = body["messages"][-1]
        assert turn["role"] == "user"  # all the results in one user turn
        return [(b["tool_use_id"], b["content"], b["is_error"]) for b in turn["content"]
                if b["type"] == "tool_result"]
    turn = body["contents"][-1]
    assert turn["role"] == "user"
    out = []
    for part in turn["parts"]:
        response = part["functionResponse"]
        assert response["name"] == CALLS[len(out)][0]
        error = "error" in response["response"]
        out.append((response["id"], response["response"]["error" if error else "output"],
                    error))
    return out


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
async def test_parallel_calls_that_go_wrong_reach_the_model_and_replay(
        kind: str, srv: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS[kind], "sk-vendor-key-0123456789")
    monkeypatch.setenv("AGENT_TOKEN", TOKEN)
    script = getattr(srv, kind)
    script.push("agent-model", Action(tool_calls=CALLS), Action(text="done"))
    wf = load_text(_faulty_workflow(kind, srv.url), str(tmp_path / "agent.yaml"))
    chunks: list[Any] = []
    live = await run_workflow(wf, {}, record_dir=tmp_path / "tape", record_state=False,
                              listeners=[chunks.append])
    step = live.steps["triage"]
    assert step.status == "succeeded", step.error
    assert live.outputs == {"answer": "done"}
    assert len(script.requests) == 2  # streamed
    assert all(r.get("stream") for r in script.requests) if kind != "google" else \
        all(p.endswith(":streamGenerateContent") for p in script.paths)
    sent = script.requests[1]
    results = _results(kind, sent)
    ids = {"openai": "call_", "anthropic": "toolu_", "google": "fc_"}[kind]
    assert [r[0] for r in results] == [f"{ids}{i}" for i in range(len(CALLS))]
    texts = [r[1] for r in results]
    # the secret the tool returned is masked before the model sees it
    assert texts[0] == "***" and TOKEN not in json.dumps(sent)
    assert texts[1].startswith("ToolError: arguments of 'faulty.env' do not match its input "
                               "schema"), texts[1]
    assert texts[2].startswith("UnknownToolError: 'faulty__nope' is not one of the tools of "
                               "this step; call one of: faulty__env, faulty__flaky_read")
    assert "faulty__crash" not in texts[2]
    assert texts[3].startswith("UnknownToolError: 'faulty__crash' is not one of the tools")
    assert texts[4] == "ToolError: tool 'faulty.hang' did not answer within 0.3s"
    assert texts[5].isdigit()
    assert texts[6].startswith("ToolError: tool 'faulty.malformed' returned a malformed")
    if kind != "openai":  # OpenAI's tool messages have no error flag: the text says it
        assert [r[2] for r in results] == FAILED
    if kind == "google":  # the model's turn goes back with its thought signature
        calls = sent["contents"][-2]["parts"]
        assert [p.get("thoughtSignature") for p in calls] == \
            [google_server.signature(CALLS[0][0])] + [None] * (len(CALLS) - 1)
    assert step.usage == {"input_tokens": 22, "output_tokens": 14,
                          "cached_input_tokens": step.usage["cached_input_tokens"]}
    [tools] = [n for n in step.notes if n.get("event") == "tools"]
    assert [(c["name"], c["turn"], c["is_error"]) for c in tools["calls"]] == [
        (name, 1, failed) for (name, _), failed in zip(CALLS, FAILED, strict=True)]
    assert tools["calls"][0]["output"] == "***"

    # the replay: no model, no server, the same outputs and step records
    for path in (tmp_path / "tape").iterdir():
        assert TOKEN not in path.read_text()
    replayed = await run_workflow(wf, {}, replay_dir=tmp_path / "tape", record_state=False)
    assert len(script.requests) == 2
    assert comparable(replayed) == comparable(live)


FILES = """\
version: 1
name: agent-cap
providers:
  brain: {{kind: openai, model: agent-model, base_url: "{url}/openai/v1", api_key: sk-x}}
pricing:
  agent-model: {{input: 1.0, output: 2.0}}
mcp_servers:
  files:
    command: {python}
    args: [-m, engine.mcp.servers.files, --root, notes]
    env: {{PYTHONPATH: {root}}}
policies:
  low: {{level: low}}
defaults: {{policy: low}}
steps:
  triage:
    llm: brain
    prompt: Read the notes.
    tools: [files.read_file, files.list_directory]
    max_turns: 2
    retry: {{attempts: 2, initial: 0s}}
"""


@pytest.mark.anyio
async def test_a_huge_result_is_cut_and_a_failed_agent_step_keeps_its_calls(
        srv: Servers, tmp_path: Path) -> None:
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "big.txt").write_text("x" * 150_000)
    srv.openai.push("agent-model",
                    Action(tool_calls=[("files__read_file", {"path": "big.txt"})]),
                    Action(status=503),  # the second turn's call is retried...
                    Action(tool_calls=[("files__list_directory", {"path": "."})]))
    text = FILES.format(url=srv.url, python=json.dumps(sys.executable),
                        root=json.dumps(str(ROOT)))
    wf = load_text(text, str(tmp_path / "agent.yaml"))
    result = await run_workflow(wf, {})
    step = result.steps["triage"]
    assert step.status == "failed"
    assert step.error["message"].startswith("the agent loop did not finish within max_turns=2")
    # what the model got: the first 100,000 characters, and a note saying so
    [sent] = [m["content"] for m in srv.openai.requests[1]["messages"] if m["role"] == "tool"]
    assert sent == "x" * 100_000 + ("\n[plait: this tool result was cut to its first 100000 "
                                    "of 150000 characters]")
    # ...with the same conversation: the first turn's tool is not run again
    assert len(srv.openai.requests) == 3 and srv.openai.requests[2] == srv.openai.requests[1]
    # the failed step's record keeps the calls it made (the last turn's were not run, and
    # the output is cut shorter), the retry and what the turns cost
    [tools] = [n for n in step.notes if n.get("event") == "tools"]
    [call] = tools["calls"]
    assert (call["name"], call["turn"], call["is_error"]) == ("files__read_file", 1, False)
    assert call["output"] == "x" * 2000 + "..." and call["output_chars"] == len(sent)
    assert [n["event"] for n in step.notes] == ["retry", "tools"]
    assert (step.usage["input_tokens"], step.usage["output_tokens"]) == (22, 14)
    assert step.cost == pytest.approx((22 * 1.0 + 14 * 2.0) / 1e6)
    # the most tries one model call took: the turns are not attempts
    assert step.attempts == 2

    from runners.cli.main import cli

    shown = CliRunner().invoke(cli, ["runs", "show", result.run_id, "--state",
                                     str(tmp_path / ".plait" / "runs.db")])
    assert shown.exit_code == 0, shown.output
    assert 'tool    turn 1  files__read_file {"path": "big.txt"} -> ok: xxxx' in shown.output


SHAPED = """\
version: 1
name: agent-shaped
secrets: [{key}]
providers:
  brain: {{kind: {kind}, model: agent-model, base_url: "{base}",
          api_key: "${{{{ secrets.{key} }}}}"}}
mcp_servers:
  files:
    command: {python}
    args: [-m, engine.mcp.servers.files, --root, notes]
    env: {{PYTHONPATH: {root}}}
policies:
  low: {{level: low}}
defaults: {{policy: low}}
steps:
  triage:
    llm: brain
    prompt: Rate the notes.
    tools: [files.read_file]
    output_schema:
      type: object
      required: [risk]
      properties: {{risk: {{enum: [low, high]}}}}
"""


@pytest.mark.anyio
@pytest.mark.parametrize("kind", ["openai", "anthropic", "google"])
async def test_output_schema_with_parallel_tool_calls(kind: str, srv: Servers, tmp_path: Path,
                                                      monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEYS[kind], "sk-vendor-key-0123456789")
    (tmp_path / "notes").mkdir()
    (tmp_path / "notes" / "a.md").write_text("all fine")
    (tmp_path / "notes" / "b.md").write_text("the key leaked")
    script = getattr(srv, kind)
    script.push("agent-model", Action(tool_calls=[("files__read_file", {"path": "a.md"}),
                                                  ("files__read_file", {"path": "b.md"})]),
                Action(json={"risk": "high"}))
    base = {"openai": f"{srv.url}/openai/v1", "anthropic": f"{srv.url}/anthropic",
            "google": f"{srv.url}/google"}[kind]
    text = SHAPED.format(kind=kind, key=KEYS[kind], base=base,
                         python=json.dumps(sys.executable), root=json.dumps(str(ROOT)))
    result = await run_workflow(load_text(text, str(tmp_path / "agent.yaml")), {},
                                record_state=False)
    step = result.steps["triage"]
    assert step.status == "succeeded", step.error
    assert step.output == {"risk": "high"}
    first, second = script.requests
    if kind == "anthropic":  # the schema is a forced tool: any tool, then plait_output
        assert first["tool_choice"] == {"type": "any"}
        assert [t["name"] for t in first["tools"]] == ["files__read_file", "plait_output"]
    elif kind == "openai":
        assert first["response_format"]["json_schema"]["schema"]["required"] == ["risk"]
    else:
        assert first["generationConfig"]["responseJsonSchema"]["required"] == ["risk"]
    results = _results(kind, second) if kind != "google" else [
        (p["functionResponse"]["id"], p["functionResponse"]["response"]["output"], False)
        for p in second["contents"][-1]["parts"]]
    ids = {"openai": "call_", "anthropic": "toolu_", "google": "fc_"}[kind]
    assert [(i, t) for i, t, _ in results] == [(f"{ids}0", "all fine"),
                                               (f"{ids}1", "the key leaked")]
