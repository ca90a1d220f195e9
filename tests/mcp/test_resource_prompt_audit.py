"""`resource:` and `mcp_prompt:` steps are audited like `tool:` steps, found in review: a
resource read or a prompt get left no audit entry at all, successful or failed. Real MCP
server subprocesses (tests/tracing/meta_server.py, the faulty test server, the oversized-
message test server); entries read back from a run record database."""

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
TOKEN = "tok-read-audit-0123456789"
CAP = 64 * 1024

pytestmark = pytest.mark.anyio


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _workflow(tmp_path: Path) -> Path:
    python, root = json.dumps(sys.executable), json.dumps(str(ROOT))
    big = json.dumps(str(ROOT / "tests" / "mcp" / "big_server.py"))
    path = tmp_path / "wf.yaml"
    path.write_text(f"""\
version: 1
name: read-audit
secrets: [AUDIT_TOKEN]
concurrency: 1
mcp_servers:
  probe:
    command: {python}
    args: [-m, tests.tracing.meta_server]
    env: {{PYTHONPATH: {root}}}
  faulty:
    command: {python}
    args: [-m, tests.mcp.faulty_server]
    env: {{PYTHONPATH: {root}}}
  big:
    command: {python}
    args: [{big}]
    env: {{PYTHONPATH: {root}}}
    max_message_bytes: {CAP}
policies:
  open: {{level: low}}
defaults: {{policy: open, continue_on_error: true}}
steps:
  doc:
    resource: probe
    uri: "meta://doc/${{{{ secrets.AUDIT_TOKEN }}}}"
  ask:
    mcp_prompt: probe.meta
    with: {{topic: "about ${{{{ secrets.AUDIT_TOKEN }}}}", n: 3}}
  gone:
    resource: probe
    uri: meta://missing
    retry: {{attempts: 2, initial: 0s, on: [tool]}}
  nope:
    mcp_prompt: probe.unknown
  cut:
    mcp_prompt: faulty.hang
    timeout: 300ms
  crashed:
    resource: faulty
    uri: faulty://crash
    needs: [cut]
  huge:
    resource: big
    uri: big://{CAP + 1}
""")
    return path


async def test_resource_reads_and_prompt_gets_leave_audit_entries(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AUDIT_TOKEN", TOKEN)
    store = RunStore.open(tmp_path / "runs.db")
    try:
        result = await run_workflow(load(_workflow(tmp_path)), {}, store=store)
        records: dict[str, Any] = {r.step_id: r for r in store.steps(result.run_id)}
    finally:
        store.close()
    assert {sid: r.status for sid, r in records.items()} == {
        "doc": "succeeded", "ask": "succeeded", "gone": "failed", "nope": "failed",
        "crashed": "failed", "cut": "failed", "huge": "failed"}
    assert TOKEN not in json.dumps({sid: r.audit for sid, r in records.items()})

    # what was read, from which server; the secret in the URI masked as in the whole record
    assert records["doc"].audit == [{"resource": "meta://doc/***", "server": "probe",
                                     "decision": "allowed", "is_error": False}]
    # the prompt, its arguments (as sent: strings), the secret among them masked
    assert records["ask"].audit == [{"prompt": "probe.meta", "server": "probe",
                                     "arguments": {"topic": "about ***", "n": "3"},
                                     "decision": "allowed", "is_error": False}]

    # a failed read: one entry per attempt, with the server's error
    assert records["gone"].attempts == 2
    assert len(records["gone"].audit) == 2
    for entry in records["gone"].audit:
        assert entry["resource"] == "meta://missing" and entry["server"] == "probe"
        assert entry["decision"] == "allowed" and entry["is_error"] is True
        assert entry["error"]["type"] == "ToolError" and entry["error"]["kind"] == "tool"
        assert "no resource meta://missing" in entry["error"]["message"]

    (nope,) = records["nope"].audit
    assert nope["prompt"] == "probe.unknown" and nope["arguments"] == {}
    assert "no prompt unknown" in nope["error"]["message"]

    # the server died under the read
    (crashed,) = records["crashed"].audit
    assert crashed["resource"] == "faulty://crash" and crashed["is_error"] is True
    assert crashed["error"]["type"] == "ToolError"

    # the step's timeout cut the prompt get off
    (cut,) = records["cut"].audit
    assert records["cut"].error["kind"] == "timeout"
    assert cut == {"prompt": "faulty.hang", "server": "faulty", "arguments": {},
                   "decision": "allowed", "is_error": True, "killed_by": "timeout"}

    # an answer over the message cap ended the read
    (huge,) = records["huge"].audit
    assert huge["resource"] == f"big://{CAP + 1}" and huge["server"] == "big"
    assert "more than 65536 bytes" in huge["error"]["message"]
    assert result.steps["gone"].audit == records["gone"].audit
