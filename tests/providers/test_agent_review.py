"""Agent steps (`llm:` with `tools:`) as a user building agent recipes meets them, found in
review. The openai SDK against the wire-level fake vendor server, the executor's agent loop,
and the faulty MCP server of the MCP tests as a real subprocess."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load_text
from tests.providers.conftest import Servers
from tests.providers.servers.common import Action
from tests.tracing.conftest import _otel_enabled, collected  # noqa: F401 - the fixtures

ROOT = Path(__file__).resolve().parents[2]


def workflow(url: str, step: str = "") -> str:
    return f"""\
version: 1
name: agent-review
providers:
  brain: {{kind: openai, model: agent-model, base_url: "{url}/openai/v1", api_key: sk-x}}
mcp_servers:
  faulty:
    command: {json.dumps(sys.executable)}
    args: [-m, tests.mcp.faulty_server]
    env: {{PYTHONPATH: {json.dumps(str(ROOT))}}}
policies:
  low: {{level: low}}
defaults: {{policy: low}}
steps:
  triage:
    llm: brain
    prompt: Look around.
    tools: [faulty.pid]
{step}"""


@pytest.mark.anyio
@pytest.mark.parametrize("traced", [False, True])
@pytest.mark.parametrize("arguments", [[1], "pid", None])
async def test_streamed_tool_arguments_that_are_not_an_object_fail_as_output_invalid(
        srv: Servers, tmp_path: Path, collected: Any, arguments: Any,  # noqa: F811
        traced: bool) -> None:
    # a streamed reply's tool call with arguments `[1]` (not an object) failed the step
    # with Python's "TypeError: cannot convert dictionary update sequence ..."; the same
    # reply not streamed is an OutputInvalid that names the call and how to retry it
    srv.openai.push("agent-model", Action(tool_calls=[("faulty__pid", arguments)]),
                    Action(text="done"))
    wf = load_text(workflow(srv.url, "    stream: true\n"), str(tmp_path / "agent.yaml"))
    result = await run_workflow(wf, {}, record_state=False, listeners=[lambda event: None],
                                tracer=collected.tracer if traced else None)
    step = result.steps["triage"]
    assert srv.openai.requests[0]["stream"]
    assert step.status == "failed"
    assert step.error["type"] == "OutputInvalid", step.error
    assert step.error["message"] == (
        "provider 'brain' streamed a tool call whose arguments are not a valid JSON object: "
        f"tool call call_0: arguments are not a JSON object: {json.dumps(arguments)!r}")
    assert "retry.on: [output_invalid]" in step.error["hint"]
    assert len(srv.openai.requests) == 1  # the tool was not called
    if traced:
        [chat] = [s for s in collected.spans() if s.name.startswith("chat")]
        assert chat.attributes["error.type"] == "ValueError"


@pytest.mark.anyio
async def test_the_steps_timeout_bounds_each_model_call_not_its_tool_calls(
        srv: Servers, tmp_path: Path) -> None:
    # as docs/mcp.md says: a tool call runs under its own timeout (here 1s), longer than the
    # step's (300ms, for each model call), and the model gets the ToolError
    srv.openai.push("agent-model", Action(tool_calls=[("faulty__hang", {})]),
                    Action(text="done"))
    text = workflow(srv.url, "    timeout: 300ms\n").replace(
        "tools: [faulty.pid]", "tools: [faulty.hang]").replace(
        "    env:", "    tool_metadata: {hang: {timeout: 1s}}\n    env:")
    result = await run_workflow(load_text(text, str(tmp_path / "agent.yaml")), {},
                                record_state=False)
    step = result.steps["triage"]
    assert step.status == "succeeded", step.error
    [sent] = [m["content"] for m in srv.openai.requests[1]["messages"] if m["role"] == "tool"]
    assert sent == "ToolError: tool 'faulty.hang' did not answer within 1s"
    [entry] = step.audit
    assert entry["error"]["message"] == "tool 'faulty.hang' did not answer within 1s"


MEDIA = """\
version: 1
name: agent-media
providers:
  brain: {{kind: openai, model: agent-model, base_url: "{url}/openai/v1", api_key: sk-x}}
mcp_servers:
  media:
    command: {python}
    args: [-m, tests.mcp.media_server]
    env: {{PYTHONPATH: {root}}}
policies:
  low: {{level: low}}
defaults: {{policy: low}}
steps:
  look:
    llm: brain
    prompt: Look at the page.
    tools: [media.*]
