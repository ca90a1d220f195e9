"""A `resource:` step's URI and an `mcp_prompt:` step's arguments are checked against the
server's policy before anything is sent, found in review: the policy judged tool and command
arguments only, so a server that serves `file://` resources handed out any file a
`read_file` tool call would have been refused (`/etc/shadow`, a file outside the roots, a
`..` built from an input), and every read was audited `allowed`. A real stdio MCP server
(tests/mcp/file_resource_server.py) that reads whatever it is asked and logs each request it
receives; outcomes read back from a run record database."""

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


def _server(name: str, log: Path, policy: str) -> str:
    python, root = json.dumps(sys.executable), json.dumps(str(ROOT))
    return f"""\
  {name}:
    command: {python}
    args: [-m, tests.mcp.file_resource_server, --root, ./data, --log, {json.dumps(str(log))}]
    env: {{PYTHONPATH: {root}}}
    policy: {policy}
"""


def _workflow(tmp: Path) -> Path:
    (tmp / "data").mkdir()
    (tmp / "data" / "notes.md").write_text("inside the root")
    (tmp / "secret.md").write_text("outside the root")
    data, outside = (tmp / "data").as_uri(), (tmp / "secret.md").as_uri()
    path = tmp / "wf.yaml"
    path.write_text(f"""\
version: 1
name: read-policy
concurrency: 1
inputs:
  name: {{type: string, default: ../secret.md}}
mcp_servers:
{_server("files", tmp / "files.log", "guarded")}{_server("open", tmp / "open.log", "trusted")}
policies:
  guarded:
    level: medium
    filesystem: {{read: [./data]}}
    rules:
      - {{name: no-prod, pattern: 'prod\\.example\\.com', applies_to: arguments}}
  trusted: {{level: low}}
defaults: {{continue_on_error: true}}
steps:
  inside:
    resource: files
    uri: {data}/notes.md
  outside:
    resource: files
    uri: {outside}
  escape:
    resource: files
    uri: "{data}/${{{{ inputs.name }}}}"
  shadow:
    resource: files
    uri: file:///etc/shadow
  template_escape:
    resource: files
    uri: "notes://${{{{ inputs.name }}}}"
  template:
    resource: files
    uri: notes://notes.md
  prompt_rule:
    mcp_prompt: files.review
    with: {{topic: "the deploy", link: "https://prod.example.com/admin"}}
  prompt_path:
    mcp_prompt: files.review
    with: {{file: "${{{{ inputs.name }}}}"}}
  prompt:
    mcp_prompt: files.review
    with: {{topic: the readme}}
  low_read:
    resource: open
    uri: {outside}
  low_prompt:
    mcp_prompt: open.review
    with: {{link: "https://prod.example.com/admin", file: ../secret.md}}
""")
    return path


def _received(log: Path) -> list[dict[str, Any]]:
    if not log.exists():
        return []
    return [json.loads(line) for line in log.read_text().splitlines()]


async def test_resource_uris_and_prompt_arguments_are_checked_before_sending(
        tmp_path: Path) -> None:
    wf = _workflow(tmp_path)
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run_workflow(load(wf), {}, store=store)
        records: dict[str, Any] = {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()
    status = {sid: r.status for sid, r in records.items()}
    assert status == {
        "inside": "succeeded", "outside": "failed", "escape": "failed", "shadow": "failed",
        "template_escape": "failed", "template": "succeeded", "prompt_rule": "failed",
        "prompt_path": "failed", "prompt": "succeeded", "low_read": "succeeded",
        "low_prompt": "succeeded"}

    # what reached the guarded server: the allowed requests only, nothing that was refused
    assert sorted(_received(tmp_path / "files.log"), key=json.dumps) == sorted([
        {"method": "resources/read", "uri": (tmp_path / "data" / "notes.md").as_uri()},
        {"method": "resources/read", "uri": "notes://notes.md"},
        {"method": "prompts/get", "name": "review", "arguments": {"topic": "the readme"}},
    ], key=json.dumps)
    assert records["inside"].output[0]["text"] == "inside the root"

    data = (tmp_path / "data").as_uri()
    refused = {
        "outside": ("filesystem", (tmp_path / "secret.md").as_uri()),
        "escape": ("filesystem", f"{data}/../secret.md"),
        "shadow": ("filesystem", "file:///etc/shadow"),
        "template_escape": ("filesystem", "notes://../secret.md"),
    }
    for sid, (rule, uri) in refused.items():
        error = records[sid].error
        assert error["type"] == "PolicyViolation" and error["kind"] == "policy", sid
        assert error["policy"] == "guarded" and error["rule"] == rule, sid
        assert error["step"] == sid and error["server"] == "files", sid
        assert error["hint"] and "policy 'guarded' (medium)" in error["message"], sid
        assert records[sid].attempts == 1  # never retried
        assert records[sid].audit == [{
            "resource": uri, "server": "files", "decision": "denied", "policy": "guarded",
            "rule": rule, "is_error": True, "error": {
                "type": "PolicyViolation", "kind": "policy", "message": error["message"]}}]
    assert "outside the read roots" in records["escape"].error["message"]
    assert "'..' segment" in records["template_escape"].error["message"]

    # a prompt argument a rule refuses, and one under a path key that leaves the roots
    rule = records["prompt_rule"]
    assert rule.error["rule"] == "rules.no-prod"
    assert rule.error["value"] == "https://prod.example.com/admin"
    assert rule.error["prompt"] == "files.review" and rule.error["step"] == "prompt_rule"
    (entry,) = rule.audit
    assert entry["decision"] == "denied" and entry["rule"] == "rules.no-prod"
    assert entry["policy"] == "guarded" and entry["prompt"] == "files.review"
    assert entry["arguments"] == {"topic": "the deploy",
                                  "link": "https://prod.example.com/admin"}
    (entry,) = records["prompt_path"].audit
    assert entry["decision"] == "denied" and entry["rule"] == "filesystem"
    assert records["prompt"].audit[0]["decision"] == "allowed"

    # a policy of level low checks nothing: the same read and prompt are sent and allowed
    assert records["low_read"].output[0]["text"] == "outside the root"
    assert records["low_read"].audit[0]["decision"] == "allowed"
    assert records["low_prompt"].audit[0]["decision"] == "allowed"
    assert sorted(r["method"] for r in _received(tmp_path / "open.log")) == [
        "prompts/get", "resources/read"]

