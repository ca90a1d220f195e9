"""A step's own `policy:` checks the MCP requests of a `tool:`, `resource:` or `mcp_prompt:`
step on top of its server's policy, found in review: it was ignored (only `run:` steps read
it), so `policy: strict` on a `tool:` step whose server runs under a level-low policy let a
read of any file through, with nothing said. Real MCP server subprocesses (the bundled files
server, and tests/mcp/file_resource_server.py, which logs every request it receives);
outcomes read back from a run record database."""

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

POLICIES = """\
policies:
  open: {level: low}
  strict: {level: medium, filesystem: {read: [./data]}}
  guarded: {level: medium, filesystem: {read: [./data]}}
  no-prod:
    level: medium
    rules:
      - {name: no-prod, pattern: 'prod\\.example\\.com', applies_to: arguments}
"""


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _files(tmp: Path) -> None:
    (tmp / "data").mkdir()
    (tmp / "data" / "notes.md").write_text("inside the data folder")
    (tmp / "secret.md").write_text("outside the data folder")


async def _run(wf: Path) -> dict[str, Any]:
    store = RunStore.open(wf.parent / "runs.db")
    try:
        result = await run_workflow(load(wf), {}, store=store)
        return {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()


def _files_server(name: str, policy: str) -> str:
    python, root = json.dumps(sys.executable), json.dumps(str(ROOT))
    return f"""\
  {name}:
    command: {python}
    args: [-m, engine.mcp.servers.files, --root, .]
    env: {{PYTHONPATH: {root}}}
    policy: {policy}
"""


def _denied(record: Any, policy: str, subject: dict[str, Any]) -> None:
    """`record` failed on a refusal by `policy` (rule filesystem), audited `denied`."""
    error = record.error
    assert error["type"] == "PolicyViolation" and error["policy"] == policy, error
    assert error["rule"] == "filesystem" and f"policy {policy!r} (medium)" in error["message"]
    assert error["step"] == record.step_id and record.attempts == 1
    assert record.audit == [{**subject, "decision": "denied", "policy": policy,
                             "rule": "filesystem", "is_error": True, "error": {
                                 "type": "PolicyViolation", "kind": "policy",
                                 "message": error["message"]}}]


async def test_a_tool_steps_policy_checks_its_call_on_top_of_the_servers(
        tmp_path: Path) -> None:
    _files(tmp_path)
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"""\
version: 1
name: step-policy
concurrency: 1
mcp_servers:
{_files_server("files", "open")}{_files_server("guarded_files", "guarded")}
{POLICIES}
defaults: {{continue_on_error: true}}
steps:
  read:
    tool: files.read_file
    with: {{path: /etc/hostname}}
    policy: strict
  secret:
    tool: files.read_file
    with: {{path: secret.md}}
    policy: strict
  allowed:
    tool: files.read_file
    with: {{path: data/notes.md}}
    policy: strict
  unchecked:
    tool: files.read_file
    with: {{path: secret.md}}
  loosened:
    tool: guarded_files.read_file
    with: {{path: secret.md}}
    policy: open
""")
    records = await _run(wf)
    assert {sid: r.status for sid, r in records.items()} == {
        "read": "failed", "secret": "failed", "allowed": "succeeded",
        "unchecked": "succeeded", "loosened": "failed"}

    # the reproduction: refused by the step's policy before the server saw it (the server's
    # own root check would have said ToolError)
    _denied(records["read"], "strict", {"tool": "files.read_file", "server": "files"})
    assert "/etc/hostname" in records["read"].error["message"]
    # a file the server would have served (it is under its root) is refused as well
    _denied(records["secret"], "strict", {"tool": "files.read_file", "server": "files"})
    # allowed by both: sent and answered; without a step policy the server's alone applies
    assert records["allowed"].output == "inside the data folder"
    assert records["allowed"].audit[0]["decision"] == "allowed"
    assert records["unchecked"].output == "outside the data folder"
    # a step policy looser than its server's does not loosen it: the server's refuses
    _denied(records["loosened"], "guarded",
            {"tool": "guarded_files.read_file", "server": "guarded_files"})


def _resource_server(log: Path) -> str:
    python, root = json.dumps(sys.executable), json.dumps(str(ROOT))
    return f"""\
  naive:
    command: {python}
    args: [-m, tests.mcp.file_resource_server, --root, ./data, --log, {json.dumps(str(log))}]
    env: {{PYTHONPATH: {root}}}
    policy: open
"""


async def test_a_resource_or_prompt_steps_policy_checks_the_request_before_it_is_sent(
        tmp_path: Path) -> None:
    _files(tmp_path)
    log = tmp_path / "naive.log"
    inside, outside = (tmp_path / "data" / "notes.md").as_uri(), (tmp_path / "secret.md").as_uri()
    wf = tmp_path / "wf.yaml"
    wf.write_text(f"""\
version: 1
name: step-policy-reads
concurrency: 1
mcp_servers:
{_resource_server(log)}
{POLICIES}
defaults: {{continue_on_error: true}}
steps:
  outside:
    resource: naive
    uri: {outside}
    policy: strict
  inside:
    resource: naive
    uri: {inside}
    policy: strict
  prompt_rule:
    mcp_prompt: naive.review
    with: {{link: "https://prod.example.com/admin"}}
    policy: no-prod
  prompt:
    mcp_prompt: naive.review
    with: {{topic: the readme}}
    policy: no-prod
""")
    records = await _run(wf)
    assert {sid: r.status for sid, r in records.items()} == {
        "outside": "failed", "inside": "succeeded", "prompt_rule": "failed",
        "prompt": "succeeded"}
    _denied(records["outside"], "strict", {"resource": outside, "server": "naive"})
    assert records["inside"].output[0]["text"] == "inside the data folder"
    rule = records["prompt_rule"]
    assert rule.error["policy"] == "no-prod" and rule.error["rule"] == "rules.no-prod"
    (entry,) = rule.audit
    assert entry["decision"] == "denied" and entry["policy"] == "no-prod"
    # what reached the server: the allowed requests only
    received = [json.loads(line) for line in log.read_text().splitlines()]
    assert sorted(received, key=json.dumps) == sorted([
        {"method": "resources/read", "uri": inside},
        {"method": "prompts/get", "name": "review", "arguments": {"topic": "the readme"}},
    ], key=json.dumps)