"""


@pytest.mark.anyio
async def test_a_result_that_is_not_text_is_described_to_the_model(srv: Servers,
                                                                   tmp_path: Path) -> None:
    # an image, a resource link or a binary resource reached the model as `""`: it was told
    # the tool returned nothing, and an image beside a text was dropped without a word
    from tests.cassettes.conftest import comparable

    srv.openai.push("agent-model", Action(tool_calls=[("media__snapshot", {}),
                                                      ("media__picture", {}),
                                                      ("media__link", {}),
                                                      ("media__blob", {})]),
                    Action(text="done"))
    text = MEDIA.format(url=srv.url, python=json.dumps(sys.executable),
                        root=json.dumps(str(ROOT)))
    wf = load_text(text, str(tmp_path / "agent.yaml"))
    live = await run_workflow(wf, {}, record_state=False, record_dir=tmp_path / "tape")
    step = live.steps["look"]
    assert step.status == "succeeded", step.error
    image = "[plait: the tool returned an image (image/png, 12 bytes) that is not passed to " \
            "the model]"
    expected = [
        f"the page, as shown\n{image}",
        image,
        "[plait: the tool returned a link to resource file:///logs/today.txt (today.txt)]",
        "[plait: the tool returned resource file:///a.bin (application/octet-stream) as "
        "binary data, which is not passed to the model]"]
    sent = [m["content"] for m in srv.openai.requests[1]["messages"] if m["role"] == "tool"]
    assert sent == expected
    [tools] = [n for n in step.notes if n.get("event") == "tools"]
    assert [c["output"] for c in tools["calls"]] == expected
    # a replay tells the model the same
    replayed = await run_workflow(wf, {}, replay_dir=tmp_path / "tape", record_state=False)
    assert comparable(replayed) == comparable(live)


FALLBACK = """\
version: 1
name: agent-fallback
providers:
  brain: {{kind: openai, model: agent-model, base_url: "{url}/openai/v1", api_key: sk-x,
          fallback: [backup]}}
  backup: {{kind: openai, model: backup-model, base_url: "{url}/openai/v1", api_key: sk-y}}
mcp_servers:
  faulty:
    command: {python}
    args: [-m, tests.mcp.faulty_server]
    env: {{PYTHONPATH: {root}}}
policies:
  low: {{level: low}}
defaults: {{policy: low}}
steps:
  triage:
    llm: brain
    prompt: Look around.
    tools: [faulty.pid]
{step}"""


@pytest.mark.anyio
@pytest.mark.parametrize("ending", ["max_turns", "cut_off"])
async def test_an_error_after_a_fallback_names_the_provider_that_answered(
        srv: Servers, tmp_path: Path, ending: str) -> None:
    # the primary's key is refused in the second turn: the fallback answers from then on,
    # and the step's error named the primary ('brain') for what the fallback did
    srv.openai.push("agent-model", Action(tool_calls=[("faulty__pid", {})]),
                    Action(status=401))
    last = Action(tool_calls=[("faulty__pid", {})]) if ending == "max_turns" else \
        Action(text='{"risk": "hi', finish="length")
    srv.openai.push("backup-model", last)
    step = "    max_turns: 2\n" if ending == "max_turns" else (
        "    output_schema: {type: object, required: [risk]}\n")
    text = FALLBACK.format(url=srv.url, python=json.dumps(sys.executable),
                           root=json.dumps(str(ROOT)), step=step)
    result = await run_workflow(load_text(text, str(tmp_path / "agent.yaml")), {},
                                record_state=False)
    error = result.steps["triage"].error
    assert error is not None and error["provider"] == "backup", error
    if ending == "max_turns":  # the calls that were not run are named (they had no record)
        assert error["message"] == (
            "the agent loop did not finish within max_turns=2 model turns (the model kept "
            "calling tools; its last turn asked for faulty__pid, not run)")
    if ending == "cut_off":
        assert error["message"].startswith("provider 'backup': the reply was cut off at the "
                                           "token limit"), error
    assert [r["model"] for r in srv.openai.requests] == ["agent-model", "agent-model",
                                                         "backup-model"]


@pytest.mark.anyio
async def test_a_foreach_agent_steps_tool_calls_say_which_item_made_them(
        srv: Servers, tmp_path: Path) -> None:
    # each item's calls were listed with nothing to tell the items apart: with one item
    # making no call, the record could not say whose calls were whose
    from click.testing import CliRunner

    from runners.cli.main import cli

    srv.openai.push("agent-model", Action(text="nothing to do"),
                    Action(tool_calls=[("faulty__pid", {})]), Action(text="done"))
    text = workflow(srv.url, "    foreach: [a, b]\n    max_parallel: 1\n").replace(
        "prompt: Look around.", "prompt: 'Look at ${{ item }}'")
    result = await run_workflow(load_text(text, str(tmp_path / "agent.yaml")), {})
    step = result.steps["triage"]
    assert step.status == "succeeded", step.error
    [tools] = [n for n in step.notes if n.get("event") == "tools"]
    assert tools["item"] == 1
    assert [c["name"] for c in tools["calls"]] == ["faulty__pid"]
    shown = CliRunner().invoke(cli, ["runs", "show", result.run_id, "--state",
                                     str(tmp_path / ".plait" / "runs.db")])
    assert shown.exit_code == 0, shown.output
    assert "      tool    item 1  turn 1  faulty__pid {} -> ok: " in shown.output


@pytest.mark.anyio
async def test_a_secret_in_a_tools_description_is_masked_before_the_model_sees_it(
        srv: Servers, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the server describes its tool with the token it was given: the description went to
    # the model (and its vendor) as it was, though every tool result is masked
    token = "tok-agent-secret-0123456789"
    monkeypatch.setenv("AGENT_TOKEN", token)
    srv.openai.push("agent-model", Action(text="done"))
    text = workflow(srv.url).replace(
        "args: [-m, tests.mcp.faulty_server]",
        'args: [-m, tests.mcp.faulty_server, --pid-description, '
        '"Process id (token ${{ secrets.AGENT_TOKEN }})"]').replace(
        "providers:", "secrets: [AGENT_TOKEN]\nproviders:")
    result = await run_workflow(load_text(text, str(tmp_path / "agent.yaml")), {},
                                record_state=False)
    assert result.status == "succeeded", result.steps["triage"].error
    [tool] = srv.openai.requests[0]["tools"]
    assert tool["function"]["description"] == "Process id (token ***)"
    assert token not in json.dumps(srv.openai.requests)
