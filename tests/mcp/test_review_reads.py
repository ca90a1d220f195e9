"""`resource:` and `mcp_prompt:` steps as a user meets them, found in review, against real
MCP server subprocesses (the faulty test server, tests/tracing/meta_server.py): a server that
crashed under a read used to fail that step with a bare "Connection closed" and, its dead
connection kept, every later request to it for the rest of the run; a refused prompt get
said "Internal server error" and no more; a server that failed to start again quoted its
earlier starts' stderr as if this start had written it."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load
from engine.state import RunStore

ROOT = Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _servers() -> str:
    python, root = json.dumps(sys.executable), json.dumps(str(ROOT))
    big = json.dumps(str(ROOT / "tests" / "mcp" / "big_server.py"))
    return f"""\
mcp_servers:
  big:
    command: {python}
    args: [{big}]
    env: {{PYTHONPATH: {root}}}
  demo:
    command: {python}
    args: [-m, tests.cassettes.demo_server]
    env: {{PYTHONPATH: {root}}}
  faulty:
    command: {python}
    args: [-m, tests.mcp.faulty_server]
    env: {{PYTHONPATH: {root}}}
  probe:
    command: {python}
    args: [-m, tests.tracing.meta_server]
    env: {{PYTHONPATH: {root}}}
  slow:
    command: {python}
    args: [-m, tests.mcp.faulty_server]
    env: {{PYTHONPATH: {root}}}
    timeout: 300ms
policies:
  open: {{level: low}}
defaults: {{policy: open, continue_on_error: true}}
"""


async def _recorded(tmp_path: Path, steps: str) -> dict[str, Any]:
    path = tmp_path / "wf.yaml"
    path.write_text(f"version: 1\nname: reads\nconcurrency: 1\n{_servers()}steps:\n{steps}")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run_workflow(load(path), {}, store=store)
        return {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()


async def test_a_server_that_crashes_under_a_read_is_named_and_restarted(
        tmp_path: Path) -> None:
    records = await _recorded(tmp_path, """\
  crashed:
    resource: faulty
    uri: faulty://crash
  retried:
    mcp_prompt: faulty.crash
    needs: [crashed]
    retry: {attempts: 2, initial: 0s, on: [tool]}
  after:
    resource: faulty
    uri: faulty://other
    needs: [retried]
  tool:
    tool: faulty.pid
    needs: [after]
""")
    error = records["crashed"].error
    assert error["type"] == "ToolError" and error["server"] == "faulty"
    assert error["message"].startswith(
        "MCP server 'faulty' went down during read_resource 'faulty://crash'")
    assert "fatal: crashing on purpose in crash" in error["message"]  # its stderr's tail
    assert "restarted on next use" in error["hint"]

    # each attempt met a server started afresh, and its crash is named the same way
    assert records["retried"].attempts == 2
    assert [e["error"]["message"].split(" (")[0] for e in records["retried"].audit] == [
        "MCP server 'faulty' went down during get_prompt 'crash'"] * 2

    # the next read reaches a server started afresh: its own answer, not "Connection closed"
    assert records["after"].error["message"] == (
        "MCP server 'faulty': read_resource 'faulty://other' failed: "
        "no resource faulty://other")
    assert records["tool"].status == "succeeded"


async def test_a_read_that_does_not_answer_says_which_timeout_to_raise(
        tmp_path: Path) -> None:
    records = await _recorded(tmp_path, """\
  hung:
    resource: slow
    uri: faulty://hang
""")
    error = records["hung"].error
    assert error["message"] == (
        "MCP server 'slow': read_resource 'faulty://hang' did not answer within 0.3s")
    assert "the server's `timeout:`" in error["hint"]


async def test_a_refused_prompt_or_resource_says_what_the_server_offers(
        tmp_path: Path) -> None:
    # the SDK's MCPServer (tests/mcp/inproc.py's demo server over stdio) answers every
    # refused prompt get with "Internal server error"
    records = await _recorded(tmp_path, """\
  misnamed:
    mcp_prompt: demo.reviw
    with: {topic: x}
  missing:
    mcp_prompt: demo.review
    with: {topc: x}
  extra:
    mcp_prompt: demo.review
    with: {topic: x, tone: dry}
  unknown_uri:
    resource: demo
    uri: memo://greting
  templated:
    resource: big
    uri: big://many
  fine:
    mcp_prompt: demo.review
    with: {topic: x}
""")
    errors = {sid: r.error for sid, r in records.items() if r.error}

    assert errors["misnamed"]["message"] == (
        "MCP server 'demo' has no prompt 'reviw' (the server answered: Internal server error)")
    assert errors["misnamed"]["hint"] == "did you mean 'review'? its prompts: review"

    assert errors["missing"]["message"] == (
        "MCP server 'demo': prompt 'review': missing required argument topic; unknown "
        "argument topc (the server answered: Internal server error)")
    assert errors["missing"]["hint"] == (
        "fix the step's `with:`; its arguments: topic (required)")
    assert errors["extra"]["message"].startswith(
        "MCP server 'demo': prompt 'review': unknown argument tone (")

    assert errors["unknown_uri"]["message"] == (
        "MCP server 'demo': read_resource 'memo://greting' failed: Unknown resource: "
        "memo://greting")
    assert errors["unknown_uri"]["hint"] == "check `uri:`; its resources: memo://greeting"
    assert errors["templated"]["hint"] == (
        "check `uri:`; its resources: none; resource templates: big://{size}")
    assert records["fine"].status == "succeeded"


async def test_a_server_that_fails_to_start_quotes_only_its_own_stderr(tmp_path: Path) -> None:
    python = json.dumps(sys.executable)
    script = "import sys; print('boom:', 'bad config', file=sys.stderr); sys.exit(1)"
    path = tmp_path / "wf.yaml"
    path.write_text(f"""\
version: 1
name: broken
mcp_servers:
  broken:
    command: {python}
    args: [-c, {json.dumps(script)}]
policies:
  open: {{level: low}}
defaults: {{policy: open, continue_on_error: true}}
steps:
  first:
    resource: broken
    uri: x://y
  second:
    mcp_prompt: broken.p
    needs: [first]
""")
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run_workflow(load(path), {}, store=store)
        records = {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()
    for step in ("first", "second"):
        error = records[step].error
        assert error["server"] == "broken"
        assert "MCP server 'broken' (" in error["message"]
        assert "failed during start-up" in error["message"]
        # the second start's error quoted the first start's stderr too, as if the server
        # had said it twice
        assert error["message"].count("boom: bad config") == 1, error["message"]


async def test_a_list_or_dict_prompt_argument_is_sent_as_json(tmp_path: Path) -> None:
    records = await _recorded(tmp_path, """\
  ask:
    mcp_prompt: probe.meta
    with: {tags: [a, b], opts: {x: 1}, n: 3, topic: plain}
""")
    # the meta server answers with the arguments it got; they were Python reprs
    # ("['a', 'b']", "{'x': 1}"), which no prompt template expects
    (message,) = records["ask"].output["messages"]
    got = json.loads(message["content"]["text"])["arguments"]
    assert got == {"tags": '["a", "b"]', "opts": '{"x": 1}', "n": "3", "topic": "plain"}
    assert records["ask"].audit[0]["arguments"] == got
