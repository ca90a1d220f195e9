"""Tool calls are audited whatever became of them, found in review: a `tool:` step (and an
agent step's calls) left an audit entry only for a call that succeeded. Real MCP server
subprocesses (the bundled files server, the faulty test server), records read back from a
run record database."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import pytest

from engine.executor import run_workflow
from engine.spec.loader import load
from engine.state import RunStore
from tests.providers.conftest import Servers, servers, srv  # noqa: F401  (fixtures)
from tests.providers.servers.common import Action

ROOT = Path(__file__).resolve().parents[2]
TOKEN = "tok-audit-secret-0123456789"

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _servers(data: Path) -> str:
    python, root = json.dumps(sys.executable), json.dumps(str(ROOT))
    return f"""\
mcp_servers:
  files:
    command: {python}
    args: [-m, engine.mcp.servers.files, --root, {json.dumps(str(data))}]
    env: {{PYTHONPATH: {root}}}
    policy: guarded
  faulty:
    command: {python}
    args: [-m, tests.mcp.faulty_server]
    env: {{PYTHONPATH: {root}}}
    tool_metadata: {{hang: {{timeout: 300ms}}}}
    policy: open
policies:
  guarded:
    level: medium
    rules:
      - {{name: no-prod, pattern: 'prod\\.example', applies_to: arguments}}
  open: {{level: low}}
"""


async def _recorded(path: Path, tmp_path: Path, db: str = "runs.db") -> tuple[Any, dict[str, Any]]:
    store = RunStore.open(tmp_path / db)
    try:
        result = await run_workflow(load(path), {}, store=store)
        return result, {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()


async def test_a_denied_failed_retried_or_cut_off_tool_call_leaves_its_audit_entry(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_TOKEN", TOKEN)
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("hello")
    marker = tmp_path / "flaky-marker"
    path = tmp_path / "wf.yaml"
    path.write_text(f"""\
version: 1
name: tool-audit
secrets: [AUDIT_TOKEN]
concurrency: 1
{_servers(data)}
steps:
  denied:
    tool: files.read_file
    with: {{path: "prod.example-${{{{ secrets.AUDIT_TOKEN }}}}.txt"}}
    retry: {{attempts: 3, initial: 0s, on: [tool, timeout]}}
    continue_on_error: true
  crashed:
    tool: faulty.crash
    needs: [denied]
    continue_on_error: true
  retried:
    tool: faulty.hang
    needs: [crashed]
    retry: {{attempts: 2, initial: 0s, on: [tool]}}
    continue_on_error: true
  cut:
    tool: faulty.hang
    needs: [retried]
    timeout: 150ms
    continue_on_error: true
  recovered:
    tool: faulty.flaky_write
    with: {{marker: {json.dumps(str(marker))}}}
    needs: [cut]
    retry: {{attempts: 2, initial: 0s, on: [tool]}}
  fine:
    tool: files.read_file
    with: {{path: notes.txt}}
    needs: [recovered]
