"""A secret never leaves a run in clear: not on stdout (--json), stderr, the trace file (with
content capture on), the JUnit report, the GitHub job summary, the run record database, nor
`plait runs show --json`. Every artefact is grepped for the secret and its encoded forms."""

from __future__ import annotations

import base64
import json
import os
import subprocess
import sys
import urllib.parse
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[2]
SECRET = "Tok3n+/Secret=Value!"
PROVIDER_KEY = "sk-test-provider-key-0123456789"
WORKFLOW = """\
version: 1
name: secretive
secrets: [MY_TOKEN]
providers:
  p: {kind: echo, model: echo-1}
policies:
  open: {level: low}
defaults: {policy: open}
steps:
  use:
    run: 'echo "token=$MY_TOKEN"; printf %s "$MY_TOKEN" | base64'
    env: {MY_TOKEN: "${{ secrets.MY_TOKEN }}"}
  ask:
    llm: p
    system: "key ${{ secrets.MY_TOKEN }}"
    prompt: "the token is ${{ secrets.MY_TOKEN }} and ${{ steps.use.output }}"
  fail:
    run: 'echo "bad token $MY_TOKEN" >&2; exit 3'
    env: {MY_TOKEN: "${{ secrets.MY_TOKEN }}"}
    continue_on_error: true
  child:
    workflow: child.yaml
    with: {text: "${{ steps.ask.output }}"}
outputs:
  echoed: ${{ steps.ask.output }}
"""
CHILD = """\
version: 1
name: child
inputs:
  text: {type: string}
providers:
  c: {kind: echo}
steps:
  inner:
    llm: c
    prompt: "child ${{ inputs.text }}"
outputs:
  out: ${{ steps.inner.output }}
"""


def _forms(secret: str) -> set[str]:
    raw = secret.encode()
    return {secret, urllib.parse.quote(secret, safe=""), urllib.parse.quote_plus(secret),
            base64.b64encode(raw).decode().rstrip("="),
            base64.urlsafe_b64encode(raw).decode().rstrip("=")}


def _plait(*args: str, cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run([sys.executable, "-m", "runners.cli.main", *args], cwd=cwd,
                          capture_output=True, timeout=60, env=env, check=False)


def test_secret_is_in_no_artefact(tmp_path: Path) -> None:
    (tmp_path / "wf.yaml").write_text(WORKFLOW)
    (tmp_path / "child.yaml").write_text(CHILD)
    summary = tmp_path / "summary.md"
    env = {k: v for k, v in os.environ.items() if k != "OTEL_SDK_DISABLED"}
    env.update({"PYTHONPATH": str(ROOT), "MY_TOKEN": SECRET, "OPENAI_API_KEY": PROVIDER_KEY,
                "GITHUB_ACTIONS": "true", "GITHUB_STEP_SUMMARY": str(summary)})
    run = _plait("run", "wf.yaml", "--json", "--trace-file", "t.jsonl", "--trace-content",
                 "--junit", "junit.xml", "--state", "runs.db", cwd=tmp_path, env=env)
    assert run.returncode == 0, run.stderr.decode()  # `fail` fails, continue_on_error
    result = json.loads(run.stdout)
    # the secret did reach the steps (the test would prove nothing otherwise)
    assert result["steps"]["use"]["status"] == "succeeded"
    assert "token=***" in result["steps"]["use"]["output"]["stdout"]
    assert "***" in result["outputs"]["echoed"]
    assert result["steps"]["fail"]["status"] == "failed"
    shown = _plait("runs", "show", result["run_id"], "--json", "--state", "runs.db",
                   cwd=tmp_path, env=env)
    assert shown.returncode == 0, shown.stderr.decode()
    artefacts = {"stdout": run.stdout, "stderr": run.stderr, "runs show": shown.stdout,
                 "runs show stderr": shown.stderr}
    for path in tmp_path.iterdir():
        if path.name not in ("wf.yaml", "child.yaml") and path.is_file():
            artefacts[path.name] = path.read_bytes()
    assert {"t.jsonl", "junit.xml", "summary.md", "runs.db"} <= set(artefacts)
    spans = [json.loads(line) for line in artefacts["t.jsonl"].splitlines()]
    assert any("gen_ai.input.messages" in s["attributes"] for s in spans)
    for secret in (SECRET, PROVIDER_KEY):
        for form in _forms(secret):
            for name, data in artefacts.items():
                assert form.encode() not in data, f"{form!r} found in {name}"


MODEL_FROM_SECRET = """\
version: 1
name: deployment
secrets: [DEPLOYMENT]
providers:
  p: {kind: echo, model: echo-1}
steps:
  ask:
    llm: p
    model: "${{ secrets.DEPLOYMENT }}"
    prompt: hello
"""


@pytest.mark.anyio
async def test_a_model_named_by_a_secret_is_masked(tmp_path: Path, collected: Any) -> None:
    """Span names and the gen_ai.*.model attributes go through the redactor too (a private
    deployment name kept in a secret)."""
    from engine.executor import run_workflow
    from engine.spec.loader import load

    path = tmp_path / "wf.yaml"
    path.write_text(MODEL_FROM_SECRET)
    result = await run_workflow(load(path), {}, tracer=collected.tracer, record_state=False,
                                environ={"DEPLOYMENT": SECRET})
    assert result.ok
    (chat,) = [s for s in collected.spans() if s.name.startswith("chat")]
    assert chat.name == "chat ***"
    assert chat.attributes["gen_ai.request.model"] == "***"
    assert chat.attributes["gen_ai.response.model"] == "***"
    assert SECRET not in "".join(s.to_json() for s in collected.spans())