""")
    result, records = await _recorded(path, tmp_path)
    assert {sid: r.status for sid, r in records.items()} == {
        "denied": "failed", "crashed": "failed", "retried": "failed", "cut": "failed",
        "recovered": "succeeded", "fine": "succeeded"}

    # refused by a rule: which tool, which server, the decision and the rule; never retried;
    # the secret in the refused argument is masked in the entry as everywhere else
    (denied,) = records["denied"].audit
    assert denied["tool"] == "files.read_file" and denied["server"] == "files"
    assert denied["decision"] == "denied"
    assert denied["policy"] == "guarded" and denied["rule"] == "rules.no-prod"
    assert denied["error"]["type"] == "PolicyViolation"
    assert TOKEN not in json.dumps(records["denied"].audit) and \
        "***" in denied["error"]["message"]

    # sent, and the server died under it
    (crashed,) = records["crashed"].audit
    assert crashed["decision"] == "allowed" and crashed["is_error"] is True
    assert crashed["error"]["type"] == "ToolError"
    assert "went down during 'faulty.crash'" in crashed["error"]["message"]

    # one entry per attempt
    assert records["retried"].attempts == 2
    assert [(a["tool"], a["error"]["message"]) for a in records["retried"].audit] == [
        ("faulty.hang", "tool 'faulty.hang' did not answer within 0.3s")] * 2

    # the step's timeout cut the call off
    (cut,) = records["cut"].audit
    assert records["cut"].error["kind"] == "timeout"
    assert cut["killed_by"] == "timeout" and cut["decision"] == "allowed"

    # a call that failed, then one that succeeded: both on record, in order
    first, second = records["recovered"].audit
    assert first["is_error"] is True and "went down" in first["error"]["message"]
    assert second["is_error"] is False and second["duration_s"] >= 0
    assert "error" not in second

    (fine,) = records["fine"].audit
    assert fine == {"tool": "files.read_file", "server": "files", "decision": "allowed",
                    "duration_s": fine["duration_s"], "is_error": False}
    assert result.steps["retried"].audit == records["retried"].audit


async def test_a_failed_foreach_of_tool_calls_keeps_every_items_audit(tmp_path: Path) -> None:
    data = tmp_path / "data"
    data.mkdir()
    (data / "a.txt").write_text("a")
    path = tmp_path / "wf.yaml"
    path.write_text(f"""\
version: 1
name: tool-audit-each
{_servers(data)}
steps:
  each:
    foreach: [a.txt, prod.example.txt]
    max_parallel: 1
    tool: files.read_file
    with: {{path: "${{{{ item }}}}"}}
""")
    result, records = await _recorded(path, tmp_path)
    assert result.status == "failed"
    assert [(a["decision"], a.get("rule")) for a in records["each"].audit] == [
        ("allowed", None), ("denied", "rules.no-prod")]


AGENT = """\
version: 1
name: agent-audit
providers:
  brain: {{kind: openai, model: agent-model, base_url: "{url}/openai/v1", api_key: sk-x}}
{servers}
steps:
  triage:
    llm: brain
    prompt: Read the notes.
    tools: [files.read_file]
    max_turns: {turns}
"""


async def test_an_agents_refused_and_failed_tool_calls_are_audited(
        srv: Servers, tmp_path: Path) -> None:  # noqa: F811  (fixture)
    data = tmp_path / "data"
    data.mkdir()
    (data / "notes.txt").write_text("hello")
    calls = [("files__read_file", {"path": "prod.example.txt"}),  # the policy refuses it
             ("files__read_file", {"path": "missing.txt"}),  # the tool fails
             ("files__write_file", {"path": "x", "content": "y"}),  # not offered
             ("files__read_file", {"path": "notes.txt"})]  # fine
    srv.openai.push("agent-model", Action(tool_calls=calls), Action(text="done"))
    path = tmp_path / "agent.yaml"
    path.write_text(AGENT.format(url=srv.url, servers=_servers(data), turns=3))
    result, records = await _recorded(path, tmp_path)
    assert result.status == "succeeded", result.error
    audit = records["triage"].audit
    # in the order the model made the calls (they run at once and end in any order)
    assert [(a["tool"], a["decision"], a["is_error"]) for a in audit] == [
        ("files.read_file", "denied", True), ("files.read_file", "allowed", True),
        ("files__write_file", "denied", True), ("files.read_file", "allowed", False)]
    assert audit[0]["rule"] == "rules.no-prod" and audit[0]["policy"] == "guarded"
    assert audit[1]["error"]["type"] == "ToolError"
    assert audit[2]["error"]["type"] == "UnknownToolError"
    assert result.steps["triage"].audit == audit

    # a failed agent step keeps the audit of the calls it made
    # (its last turn's calls are not run: the turn limit fails it)
    srv.openai.push("agent-model", Action(tool_calls=calls[:1]), Action(tool_calls=calls[3:]))
    path.write_text(AGENT.format(url=srv.url, servers=_servers(data), turns=2))
    result, records = await _recorded(path, tmp_path, "again.db")
    assert records["triage"].status == "failed"
    assert [(a["tool"], a["decision"]) for a in records["triage"].audit] == [
        ("files.read_file", "denied")]
